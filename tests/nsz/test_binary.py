"""Binary layers in ``.nsz`` (format version 2): the ``binary`` encoding, ``binarize`` header.

References are independent of the writer: sign bits packed by hand MSB-first, scales as
``mean |W|`` per filter, sizes from the weight counts, and the original binary model's
outputs.
"""

import json
import math
import struct

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.binarize import BinarizeConfig, binarize_, binary_layers, filter_scale, is_binary
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.nsz import (
    NszFormatError,
    compression_report,
    load_into,
    pack,
    parse_nsz,
    read_nsz,
    render_report,
    unpack,
)
from netshrink.nsz.codec import decode_tensor, encode_binary, section_tags
from netshrink.nsz.container import write_container
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_

ARGS = {"order": "xnor"}


def binary_model(arch: str, mode: str, seed: int = 0) -> nn.Module:
    """A binarized ``arch`` whose BatchNorms hold non-trivial statistics and affine terms."""
    torch.manual_seed(seed)
    model = create(arch, **ARGS)
    binarize_(model, BinarizeConfig(mode=mode))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        model(torch.randn(32, 1, 28, 28))
    return model.eval()


def assert_same_outputs(restored: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    """Equal up to the few-ulp difference of α recomputed from ±α (docs/format.md)."""
    with torch.no_grad():
        want, got = model(x), restored(x)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6 * want.abs().max().item())
    assert torch.equal(got.argmax(1), want.argmax(1))


def pack_bits_by_hand(negative: np.ndarray) -> bytes:
    """Reference packing: weight i is bit 7 - i % 8 of byte i // 8 (MSB-first), pad 0."""
    flat = negative.ravel().astype(np.int64)
    flat = np.concatenate([flat, np.zeros(-flat.size % 8, np.int64)])
    return bytes((flat.reshape(-1, 8) @ (1 << np.arange(7, -1, -1))).astype(np.uint8))


def sections(data: bytes) -> list[tuple[bytes, bytes]]:
    """The data sections of a file, in order, as ``(tag, payload)``."""
    nsz = parse_nsz(data)
    return [
        (tag, bytes(payload))
        for entry, payloads in zip(nsz.entries, nsz.payloads, strict=True)
        for tag, payload in zip(section_tags(entry), payloads, strict=True)
    ]


# --- the encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 3, 3), (4, 2), (1, 1), (5,), (0, 4)])
def test_binary_encoding_bytes_follow_the_spec(shape):
    rng = np.random.default_rng(len(shape))
    negative = rng.random(shape) < 0.5
    scales = rng.random(shape[0]).astype(np.float32)
    encoded = encode_binary("w", negative, scales)
    assert encoded.entry == {"name": "w", "shape": list(shape), "encoding": "binary"}
    (sgn_tag, sgn), (scl_tag, scl) = encoded.sections
    assert sgn_tag == b"SGN " and sgn == pack_bits_by_hand(negative)
    assert scl_tag == b"SCL " and scl == struct.pack(f"<{shape[0]}f", *scales)
    decoded = decode_tensor(encoded.entry, [memoryview(sgn), memoryview(scl)])
    alpha = scales.reshape((-1,) + (1,) * (len(shape) - 1))
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded, np.where(negative, -alpha, alpha))


