"""Valid ``.nsz`` files and the ways to damage them, shared by the fuzz tests and
``benchmarks/bench_fuzz.py``.

The corpus: a small pruned and weight-shared model (Huffman-coded or fixed width), the same
with two binary layers of different modes (version 2: ``SGN ``/``SCL `` sections and a
``binarize`` list in the header), and LeNet-300-100 rebuilt from its registry name.

Every damage takes a file and a :class:`Picker` (the source of choices: a seeded NumPy
generator for the benchmark, Hypothesis's ``data.draw`` for the tests, so Hypothesis can
shrink each choice) and returns the damaged bytes. :func:`exercise` feeds them to every
reader entry point: ``parse_nsz``, the inspect report, ``load_into`` (with ``skeleton``
for a file naming its architecture) and the sparse engine's ``load_sparse``.
"""

from __future__ import annotations

import functools
import json
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.nsz import (
    EncodingConfig,
    compression_report,
    load_into,
    pack,
    parse_nsz,
    render_report,
    skeleton,
)
from netshrink.nsz.container import MAGIC
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_

PREAMBLE = len(MAGIC) + 4  # magic, version, flags
FRAME = 12  # a section's tag and length, before its payload; its CRC-32 follows the payload


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


def _lenet_file() -> bytes:
    from netshrink.models import create

    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10)
    prune_(model, PruneConfig(sparsity={"*": 0.9}))
    share_weights_(model, WeightSharingConfig(fc_bits=4))
    return pack(model, None, model_name="lenet300_100", model_args={"num_classes": 10})


FILES = ("huffman", "fixed", "binary", "lenet")
SMALL_FILES = ("huffman", "fixed", "binary")  # under 1.2 KB: exhaustive tests take these


@functools.cache
def corpus_file(kind: str) -> bytes:
    """One valid file of the corpus (built once per process)."""
    if kind == "lenet":
        return _lenet_file()
    return _binary_file() if kind == "binary" else _tiny_file(kind == "huffman")


def skeleton_for(kind: str) -> nn.Module | None:
    """The model a file of ``kind`` is loaded into; None: rebuilt from the header's name."""
    return None if kind == "lenet" else Tiny()


# --- the file's structure --------------------------------------------------------------


def sections(data: bytes) -> list[tuple[int, bytes, int]]:
    """(frame offset, tag, payload length) of every section of a valid file."""
    out, offset = [], PREAMBLE
    while offset + FRAME <= len(data):
        tag, length = struct.unpack_from("<4sQ", data, offset)
        out.append((offset, tag, length))
        offset += FRAME + length + 4
    return out


def boundaries(data: bytes) -> list[int]:
    """Every structural boundary: the preamble's fields, each section's tag, length,
    payload and checksum, and the end of the file."""
    cuts = [0, len(MAGIC), len(MAGIC) + 2, PREAMBLE]
    for offset, _, length in sections(data):
        cuts += [offset + 4, offset + FRAME, offset + FRAME + length, offset + FRAME + length + 4]
    return sorted(set(cuts))


def fix_checksums(data: bytes | bytearray) -> bytes:
    """Recompute the CRC-32 of every section whose frame still fits, so that a damage reaches
    the reader's own checks of the fields instead of its checksum test."""
    data = bytearray(data)
    offset = PREAMBLE
    while offset + FRAME + 4 <= len(data):
        _, length = struct.unpack_from("<4sQ", data, offset)
        end = offset + FRAME + length
        if end + 4 > len(data):
            break
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[offset:end])))
        offset = end + 4
    return bytes(data)


def frame(tag: bytes, payload: bytes) -> bytes:
    """One section, checksum included."""
    head = struct.pack("<4sQ", tag, len(payload))
    return head + payload + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))


def header(data: bytes) -> dict[str, Any]:
    offset, _, length = sections(data)[0]
    return json.loads(zlib.decompress(data[offset + FRAME : offset + FRAME + length]))


def with_header_text(data: bytes, text: bytes) -> bytes:
    """``data`` with its HEAD section replaced by the zlib stream of ``text``."""
    return with_header_stream(data, zlib.compress(text, 9))


def with_header_stream(data: bytes, stream: bytes) -> bytes:
    offset, _, length = sections(data)[0]
    rest = data[offset + FRAME + length + 4 :]
    return data[:offset] + frame(b"HEAD", stream) + rest


@functools.cache
def zip_bomb() -> bytes:
    """A 64 kB zlib stream of 65 MiB of spaces (past the header's 64 MiB)."""
    return zlib.compress(b" " * (65 << 20), 9)


