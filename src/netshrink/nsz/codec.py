"""Tensor encodings of the ``.nsz`` format: ``shared``, ``sparse``, ``binary`` and ``raw``.

- ``shared``: a weight-shared (and usually pruned) layer. Symbols ``0..2**bits - 1``: 0 is an
  exact zero, ``s >= 1`` is ``codebook[s - 1]``. Layout ``sparse`` stores the relative index
  (``GAP ``) and the symbols of the stored entries (``IDX ``); layout ``dense`` stores a
  symbol for every position. The writer picks the smaller.
- ``sparse``: a pruned float layer: relative index (``GAP ``) plus fp32 values (``VAL ``).
- ``binary``: a BWN/XNOR layer's weight ``where(negative, -α, α)``: one sign bit per weight
  (``SGN ``, MSB-first, set = -1) and one float32 ``α`` per output filter (``SCL ``).
- ``raw``: the tensor's values, little-endian, as float32, float16 or int64 (``RAW ``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netshrink.nsz.container import NszFormatError, shown
from netshrink.nsz.streams import decode_stream, encode_stream, stream_info
from netshrink.primitives.relindex import decode_positions, encode_positions, scatter_relative

__all__ = [
    "EncodedTensor",
    "StoredNonzeros",
    "decode_nonzeros",
    "decode_tensor",
    "encode_binary",
    "encode_raw",
    "encode_shared",
    "encode_sparse",
]

RAW_DTYPES = {"float32": "<f4", "float16": "<f2", "int64": "<i8"}
# The format version that introduced each encoding (docs/format.md, "Version history").
ENCODING_VERSIONS = {"raw": 1, "sparse": 1, "shared": 1, "binary": 2}
MAX_ELEMENTS = 1 << 29  # per tensor (2 GiB of fp32); far above VGG-16's largest layer


@dataclass
class EncodedTensor:
    """One tensor's header entry and its data sections (``(tag, payload)``, in order)."""

    entry: dict[str, Any]
    sections: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(len(p) for _, p in self.sections)