@pytest.mark.parametrize("arch", ["lenet5", "vgg_small"])
@pytest.mark.parametrize("mode", ["bwn", "xnor"])
def test_binarized_models_round_trip(tmp_path, arch, mode):
    model = binary_model(arch, mode)
    path = tmp_path / f"{arch}.nsz"
    pack(model, path, model_name=arch, model_args=ARGS, input_size=(1, 28, 28))
    nsz = read_nsz(path)
    assert nsz.version == 2
    restored = unpack(path)
    assert_same_outputs(restored, model, torch.randn(64, 1, 28, 28))
    signs = binary_layers(model)
    assert set(signs) == {n for n, m in restored.named_modules() if is_binary(m)}
    entries = {e["name"]: (e, p) for e, p in zip(nsz.entries, nsz.payloads, strict=True)}
    for name, stored in signs.items():
        weight = model.get_submodule(name).weight.detach()
        assert restored.get_submodule(name).mode == mode
        # The file holds the signs of the real weights and α = mean |W| per filter.
        entry, (sgn, scl) = entries[f"{name}.weight"]
        assert entry["encoding"] == "binary"
        assert bytes(sgn) == pack_bits_by_hand((weight < 0).numpy())
        alpha = np.frombuffer(scl, "<f4")
        assert np.array_equal(alpha, filter_scale(weight).numpy())
        reference = weight.double().abs().flatten(1).mean(1).numpy()
        assert np.allclose(alpha, reference, rtol=1e-6)
        # ... and decodes to exactly ±α.
        shape = (-1,) + (1,) * (weight.dim() - 1)
        expect = np.where(
            stored.negative, -stored.scales.reshape(shape), stored.scales.reshape(shape)
        )
        assert np.array_equal(restored.get_submodule(name).weight.detach().numpy(), expect)
    header = nsz.header["binarize"]
    assert header == {"mode": mode, "layers": list(signs), "input_scale": True, "clip": 1.0}


def test_binary_layers_take_one_bit_per_weight_plus_their_scales():
    model = binary_model("vgg_small", "xnor")
    data = pack(model, None, model_name="vgg_small", model_args=ARGS)
    report = compression_report(parse_nsz(data))
    rows = {r.name: r for r in report.layers}
    binary = binary_layers(model)
    assert [n for n, r in rows.items() if r.encoding == "binary"] == list(binary)
    for name, layer in binary.items():
        weights, filters = layer.negative.size, layer.negative.shape[0]
        framing = 2 * (4 + 8 + 4)  # two sections: tag, length, crc32
        row = rows[name]
        assert row.weights == weights
        assert row.bytes == math.ceil(weights / 8) + 4 * filters + framing
        assert row.bits_per_weight == pytest.approx(8 * row.bytes / weights)
        assert row.ratio == pytest.approx(4 * weights / row.bytes)
        # 1 bit per weight and a 32-bit scale per fan-in: within 10% of fp32 / 32.
        fan_in = weights // filters
        assert row.bits_per_weight < 1 + 32 / fan_in + 0.01 and row.ratio > 0.9 * 32


def test_the_version_is_the_lowest_that_expresses_the_file():
    torch.manual_seed(0)
    plain = create("lenet5", **ARGS)
    prune_(plain, PruneConfig(sparsity={"*": 0.5}))
    share_weights_(plain, WeightSharingConfig(conv_bits=4, fc_bits=4))
    data = pack(plain, None)
    assert struct.unpack_from("<H", data, 8) == (1,)
    assert parse_nsz(data).version == 1 and "binarize" not in parse_nsz(data).header
    data = pack(binary_model("lenet5", "bwn"), None)
    assert struct.unpack_from("<H", data, 8) == (2,)


def test_version_1_files_with_version_2_parts_are_refused():
    data = bytearray(pack(binary_model("lenet5", "xnor"), None))
    data[8:10] = struct.pack("<H", 1)  # the preamble is outside every checksum
    with pytest.raises(
        NszFormatError, match="'SGN ' .* needs format version 2; the file is version 1"
    ):
        parse_nsz(bytes(data))
    # A `binary` entry whose payload hides in a version-1 tag, and a `binarize` header.
    entry = {"name": "w", "shape": [2, 4], "encoding": "binary"}
    header = {"format": "netshrink-nsz", "model": None, "tensors": [entry]}
    with pytest.raises(NszFormatError, match="encoding 'binary' needs format version 2"):
        parse_nsz(write_container(header, [(b"RAW ", b"\0"), (b"RAW ", bytes(8))]))
    header = {"format": "netshrink-nsz", "model": None, "tensors": [], "binarize": {}}
    with pytest.raises(NszFormatError, match="'binarize' needs format version 2"):
        parse_nsz(write_container(header, []))