def with_header(data: bytes, value: Any) -> bytes:
    """``data`` with the header ``value``; the strings ``nested(depth)`` puts in it become
    arrays nested ``depth`` deep (written as text: ``json.dumps`` would recurse)."""
    text = json.dumps(value)
    for depth in {int(d) for d in re.findall(r'"@nested:(\d+)"', text)}:
        text = text.replace(f'"@nested:{depth}"', "[" * depth + "0" + "]" * depth)
    return with_header_text(data, text.encode())


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The preamble and each section's bytes (frame, payload and checksum)."""
    parts = [data[o : o + FRAME + n + 4] for o, _, n in sections(data)]
    return data[:PREAMBLE], parts


# --- choices ---------------------------------------------------------------------------


class Picker:
    """Where a damage gets its choices: ``integer(low, high)`` (inclusive), ``choice``."""

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]


class NumpyPicker(Picker):
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high, endpoint=True))


class DrawPicker(Picker):
    """Choices from Hypothesis (``st.data()``): each one shrinks on its own."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(self.st.integers(low, high))

    def choice(self, options: Sequence[Any]) -> Any:
        return self.data.draw(self.st.sampled_from(options))


# --- damage ----------------------------------------------------------------------------

EXTREME_INTS = [
    -(2**63), -(2**31), -1, 0, 1, 2, 7, 15, 16, 17, 255, 2**16, 2**29, 2**29 + 1, 2**31,
    2**32, 2**32 - 1, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30,
]  # fmt: skip
EXTREME_VALUES = [
    *EXTREME_INTS, 3.5, -0.0, 1e308, "x", "", None, [], {}, True, False, [2**40], [[1]],
    {"a": 1}, "raw", "shared", "binary", "sparse", "dense", "float16", "int64",
]  # fmt: skip
SHAPES = [
    [2**32, 2**32], [2**63, 2], [2**62, 4], [2**64, 0], [0, 2**70], [2**31, 2**31, 2**31],
    [-1, -1], [1] * 9, [6, 2, 3, 3], [3, 36], [2**29], [2**29 + 1], [], [0], [1.5], ["6"],
]  # fmt: skip
STREAM_FIELDS = {"coding": (0, "<B"), "symbol_bits": (1, "<B"), "count": (2, "<Q")}
STREAM_FIELDS |= {"n_bits": (10, "<Q"), "table_size": (18, "<I")}
U64_VALUES = [0, 1, 2, 7, 8, 255, 2**31, 2**32, 2**32 - 1, 2**40, 2**63 - 1, 2**63, 2**64 - 1]


def _nested(depth: int) -> str:
    """A placeholder :func:`with_header` writes as ``[[...[0]...]]``, ``depth`` deep."""
    return f"@nested:{depth}"


def truncate_at_boundary(data: bytes, pick: Picker) -> bytes:
    cut = pick.choice(boundaries(data)[:-1]) + pick.integer(-2, 2)
    return data[: max(cut, 0)]


def truncate_anywhere(data: bytes, pick: Picker) -> bytes:
    return data[: pick.integer(0, len(data) - 1)]


def flip_bits(data: bytes, pick: Picker) -> bytes:
    out = bytearray(data)
    for _ in range(pick.integer(1, 3)):
        out[pick.integer(0, len(out) - 1)] ^= 1 << pick.integer(0, 7)
    return bytes(out)


def overwrite_bytes(data: bytes, pick: Picker) -> bytes:
    """Random bytes over a span, or bytes inserted, or a large u64 written anywhere."""
    out = bytearray(data)
    at = pick.integer(0, len(out) - 1)
    how = pick.integer(0, 2)
    if how == 0:
        out[at : at + 8] = bytes(pick.integer(0, 255) for _ in range(pick.integer(1, 8)))
    elif how == 1:
        out[at:at] = bytes(pick.integer(0, 255) for _ in range(pick.integer(1, 4)))
    else:
        out[at : at + 8] = struct.pack("<Q", pick.choice(U64_VALUES))
    return bytes(out)


def edit_behind_checksum(data: bytes, pick: Picker) -> bytes:
    """Bytes of one payload changed, every checksum recomputed: the fields' checks must
    catch it."""
    out = bytearray(data)
    offset, _, length = pick.choice([s for s in sections(data) if s[2]])
    for _ in range(pick.integer(1, 3)):
        at = offset + FRAME + pick.integer(0, length - 1)
        out[at] = pick.choice([0, 255, out[at] ^ 1, out[at] ^ 0x80, pick.integer(0, 255)])
    return fix_checksums(out)


def splice_files(data: bytes, pick: Picker) -> bytes:
    """The start of this file and the end of another (anywhere, or at section boundaries),
    or one section swapped for another file's; checksums recomputed or not."""
    other = corpus_file(pick.choice(FILES))
    how = pick.integer(0, 2)
    if how == 0:
        out = data[: pick.integer(0, len(data))] + other[pick.integer(0, len(other)) :]
    elif how == 1:
        out = data[: pick.choice(boundaries(data))] + other[pick.choice(boundaries(other)) :]
    else:
        preamble, parts = split(data)
        parts[pick.integer(0, len(parts) - 1)] = pick.choice(split(other)[1])
        out = preamble + b"".join(parts)
    return fix_checksums(out) if pick.integer(0, 1) else out


