"""Files the fuzzer found mishandled, kept small (``regressions/*.nsz``, under 2 kB each).

Each is a corpus file (``fuzz_corpus``: the small pruned, weight-shared model, Huffman-coded,
or its binary twin) with one header value edited and its checksums recomputed; before the
fix the reader raised something other than a one-line ``NetshrinkError`` (or loaded it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_corpus import Tiny, exercise

from netshrink.engine.sparse import load_sparse
from netshrink.errors import NetshrinkError
from netshrink.nsz import NszFormatError, pack, parse_nsz, read_nsz, unpack
from netshrink.nsz.container import MAX_MESSAGE

HERE = Path(__file__).parent / "regressions"

# file -> (what was wrong, the message now)
CASES = {
    # shape [2**64, 0]: np.prod(shape, dtype=int64) in compression_report raised OverflowError
    "shape_dim_past_int64.nsz": "invalid shape [18446744073709551616, 0]",
    # "metadata": [[1]]: NszFile.metadata's dict(...) raised ValueError (TypeError for 7)
    "metadata_not_object.nsz": "header 'metadata' must be an object",
    # "loss": NaN in the metadata was accepted (docs/format.md: no NaN); the inspect report's
    # JSON then raised ValueError (allow_nan=False)
    "header_nan.nsz": "NaN is not JSON",
    # "tensors" twice in the header object: Python kept the last, silently
    "header_duplicate_key.nsz": "key 'tensors' appears twice",
    # 300,000 values in 1.6 kB; at 64 MiB of `{},` a 66 kB file took 9 s and 1.6 GiB to parse
    "header_values_bomb.nsz": "header holds more than 262144 JSON values",
    # a 100,000-character format string became a 100,040-character error message
    "header_long_format.nsz": "header format is 'xxxx",
    # a clip nested 950 deep: BinarizeConfig's message repr'd it in full (2 kB; a
    # RecursionError in a deep enough stack)
    "binarize_clip_nested.nsz": "clip [[[...]]]: not a string, a number",
    # input_size [1, 65536, 65536] was accepted; the auto engine timed the layers on it
    "input_size_not_chw.nsz": "input_size must be [C, H, W]",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_file_the_fuzzer_found_fails_with_one_short_line(name):
    data = (HERE / name).read_bytes()
    with pytest.raises(NszFormatError) as caught:
        exercise(data, "binary" if name.startswith("binarize") else "huffman")
    message = str(caught.value)
    assert CASES[name] in message
    assert "\n" not in message and len(message) <= MAX_MESSAGE
    with pytest.raises(NszFormatError, match=r"^\S*regressions/"):  # read_nsz names the file
        read_nsz(HERE / name)
    with pytest.raises(NszFormatError, match=r"^\S*regressions/"):
        unpack(HERE / name, model=Tiny())


def test_pack_refuses_an_input_size_the_reader_would_refuse():
    with pytest.raises(NetshrinkError, match="cannot write .nsz: header 'model' input_size"):
        pack(Tiny(), None, input_size=(1, 2**16, 2**16))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # fc.weight stored as (24, 4) for a (4, 24) layer: load_sparse built the layer from
        # the file's nonzeros, skipped load_into's shape check, and loaded it silently
        ("engine_weight_reshaped.nsz", r"fc\.weight has shape \(24, 4\) in the file, \(4, 24\)"),
        # fc.bias stored as (2, 2): load_sparse loaded it too (and raised torch's ValueError
        # for a bias of another size, LeNet-300-100's fc1.bias as (3, 100))
        ("engine_bias_reshaped.nsz", r"fc\.bias has shape \(2, 2\) in the file, \(4,\)"),
    ],
)
def test_the_sparse_engine_checks_the_shapes_of_the_layers_it_builds(name, message):
    nsz = parse_nsz((HERE / name).read_bytes())
    everything_sparse = {"small_linear": 1.0, "conv": 1.0}  # fc is 20% dense: built sparse
    with pytest.raises(NetshrinkError, match=message):
        load_sparse(nsz, model=Tiny(), warn=False, max_density=everything_sparse)