def test_mixed_binarizations_are_stored_as_a_list(tmp_path):
    torch.manual_seed(0)
    model = create("lenet5", **ARGS)
    binarize_(model, BinarizeConfig(mode="bwn", layers=["conv2"]))
    binarize_(model, BinarizeConfig(mode="xnor", layers=["fc1"], input_scale=False))
    model.eval()
    path = tmp_path / "mixed.nsz"
    pack(model, path, model_name="lenet5", model_args=ARGS)
    assert read_nsz(path).header["binarize"] == [
        {"mode": "bwn", "layers": ["conv2"], "input_scale": True, "clip": 1.0},
        {"mode": "xnor", "layers": ["fc1"], "input_scale": False, "clip": 1.0},
    ]
    restored = unpack(path)
    assert (restored.conv2.mode, restored.fc1.mode, restored.fc1.input_scale) == (
        "bwn", "xnor", False,
    )  # fmt: skip
    assert_same_outputs(restored, model, torch.randn(16, 1, 28, 28))


def test_unpack_binarizes_a_float_skeleton_and_checks_a_binary_one(tmp_path):
    model = binary_model("lenet5", "xnor")
    path = tmp_path / "m.nsz"
    pack(model, path)  # no architecture name: a skeleton is needed
    x = torch.randn(16, 1, 28, 28)
    restored = unpack(path, model=create("lenet5", **ARGS))
    assert is_binary(restored.conv2) and is_binary(restored.fc1) and not is_binary(restored.fc2)
    assert_same_outputs(restored, model, x)
    same = create("lenet5", **ARGS)
    binarize_(same, BinarizeConfig(mode="xnor"))
    assert_same_outputs(unpack(path, model=same), model, x)
    other = create("lenet5", **ARGS)
    binarize_(other, BinarizeConfig(mode="bwn"))
    with pytest.raises(NetshrinkError, match="mode='bwn' in the model, mode='xnor' in the file"):
        unpack(path, model=other)
    extra = create("lenet5", **ARGS)
    binarize_(extra, BinarizeConfig(mode="xnor", layers=["fc2"]))
    with pytest.raises(NetshrinkError, match="'fc2' is binary in the model but not in the file"):
        unpack(path, model=extra)
    assert not is_binary(extra.conv2)  # refused before anything changed


def test_a_layer_both_binary_and_shared_is_refused():
    model = binary_model("lenet5", "bwn")
    share_weights_(model, WeightSharingConfig(exclude=["fc1", "fc2", "conv1"], conv_bits=2))
    with pytest.raises(NetshrinkError, match="'conv2' is both binary and weight-shared"):
        pack(model, None)


def test_report_labels_binary_layers_and_keeps_its_keys():
    data = pack(binary_model("lenet5", "xnor"), None, model_name="lenet5", model_args=ARGS)
    report = compression_report(parse_nsz(data))
    summary = json.loads(json.dumps(report.to_dict()))
    rows = {r["name"]: r for r in summary["layers"]}
    assert rows["conv2"]["encoding"] == "binary" and rows["fc2"]["encoding"] == "raw"
    assert rows["fc2"]["bits_per_weight"] == pytest.approx(8 * rows["fc2"]["bytes"] / 5000)
    for key in ("ratio", "ratio_pq", "bytes", "weights", "density", "weight_bits"):
        assert key in rows["conv2"]
    layer_bytes = sum(r["bytes"] for r in summary["layers"])
    assert summary["bits_per_weight"] == pytest.approx(8 * layer_bytes / summary["weights"])
    text = render_report(report)
    line = next(line for line in text.splitlines() if line.startswith("conv2 "))
    assert "binary" in line and f"{rows['conv2']['bits_per_weight']:.2f}" in line
    assert "bits/w" in text.splitlines()[0]


# --- damaged files --------------------------------------------------------------------------


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)  # 108 weights: the sign bits end mid-byte
        self.fc = nn.Linear(24, 4)
        self.out = nn.Linear(4, 3)


def tiny_binary() -> bytes:
    torch.manual_seed(0)
    model = Tiny()
    binarize_(model, BinarizeConfig(mode="xnor", layers=["conv", "fc"]))
    return pack(model, None)


