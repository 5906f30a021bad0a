"""Thousands of damaged ``.nsz`` files: each must load or fail with one ``NetshrinkError``.

The corpus: a small pruned and weight-shared model (Huffman-coded or fixed width), the same
with two binary layers of different modes (version 2: ``SGN ``/``SCL `` sections and a
``binarize`` list in the header), and LeNet-300-100 rebuilt from its registry name.

Three kinds of damage: raw byte edits (caught by checksums or framing), edits inside a
section with the checksums recomputed (so the reader's own validation of every field is
exercised), and edits of the header's JSON values (shapes, counts, bits, names).
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.errors import NetshrinkError
from netshrink.nsz import EncodingConfig, load_into, pack, parse_nsz, skeleton
from netshrink.nsz.container import MAGIC
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(24, 4)
        self.out = nn.Linear(4, 3)


def _tiny_file(huffman: bool) -> bytes:
    torch.manual_seed(0)
    model = Tiny()
    prune_(model, PruneConfig(sparsity={"conv": 0.6, "fc": 0.8, "out": 0.5}))
    share_weights_(model, WeightSharingConfig(exclude=["out"], conv_bits=3, fc_bits=2))
    return pack(model, None, EncodingConfig(huffman=huffman, conv_index_bits=2, fc_index_bits=2))


def _binary_file() -> bytes:
    torch.manual_seed(0)
    model = Tiny()
    binarize_(model, BinarizeConfig(mode="bwn", layers=["conv"]))  # 108 weights: pad bits
    binarize_(model, BinarizeConfig(mode="xnor", layers=["fc"]))
    prune_(model, PruneConfig(sparsity={"out": 0.5}))
    return pack(model, None, EncodingConfig(fc_index_bits=2))


def _file(kind: str) -> bytes:
    return _binary_file() if kind == "binary" else _tiny_file(kind == "huffman")


FILES = ["huffman", "fixed", "binary"]
SEEDS = {"huffman": 1, "fixed": 2, "binary": 6}


def _lenet_file() -> bytes:
    from netshrink.models import create

    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10)
    prune_(model, PruneConfig(sparsity={"*": 0.9}))
    share_weights_(model, WeightSharingConfig(fc_bits=4))
    return pack(model, None, model_name="lenet300_100", model_args={"num_classes": 10})


def _sections(data: bytes) -> list[tuple[int, int]]:
    """(payload offset, payload length) of every section of a valid file."""
    out, offset = [], len(MAGIC) + 4
    while offset < len(data):
        _, length = struct.unpack_from("<4sQ", data, offset)
        out.append((offset + 12, length))
        offset += 12 + length + 4
    return out


def _fix_checksums(data: bytearray) -> bytearray:
    offset = len(MAGIC) + 4
    while offset + 16 <= len(data):
        _, length = struct.unpack_from("<4sQ", data, offset)
        end = offset + 12 + length
        if end + 4 > len(data):
            break
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[offset:end])))
        offset = end + 4
    return data


def _load(data: bytes, model: nn.Module | None) -> None:
    nsz = parse_nsz(data)
    load_into(nsz, model if model is not None else skeleton(nsz))


def _must_fail_cleanly(data: bytes, skeleton: nn.Module | None) -> None:
    try:
        _load(bytes(data), skeleton)
    except NetshrinkError as exc:
        assert "\n" not in str(exc)


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> bytearray:
    out = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # flip bits
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(len(out))
            out[i] ^= 1 << rng.integers(8)
    elif kind == 1:  # truncate
        del out[rng.integers(len(out)) :]
    elif kind == 2:  # random bytes over a span
        i = rng.integers(len(out))
        out[i : i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    elif kind == 3:  # insert
        i = rng.integers(len(out))
        out[i:i] = rng.integers(0, 256, rng.integers(1, 5), dtype=np.uint8).tobytes()
    else:  # large values into a length or count field
        i = rng.integers(max(len(out) - 8, 1))
        out[i : i + 8] = struct.pack("<Q", int(rng.choice([2**31, 2**40, 2**63 - 1, 0, 1])))
    return out


@pytest.mark.parametrize("kind", FILES)
def test_random_byte_damage_never_crashes(kind):
    data = _file(kind)
    rng = np.random.default_rng(SEEDS[kind])
    for _ in range(1000):
        _must_fail_cleanly(_mutate_bytes(data, rng), Tiny())


@pytest.mark.parametrize("kind", FILES)
def test_damage_behind_valid_checksums_is_caught_by_the_fields_checks(kind):
    data = _file(kind)
    sections = _sections(data)[1:-1]  # data sections: HEAD and END are the header's tests
    rng = np.random.default_rng(SEEDS[kind] + 2)
    for _ in range(1000):
        out = bytearray(data)
        start, length = sections[rng.integers(len(sections))]
        if length == 0:
            continue
        for _ in range(rng.integers(1, 4)):
            i = start + rng.integers(length)
            if rng.random() < 0.5:
                out[i] ^= 1 << rng.integers(8)
            else:
                out[i] = rng.choice([0, 255, int(rng.integers(256))])
        _must_fail_cleanly(_fix_checksums(out), Tiny())


def _rewrite_header(data: bytes, header: dict) -> bytes:
    (start, length) = _sections(data)[0]
    head = zlib.compress(json.dumps(header).encode())
    out = bytearray(data[: start - 8]) + struct.pack("<Q", len(head)) + head + bytes(4)
    out += data[start + length + 4 :]
    return bytes(_fix_checksums(out))


def _header(data: bytes) -> dict:
    start, length = _sections(data)[0]
    return json.loads(zlib.decompress(data[start : start + length]))


BAD_VALUES = [-1, 0, 1, 17, 2**31, 2**62, 10**30, 3.5, "x", None, [], {}, True, [2**40]]


@pytest.mark.parametrize("file", ["tiny", "lenet", "binary"])
def test_lying_header_values_are_refused_without_giant_allocations(file):
    data = {"tiny": _tiny_file(True), "lenet": _lenet_file(), "binary": _binary_file()}[file]
    header = _header(data)
    rng = np.random.default_rng(5)
    _load(_rewrite_header(data, header), None if file == "lenet" else Tiny())  # faithful
    for _ in range(400):
        bad = json.loads(json.dumps(header))
        target = bad
        if rng.random() < (0.6 if file == "binary" else 0.8):
            target = bad["tensors"][rng.integers(len(bad["tensors"]))]
        elif file == "lenet" and rng.random() < 0.5:
            target = bad["model"]["args"] if rng.random() < 0.5 else bad["model"]
        elif file == "binary" and rng.random() < 0.8:
            target = bad["binarize"][rng.integers(len(bad["binarize"]))]
        key = list(target)[rng.integers(len(target))] if target else "x"
        value = BAD_VALUES[rng.integers(len(BAD_VALUES))]
        if key == "shape" and rng.random() < 0.5:
            value = [int(v) for v in rng.choice([1, 3, 2**20, 2**31], size=rng.integers(1, 4))]
        if key == "layers" and rng.random() < 0.5:  # real names of other layers, or a pattern
            value = [
                str(v) for v in rng.choice(["conv", "fc", "bn", "out", "*"], rng.integers(1, 3))
            ]
        if rng.random() < 0.1:
            target.pop(key, None)
        else:
            target[key] = value
        _must_fail_cleanly(_rewrite_header(data, bad), None if file == "lenet" else Tiny())


def test_a_header_that_is_no_json_object_or_a_zip_bomb_is_refused():
    data = _tiny_file(True)
    for payload in (b"[]", b"{", b'"x"', b"{}", b" " * (65 << 20)):
        start, length = _sections(data)[0]
        head = zlib.compress(payload)
        out = bytearray(data[: start - 8]) + struct.pack("<Q", len(head)) + head + bytes(4)
        out += data[start + length + 4 :]
        with pytest.raises(NetshrinkError):
            _load(bytes(_fix_checksums(out)), Tiny())
