import numpy as np
import pytest

from netshrink.primitives.bitpack import pack_bits, packed_size, unpack_bits


def reference_pack(values: np.ndarray, bits: int) -> bytes:
    text = "".join(format(int(v), f"0{bits}b") for v in values)
    text += "0" * (-len(text) % 8)
    return bytes(int(text[i : i + 8], 2) for i in range(0, len(text), 8))


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 7, 8, 11, 16])
def test_pack_matches_a_bit_string_reference_and_round_trips(bits):
    rng = np.random.default_rng(bits)
    for count in (0, 1, 9, 257):
        values = rng.integers(0, 1 << bits, count)
        data = pack_bits(values, bits)
        assert data == reference_pack(values, bits)
        assert len(data) == packed_size(count, bits)
        assert np.array_equal(unpack_bits(data, bits, count), values)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="does not fit"):
        pack_bits(np.array([8]), 3)
    with pytest.raises(ValueError, match="too short"):
        unpack_bits(b"\x00", 5, 2)
    with pytest.raises(ValueError):
        pack_bits(np.array([1]), 0)