def encode_raw(name: str, values: np.ndarray, storage: str = "float32") -> EncodedTensor:
    """Store ``values`` as they are (floats as ``storage``: float32 or float16)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer):
        storage = "int64"
    elif storage not in ("float32", "float16"):
        raise ValueError(f"raw storage must be float32 or float16, got {storage!r}")
    payload = np.ascontiguousarray(values, dtype=RAW_DTYPES[storage]).tobytes()
    entry = {"name": name, "shape": list(values.shape), "encoding": "raw", "storage": storage}
    return EncodedTensor(entry, [(b"RAW ", payload)])


def encode_shared(
    name: str,
    symbols: np.ndarray,
    codebook: np.ndarray,
    bits: int,
    index_bits: int,
    coding: str = "auto",
) -> EncodedTensor:
    """Store a weight-shared layer: ``symbols`` (its shape is the tensor's) and ``codebook``.

    ``coding`` applies to both streams (``"auto"`` uses Huffman where it is smaller).
    """
    shape = list(np.shape(symbols))
    flat = np.asarray(symbols).ravel()
    codebook = np.asarray(codebook, dtype="<f4").ravel()
    if codebook.size >= 1 << bits:
        raise ValueError(f"{name}: codebook of {codebook.size} needs more than {bits} bits")
    if flat.size and int(flat.max()) > codebook.size:
        raise ValueError(f"{name}: symbol {int(flat.max())} beyond the codebook")
    entry: dict[str, Any] = {
        "name": name,
        "shape": shape,
        "encoding": "shared",
        "bits": int(bits),
        "codebook_size": int(codebook.size),
        "nonzeros": int(np.count_nonzero(flat)),
    }
    gaps, entries = encode_positions(np.flatnonzero(flat), flat.size, index_bits)
    sparse = [
        (b"CBK ", codebook.tobytes()),
        (b"GAP ", encode_stream(gaps, index_bits, coding)),
        (b"IDX ", encode_stream(flat[entries], bits, coding)),
    ]
    best = EncodedTensor({**entry, "layout": "sparse", "index_bits": int(index_bits)}, sparse)
    if entries.size > flat.size // 4:  # dense storage can only win when few positions are zero
        dense = [(b"CBK ", codebook.tobytes()), (b"IDX ", encode_stream(flat, bits, coding))]
        candidate = EncodedTensor({**entry, "layout": "dense"}, dense)
        if candidate.nbytes < best.nbytes:
            best = candidate
    return best


def encode_sparse(
    name: str, values: np.ndarray, index_bits: int, coding: str = "auto"
) -> EncodedTensor:
    """Store a pruned float tensor as a relative index plus fp32 values; ``raw`` if smaller."""
    values = np.asarray(values, dtype=np.float32)
    flat = values.ravel()
    gaps, entries = encode_positions(np.flatnonzero(flat), flat.size, index_bits)
    sections = [
        (b"GAP ", encode_stream(gaps, index_bits, coding)),
        (b"VAL ", flat[entries].astype("<f4").tobytes()),
    ]
    entry = {
        "name": name,
        "shape": list(values.shape),
        "encoding": "sparse",
        "index_bits": int(index_bits),
        "nonzeros": int(np.count_nonzero(flat)),
    }
    sparse = EncodedTensor(entry, sections)
    raw = encode_raw(name, values)
    return sparse if sparse.nbytes < raw.nbytes else raw


def encode_binary(name: str, negative: np.ndarray, scales: np.ndarray) -> EncodedTensor:
    """Store a binary layer's weight ``where(negative, -scales[o], scales[o])`` (XNOR-Net §3.1).

    ``negative`` (bool, the weight's shape) becomes one bit per weight, C order, MSB-first
    (set = -1; pad bits zero); ``scales`` one little-endian float32 per output filter.
    """
    negative = np.asarray(negative, dtype=bool)
    scales = np.asarray(scales, dtype="<f4").ravel()
    if negative.ndim < 1 or scales.size != negative.shape[0]:
        raise ValueError(f"{name}: {scales.size} scales for a weight of shape {negative.shape}")
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise ValueError(f"{name}: binary scales must be finite and non-negative")
    signs = np.packbits(negative.ravel(), bitorder="big")  # ceil(n / 8) bytes, pad bits 0
    entry = {"name": name, "shape": list(negative.shape), "encoding": "binary"}
    return EncodedTensor(entry, [(b"SGN ", signs.tobytes()), (b"SCL ", scales.tobytes())])


# --- reading -------------------------------------------------------------------------------


def _int(entry: dict[str, Any], key: str, low: int, high: int) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise NszFormatError(
            f"tensor {shown(entry.get('name'))}: {key} must be an integer in {low}..{high}, "
            f"got {shown(value)}"
        )
    return value


def entry_shape(entry: dict[str, Any]) -> tuple[int, ...]:
    """The declared shape, validated: at most 8 integers in ``0..MAX_ELEMENTS`` (bounded
    even beside a zero, so every product fits an int64), at most ``MAX_ELEMENTS`` values."""
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 8:
        raise NszFormatError(f"tensor {shown(entry.get('name'))}: invalid shape {shown(shape)}")
    for dim in shape:
        if not isinstance(dim, int) or isinstance(dim, bool) or not 0 <= dim <= MAX_ELEMENTS:
            raise NszFormatError(f"tensor {shown(entry.get('name'))}: invalid shape {shown(shape)}")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS:
        raise NszFormatError(
            f"tensor {shown(entry.get('name'))} declares {numel} values, more than {MAX_ELEMENTS}"
        )
    return tuple(shape)


EXPECTED_TAGS = {
    ("raw", None): (b"RAW ",),
    ("shared", "sparse"): (b"CBK ", b"GAP ", b"IDX "),
    ("shared", "dense"): (b"CBK ", b"IDX "),
    ("sparse", None): (b"GAP ", b"VAL "),
    ("binary", None): (b"SGN ", b"SCL "),
}


def section_tags(entry: dict[str, Any]) -> tuple[bytes, ...]:
    """The section tags an entry owns, in file order; errors for an unknown encoding."""
    encoding = entry.get("encoding")
    layout = entry.get("layout") if encoding == "shared" else None
    tags = None
    if isinstance(encoding, str) and (layout is None or isinstance(layout, str)):
        tags = EXPECTED_TAGS.get((encoding, layout))
    if tags is None:
        raise NszFormatError(
            f"tensor {shown(entry.get('name'))}: unknown encoding {shown(encoding)}"
            + (f" layout {shown(layout)}" if layout is not None else "")
        )
    return tags


def validate_entry(entry: dict[str, Any]) -> None:
    """Check every field an entry's encoding uses (types and ranges), before any decoding."""
    name = entry.get("name")
    entry_shape(entry)
    section_tags(entry)
    encoding = entry["encoding"]
    if encoding == "raw":
        storage = entry.get("storage")
        if not isinstance(storage, str) or storage not in RAW_DTYPES:
            raise NszFormatError(f"tensor {name!r}: unknown raw storage {shown(storage)}")
        return
    if encoding == "binary":
        if not entry["shape"]:
            raise NszFormatError(f"tensor {name!r}: a binary tensor needs at least one dimension")
        return
    if encoding == "sparse" or entry.get("layout") == "sparse":
        _int(entry, "index_bits", 1, 16)
    if encoding == "shared":
        bits = _int(entry, "bits", 1, 16)
        _int(entry, "codebook_size", 0, (1 << bits) - 1)
    if "nonzeros" in entry:
        _int(entry, "nonzeros", 0, MAX_ELEMENTS)


def _gaps(entry: dict[str, Any], gaps_payload, numel: int) -> np.ndarray:
    index_bits = _int(entry, "index_bits", 1, 16)
    info = stream_info(gaps_payload)
    if info.symbol_bits != index_bits:
        raise NszFormatError(f"tensor {entry['name']!r}: gap stream is not {index_bits}-bit")
    # Fillers cover every run of zeros, trailing ones included (primitives.relindex).
    if numel > (info.count + 1) << index_bits:
        raise NszFormatError(
            f"tensor {entry['name']!r}: {info.count} entries cannot cover {numel} values"
        )
    return decode_stream(gaps_payload)


def _scatter(entry: dict[str, Any], gaps: np.ndarray, values: np.ndarray, numel: int):
    try:
        return scatter_relative(gaps, values, numel)
    except ValueError as exc:
        raise NszFormatError(f"tensor {entry['name']!r}: {exc}") from None


def decode_tensor(entry: dict[str, Any], payloads: list[memoryview]) -> np.ndarray:
    """Rebuild one tensor from its header entry and its section payloads (in ``section_tags``
    order). float32 for floating encodings, int64 for integer raw tensors."""
    name = entry.get("name")
    shape = entry_shape(entry)
    numel = math.prod(shape)
    encoding = entry["encoding"]
    if encoding == "raw":
        validate_entry(entry)
        storage = entry["storage"]
        dtype = np.dtype(RAW_DTYPES[storage])
        if len(payloads[0]) != numel * dtype.itemsize:
            raise NszFormatError(
                f"tensor {name!r}: {len(payloads[0])} bytes for {numel} {storage} values"
            )
        values = np.frombuffer(payloads[0], dtype)
        out = values.astype(np.int64 if storage == "int64" else np.float32)
        return out.reshape(shape)
    if encoding == "sparse":
        gaps, values = _sparse_parts(entry, payloads, numel)
        return _scatter(entry, gaps, values, numel).reshape(shape)
    if encoding == "binary":
        return _decode_binary(entry, shape, payloads[0], payloads[1])
    table, symbols, gaps = _shared_parts(entry, payloads, numel)
    if gaps is None:
        return table[symbols].reshape(shape)
    return _scatter(entry, gaps, table[symbols], numel).reshape(shape)


@dataclass(frozen=True)
class StoredNonzeros:
    """The nonzero weights of a ``shared`` or ``sparse`` tensor as the file stores them:
    flat (row-major) positions with codebook symbols (``codebook[symbols]``, 0-based) or
    float32 ``values``. What a sparse inference engine reads instead of a dense array."""

    shape: tuple[int, ...]
    positions: np.ndarray  # int64, ascending
    symbols: np.ndarray | None  # into ``codebook``; None for a ``sparse`` tensor
    codebook: np.ndarray | None  # float32
    values: np.ndarray | None  # float32; None for a ``shared`` tensor


def decode_nonzeros(entry: dict[str, Any], payloads: list[memoryview]) -> StoredNonzeros | None:
    """The stored nonzeros of a ``shared`` or ``sparse`` tensor, never expanded to a dense
    array; None for the other encodings. Validated like :func:`decode_tensor`."""
    shape = entry_shape(entry)
    numel = math.prod(shape)
    if entry["encoding"] == "sparse":
        gaps, values = _sparse_parts(entry, payloads, numel)
        positions = _positions(entry, gaps, numel)
        keep = values != 0  # the fillers of long zero runs
        return StoredNonzeros(shape, positions[keep], None, None, values[keep])
    if entry["encoding"] != "shared":
        return None
    table, symbols, gaps = _shared_parts(entry, payloads, numel)
    if gaps is None:
        positions = np.flatnonzero(symbols)
    else:
        positions = _positions(entry, gaps, numel)[symbols != 0]
    symbols = symbols[symbols != 0] - 1
    return StoredNonzeros(shape, positions.astype(np.int64), symbols, table[1:].copy(), None)


def _positions(entry: dict[str, Any], gaps: np.ndarray, numel: int) -> np.ndarray:
    try:
        return decode_positions(gaps, numel)
    except ValueError as exc:
        raise NszFormatError(f"tensor {entry['name']!r}: {exc}") from None


def _sparse_parts(entry: dict[str, Any], payloads: list[memoryview], numel: int):
    """A ``sparse`` tensor's relative index and its fp32 values (fillers included)."""
    gaps = _gaps(entry, payloads[0], numel)
    if len(payloads[1]) != 4 * gaps.size:
        raise NszFormatError(
            f"tensor {entry.get('name')!r}: values do not match its relative index"
        )
    return gaps, np.frombuffer(payloads[1], "<f4").astype(np.float32)


def _shared_parts(entry: dict[str, Any], payloads: list[memoryview], numel: int):
    """A ``shared`` tensor's symbol table (0 first, then the codebook), its symbols and, for
    the ``sparse`` layout, its relative index (None for ``dense``)."""
    name = entry.get("name")
    bits = _int(entry, "bits", 1, 16)
    size = _int(entry, "codebook_size", 0, (1 << bits) - 1)
    if len(payloads[0]) != 4 * size:
        raise NszFormatError(f"tensor {name!r}: codebook holds {len(payloads[0])} bytes")
    table = np.zeros(size + 1, np.float32)
    table[1:] = np.frombuffer(payloads[0], "<f4")
    symbols_payload = payloads[-1]
    info = stream_info(symbols_payload)
    if info.symbol_bits != bits:
        raise NszFormatError(f"tensor {name!r}: index stream is not {bits}-bit")
    gaps = None
    if entry["layout"] == "sparse":
        gaps = _gaps(entry, payloads[1], numel)
        if info.count != gaps.size:
            raise NszFormatError(f"tensor {name!r}: {info.count} indices for {gaps.size} gaps")
    elif info.count != numel:
        raise NszFormatError(f"tensor {name!r}: {info.count} indices for {numel} values")
    symbols = decode_stream(symbols_payload)
    if symbols.size and int(symbols.max()) > size:
        raise NszFormatError(f"tensor {name!r}: index {int(symbols.max())} beyond the codebook")
    return table, symbols, gaps


def _decode_binary(entry: dict[str, Any], shape: tuple[int, ...], signs, scales) -> np.ndarray:
    name = entry.get("name")
    validate_entry(entry)
    numel = math.prod(shape)
    if len(signs) != (numel + 7) // 8:
        raise NszFormatError(f"tensor {name!r}: {len(signs)} sign bytes for {numel} weights")
    if len(scales) != 4 * shape[0]:
        raise NszFormatError(
            f"tensor {name!r}: {len(scales)} scale bytes for {shape[0]} output filters"
        )
    packed = np.frombuffer(signs, np.uint8)
    if numel % 8 and packed[-1] & (0xFF >> numel % 8):
        raise NszFormatError(f"tensor {name!r}: the sign bits' padding is not zero")
    alpha = np.frombuffer(scales, "<f4").astype(np.float32)
    if not (np.isfinite(alpha).all() and (alpha >= 0).all()):
        raise NszFormatError(f"tensor {name!r}: binary scales must be finite and non-negative")
    negative = np.unpackbits(packed, count=numel, bitorder="big").astype(bool).reshape(shape)
    alpha = alpha.reshape((-1,) + (1,) * (len(shape) - 1))  # (O, 1, ...): one per filter
    return np.where(negative, -alpha, alpha)