def reorder_sections(data: bytes, pick: Picker) -> bytes:
    """Whole sections (valid checksums) duplicated, dropped, swapped, or moved: a second
    HEAD, an END in the middle, a tensor's sections out of order."""
    preamble, parts = split(data)
    i, j = pick.integer(0, len(parts) - 1), pick.integer(0, len(parts) - 1)
    how = pick.integer(0, 3)
    if how == 0:
        parts.insert(j, parts[i])
    elif how == 1:
        del parts[i]
    elif how == 2:
        parts[i], parts[j] = parts[j], parts[i]
    else:
        parts.insert(j, frame(pick.choice([b"END ", b"HEAD", b"SGN ", b"XYZW"]), b""))
    return preamble + b"".join(parts)


def extreme_length(data: bytes, pick: Picker) -> bytes:
    """A section declares an extreme length; its checksum recomputed over the new frame."""
    out = bytearray(data)
    offset, _, length = pick.choice(sections(data))
    value = pick.choice([*U64_VALUES, length + 1, max(length - 1, 0), len(data)])
    struct.pack_into("<Q", out, offset + 4, value)
    return fix_checksums(out)


def extreme_stream_field(data: bytes, pick: Picker) -> bytes:
    """A symbol stream's coding, width, count, bit count or table size set to an extreme,
    checksums recomputed."""
    streams = [s for s in sections(data) if s[1] in (b"GAP ", b"IDX ") and s[2] >= 22]
    if not streams:
        return flip_bits(data, pick)
    out = bytearray(data)
    offset, _, _ = pick.choice(streams)
    at, fmt = STREAM_FIELDS[pick.choice(sorted(STREAM_FIELDS))]
    bits = 8 * struct.calcsize(fmt)
    value = pick.choice([v for v in U64_VALUES if v < 1 << bits] + [17, 3, 16])
    struct.pack_into(fmt, out, offset + FRAME + at, value % (1 << bits))
    return fix_checksums(out)


def _tensor_value(entry: dict[str, Any], key: str, pick: Picker) -> Any:
    if key == "shape":
        return pick.choice(SHAPES)
    if key == "codebook_size" and pick.integer(0, 1):
        return pick.choice([2**32, 2**32 - 1, 2**16, 2**16 - 1, entry.get(key, 0) + 1])
    if key == "encoding" and pick.integer(0, 1):
        return pick.choice(["raw", "shared", "sparse", "binary", "float", "huffman", "RAW"])
    return pick.choice(EXTREME_VALUES)


def extreme_header_field(data: bytes, pick: Picker) -> bytes:
    """One header value (a tensor's field, the model's, the binarize list's, or a top-level
    key) set to an extreme, deleted, or added; checksums recomputed."""
    head = header(data)
    places: list[tuple[dict[str, Any], str]] = []
    for entry in head["tensors"]:
        places += [(entry, key) for key in [*entry, "layout", "storage", "index_bits"]]
    if isinstance(head.get("model"), dict):
        model = head["model"]
        places += [(model, key) for key in model]
        places += [(model["args"], key) for key in [*model["args"], "in_chans", "depth"]]
    binarize = head.get("binarize") or []
    for group in binarize if isinstance(binarize, list) else [binarize]:
        places += [(group, key) for key in group]
    places += [(head, key) for key in [*head, "binarize"]]
    target, key = pick.choice(places)
    if pick.integer(0, 9) == 0:
        target.pop(key, None)
    elif isinstance(head.get("model"), dict) and target is head["model"]["args"]:
        target[key] = pick.choice(EXTREME_VALUES)
    elif key == "input_size":
        target[key] = pick.choice([[3, 2**31, 2**31], [1, 28, 28], ["x"], [-1], [0, 0, 0]])
    elif key == "layers":
        target[key] = [pick.choice(["conv", "fc", "bn", "out", "*", "fc1"])]
    elif target is head and key == "binarize":
        target[key] = pick.choice([[], {}, [{"mode": "bwn"}], "bwn", None, _nested(3)])
    else:
        target[key] = _tensor_value(target, key, pick)
    return with_header(data, head)


