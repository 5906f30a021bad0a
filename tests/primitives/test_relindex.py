import numpy as np
import pytest

from netshrink.primitives.relindex import decode_positions, encode_positions


def reference_encode(mask: np.ndarray, index_bits: int) -> list[int]:
    """Han et al.'s Figure 2, written as a plain loop: gaps with filler zeros."""
    span = 1 << index_bits
    gaps, run = [], 0
    for value in mask:
        if value:
            gaps.append(run)
            run = 0
        else:
            run += 1
            if run == span:  # a filler sits on this zero
                gaps.append(span - 1)
                run = 0
    return gaps


@pytest.mark.parametrize("index_bits", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.5, 1.0])
def test_gaps_match_the_papers_scheme_and_round_trip(index_bits, density):
    rng = np.random.default_rng(index_bits)
    for length in (0, 1, 7, 300):
        mask = rng.random(length) < density
        gaps, entries = encode_positions(np.flatnonzero(mask), length, index_bits)
        assert gaps.tolist() == reference_encode(mask, index_bits)
        assert gaps.max(initial=0) < 1 << index_bits
        assert np.array_equal(decode_positions(gaps, length), entries)
        assert set(np.flatnonzero(mask)) <= set(entries.tolist())
        assert not mask[np.setdiff1d(entries, np.flatnonzero(mask))].any()  # fillers on zeros
        assert length <= (gaps.size + 1) << index_bits  # the bound readers rely on


def test_papers_example_of_a_filler():
    # Figure 2 of the paper: 3-bit index, a gap of 8 zeros needs one filler.
    mask = np.zeros(16, bool)
    mask[[1, 4, 14]] = True
    gaps, entries = encode_positions(np.flatnonzero(mask), 16, 3)
    assert gaps.tolist() == [1, 2, 7, 1]
    assert entries.tolist() == [1, 4, 12, 14]


def test_decoding_past_the_end_is_an_error():
    with pytest.raises(ValueError, match="past the end"):
        decode_positions(np.array([3, 4]), 5)


def test_positions_must_be_sorted_and_in_range():
    with pytest.raises(ValueError):
        encode_positions(np.array([3, 2]), 10, 4)
    with pytest.raises(ValueError):
        encode_positions(np.array([10]), 10, 4)
    with pytest.raises(ValueError):
        encode_positions(np.array([1]), 10, 17)


def test_scatter_equals_positions_then_fancy_indexing():
    from netshrink.primitives.relindex import scatter_relative

    rng = np.random.default_rng(0)
    for length, density, bits in ((0, 0.5, 3), (50, 0.1, 2), (1000, 0.3, 4)):
        dense = np.where(rng.random(length) < density, rng.standard_normal(length), 0)
        gaps, entries = encode_positions(np.flatnonzero(dense), length, bits)
        expect = np.zeros(length)
        expect[decode_positions(gaps, length)] = dense[entries]
        assert np.array_equal(scatter_relative(gaps, dense[entries], length), expect)
    with pytest.raises(ValueError, match="past the end"):
        scatter_relative(np.array([2, 2]), np.ones(2), 5)