def rebuild(data: bytes, edit_header=None, edit_sections=None) -> bytes:
    """The file rewritten through the writer, with its header or sections edited."""
    nsz = parse_nsz(data)
    header = json.loads(json.dumps(nsz.header))
    parts = sections(data)
    if edit_header:
        edit_header(header)
    if edit_sections:
        edit_sections(parts)
    return write_container(header, parts, min_version=nsz.version)


def _set(index: int, payload: bytes):
    def edit(parts):
        parts[index] = (parts[index][0], payload)

    return edit


def _scales(values):
    return struct.pack(f"<{len(values)}f", *values)


SGN, SCL = 0, 1  # conv.weight's sections come first


@pytest.mark.parametrize(
    ("edit_sections", "edit_header", "message"),
    [
        (lambda p: _set(SGN, p[SGN][1][:-1])(p), None, "13 sign bytes for 108 weights"),
        (lambda p: _set(SGN, p[SGN][1] + b"\0")(p), None, "15 sign bytes for 108 weights"),
        (lambda p: _set(SGN, p[SGN][1][:-1] + bytes([p[SGN][1][-1] | 1]))(p), None, "padding"),
        (lambda p: _set(SCL, p[SCL][1][:-4])(p), None, "20 scale bytes for 6 output filters"),
        (lambda p: _set(SCL, p[SCL][1] + bytes(4))(p), None, "28 scale bytes"),
        (_set(SCL, _scales([1, 1, float("nan"), 1, 1, 1])), None, "finite and non-negative"),
        (_set(SCL, _scales([1, 1, -0.5, 1, 1, 1])), None, "finite and non-negative"),
        (_set(SCL, _scales([1, 1, float("inf"), 1, 1, 1])), None, "finite and non-negative"),
        (None, lambda h: h["binarize"]["layers"].append("conv9"), "lists layer 'conv9'"),
        (None, lambda h: h["binarize"]["layers"].remove("fc"), "does not list its layer 'fc'"),
        (None, lambda h: h["binarize"]["layers"].append("out"), "'out', whose weight is not"),
        (None, lambda h: h["binarize"].update(mode="ternary"), "mode must be one of"),
        (None, lambda h: h["binarize"].update(clip=-1), "clip must be a positive"),
        (None, lambda h: h["binarize"].update(input_scale="yes"), "input_scale must be"),
        (None, lambda h: h["binarize"].update(exclude=["fc"]), "exactly the keys"),
        (None, lambda h: h["binarize"].update(layers=[]), "non-empty list"),
        (None, lambda h: h["binarize"].update(layers="conv"), "non-empty list"),
        (None, lambda h: h["binarize"].update(layers=["conv", "fc", "conv"]), "twice"),
        (None, lambda h: h.update(binarize=[]), "non-empty list"),
        (None, lambda h: h.update(binarize=None), "does not list its layer 'conv'"),
        (None, lambda h: h["tensors"][0].update(shape=[]), "at least one dimension"),
        (
            None,
            lambda h: h["tensors"][0].update(shape=[6, 2, 3, 4]),
            r"shape \(6, 2, 3, 4\) in the file",
        ),
    ],
)
def test_inconsistent_binary_parts_give_one_line_errors(edit_sections, edit_header, message):
    data = rebuild(tiny_binary(), edit_header, edit_sections)
    with pytest.raises(NetshrinkError, match=message) as info:
        load_into(parse_nsz(data), Tiny())
    assert "\n" not in str(info.value)


def test_a_binary_layer_that_is_no_conv_or_linear_in_the_skeleton_is_refused():
    torch.manual_seed(0)
    packed = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2))
    binarize_(packed, BinarizeConfig(layers=["0"]))
    data = pack(packed, None)
    skeleton = nn.Sequential(nn.Embedding(4, 3), nn.Linear(4, 2))  # the same state_dict keys
    with pytest.raises(NetshrinkError, match="binarizes layer '0'; the model has no Conv2d/Linear"):
        load_into(parse_nsz(data), skeleton)