def malformed_header(data: bytes, pick: Picker) -> bytes:
    """Structural header damage: deep nesting, huge text, duplicate tensor names or JSON
    keys, NaN, an unknown encoding, a non-object, a zlib stream cut short; checksums valid."""
    head = header(data)
    entries = head["tensors"]
    how = pick.integer(0, 9)
    if how == 0:
        head["metadata"] = {"deep": _nested(pick.choice([50, 900, 5000, 100_000]))}
    elif how == 1:
        size = pick.choice([1 << 10, 1 << 20, 2**18 - 100, 2**18])  # values: about the limit
        head["metadata"] = {"big": "x" * size} if size % 1024 == 0 else {"n": [0] * size}
    elif how == 2:
        head["tensors"] = entries * pick.choice([2, 300, 3500])  # 3500: past 2**18 values
    elif how == 3:
        entries[pick.integer(0, len(entries) - 1)]["name"] = entries[0]["name"]
    elif how == 4:
        text = json.dumps(head)
        key = pick.choice(['"tensors": ', '"format": ', '"name": ', '"shape": '])
        return with_header_text(data, text.replace(key, key + "[], " + key, 1).encode())
    elif how == 5:
        text = json.dumps(head).replace("0.", pick.choice(["NaN", "Infinity", "1e999"]), 1)
        return with_header_text(data, text.encode())
    elif how == 6:
        entries[pick.integer(0, len(entries) - 1)]["encoding"] = pick.choice(
            ["binary2", "shared", "sparse", "raw", "", None, 7, _nested(900)]
        )
    elif how == 7:
        text = pick.choice([b"[]", b"{", b'"x"', b"{}", b"null", b"\xff\xfe", b"bomb"])
        return (
            with_header_stream(data, zip_bomb())
            if text == b"bomb"
            else with_header_text(data, text)
        )
    elif how == 8:
        offset, _, length = sections(data)[0]
        stream = data[offset + FRAME : offset + FRAME + length]
        stream = stream[: pick.integer(0, len(stream) - 1)] + b"\x00" * pick.integer(0, 3)
        rest = data[offset + FRAME + length + 4 :]
        return data[:offset] + frame(b"HEAD", stream) + rest
    else:
        head["tensors"] = [{**e, "name": e["name"] + "\n" * pick.integer(0, 1)} for e in entries]
        head["format"] = pick.choice(["netshrink-nsz", "netshrink-nsz2", _nested(900), "\n"])
    return with_header(data, head)


def preamble_fields(data: bytes, pick: Picker) -> bytes:
    """A newer, zero or huge version, non-zero flags, or a damaged magic number."""
    out = bytearray(data)
    how = pick.integer(0, 2)
    if how == 0:
        struct.pack_into("<H", out, len(MAGIC), pick.choice([0, 1, 2, 3, 255, 256, 0xFFFF]))
    elif how == 1:
        struct.pack_into("<H", out, len(MAGIC) + 2, pick.choice([1, 0x100, 0x8000, 0xFFFF]))
    else:
        out[pick.integer(0, len(MAGIC) - 1)] = pick.integer(0, 255)
    return bytes(out)


DAMAGES: dict[str, Callable[[bytes, Picker], bytes]] = {
    "truncate_at_boundary": truncate_at_boundary,
    "truncate_anywhere": truncate_anywhere,
    "flip_bits": flip_bits,
    "overwrite_bytes": overwrite_bytes,
    "edit_behind_checksum": edit_behind_checksum,
    "splice_files": splice_files,
    "reorder_sections": reorder_sections,
    "extreme_length": extreme_length,
    "extreme_stream_field": extreme_stream_field,
    "extreme_header_field": extreme_header_field,
    "malformed_header": malformed_header,
    "preamble_fields": preamble_fields,
}


# --- reading ---------------------------------------------------------------------------


def exercise(data: bytes, kind: str) -> None:
    """Every reader entry point on ``data``: parse, the inspect report (rendered and as
    JSON), ``load_into`` (a ``skeleton`` when the file names its architecture, else the
    corpus model) and the sparse engine's loader. Returns if the file loads; raises what
    the reader raises otherwise."""
    from netshrink.engine.sparse import load_sparse

    nsz = parse_nsz(data)
    report = compression_report(nsz)
    render_report(report)
    json.dumps(report.to_dict(), allow_nan=False)
    given = skeleton_for(kind)
    load_into(nsz, given if given is not None else skeleton(nsz))
    load_sparse(nsz, model=skeleton_for(kind), warn=False)
