"""The ``.nsz`` container: a preamble, then checksummed typed sections (docs/format.md).

This layer knows bytes only: it writes and reads ``(tag, payload)`` sections and the JSON
header, and validates lengths and checksums before anything is allocated from them.
"""

from __future__ import annotations

import json
import math
import reprlib
import struct
import zlib
from typing import Any

from netshrink.errors import NetshrinkError

__all__ = [
    "MAGIC",
    "SECTION_TAGS",
    "TAG_VERSIONS",
    "VERSION",
    "NszFormatError",
    "read_container",
    "read_header",
    "read_sections",
    "shown",
    "write_container",
]

MAGIC = b"\x89NSZ\r\n\x1a\n"  # PNG-style: catches text-mode and 7-bit transfers
VERSION = 2  # the newest format version this netshrink reads and writes
# The format version that introduced each tag (docs/format.md, "Version history").
TAG_VERSIONS = {
    b"HEAD": 1,
    b"CBK ": 1,
    b"IDX ": 1,
    b"GAP ": 1,
    b"VAL ": 1,
    b"RAW ": 1,
    b"END ": 1,
    b"SGN ": 2,
    b"SCL ": 2,
}
SECTION_TAGS = tuple(TAG_VERSIONS)
_PREAMBLE = struct.Struct("<8sHH")  # magic, version, flags (0)
_SECTION = struct.Struct("<4sQ")  # tag, payload length
_CRC = struct.Struct("<I")
MAX_HEADER_BYTES = 64 << 20
# JSON values in the header: parse time and memory follow the count of values, which a zlib
# stream can multiply a thousandfold (1 << 18 is some 300 times a VGG-16 header's count).
MAX_HEADER_VALUES = 1 << 18
MAX_SECTIONS = 1 << 20
MAX_MESSAGE = 400  # characters of an error message; a hostile file cannot flood a log


class NszFormatError(NetshrinkError):
    """A file that is not a valid ``.nsz`` (truncated, corrupted, wrong version...).

    Its message is one line (newlines from nested errors become spaces) of at most
    ``MAX_MESSAGE`` characters, whatever the file holds.
    """

    def __init__(self, message: str) -> None:
        message = " ".join(str(message).split())
        if len(message) > MAX_MESSAGE:
            message = f"{message[: MAX_MESSAGE - 60]} ... {message[-55:]}"
        super().__init__(message)


_SHOWN = reprlib.Repr()  # bounded in depth and length: a header value can be 64 MiB deep JSON
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60


def shown(value: Any) -> str:
    """A short one-line ``repr`` of a header value, for an error message."""
    return _SHOWN.repr(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} overflows a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {shown(key)} appears twice in one object")
            seen.add(key)
    return value


def _section(tag: bytes, payload: bytes) -> bytes:
    head = _SECTION.pack(tag, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


def write_container(
    header: dict[str, Any], sections: list[tuple[bytes, bytes]], min_version: int = 1
) -> bytes:
    """Serialize ``header`` (JSON) and the data ``sections`` into one ``.nsz`` byte string.

    The preamble's version is the lowest that expresses the file: the newest of
    ``min_version`` (what the header needs) and the versions that introduced its tags.
    """
    for tag, _ in sections:
        if tag not in SECTION_TAGS or tag in (b"HEAD", b"END "):
            raise ValueError(f"not a data section tag: {tag!r}")
    version = max([min_version, *(TAG_VERSIONS[tag] for tag, _ in sections)])
    if not 1 <= version <= VERSION:
        raise ValueError(f"cannot write format version {version}")
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, allow_nan=False)
    head = zlib.compress(text.encode("utf-8"), 9)
    parts = [_PREAMBLE.pack(MAGIC, version, 0), _section(b"HEAD", head)]
    parts += [_section(tag, bytes(payload)) for tag, payload in sections]
    parts.append(_section(b"END ", b""))
    return b"".join(parts)


def read_container(data: bytes) -> tuple[int, dict[str, Any], list[tuple[bytes, memoryview]]]:
    """Parse and verify a container: ``(version, header, data sections)``.

    Every length is checked against the bytes actually present and every checksum is
    verified, so a damaged file fails here with :class:`NszFormatError`.
    """
    version, sections = read_sections(data)
    return version, read_header(sections[0][1]), sections[1:-1]


def read_sections(data: bytes) -> tuple[int, list[tuple[bytes, memoryview]]]:
    """The preamble's version and every section ``(tag, payload)``, HEAD and END included,
    framing and checksums verified. Payloads are views of ``data``: nothing is allocated
    from a declared length, and no section is used before its checksum is verified.
    """
    view = memoryview(data)
    if len(view) < _PREAMBLE.size:
        raise NszFormatError(f"file is {len(view)} bytes, too short for an .nsz preamble")
    magic, version, flags = _PREAMBLE.unpack_from(view, 0)
    if magic != MAGIC:
        raise NszFormatError("wrong magic number: not an .nsz file")
    if version > VERSION:
        raise NszFormatError(
            f"file format version {version} is newer than this netshrink reads ({VERSION}); "
            "upgrade netshrink"
        )
    if version < 1:
        raise NszFormatError(f"invalid format version {version}")
    if flags != 0:
        raise NszFormatError(f"unknown preamble flags {flags:#06x}")
    offset = _PREAMBLE.size
    sections: list[tuple[bytes, memoryview]] = []
    ended = False
    while offset < len(view):
        if ended:
            raise NszFormatError(f"{len(view) - offset} stray bytes after the END section")
        if len(view) - offset < _SECTION.size + _CRC.size:
            raise NszFormatError(f"truncated section header at byte {offset}")
        tag, length = _SECTION.unpack_from(view, offset)
        if tag not in SECTION_TAGS:
            raise NszFormatError(f"unknown section tag {tag!r} at byte {offset}")
        if TAG_VERSIONS[tag] > version:  # no writer of that version could have written it
            raise NszFormatError(
                f"section {tag.decode()!r} at byte {offset} needs format version "
                f"{TAG_VERSIONS[tag]}; the file is version {version}"
            )
        start = offset + _SECTION.size
        if length > len(view) - start - _CRC.size:
            raise NszFormatError(
                f"section {tag.decode()!r} at byte {offset} declares {length} bytes; "
                f"only {len(view) - start - _CRC.size} remain"
            )
        payload = view[start : start + length]
        (crc,) = _CRC.unpack_from(view, start + length)
        if crc != zlib.crc32(payload, zlib.crc32(view[offset:start])):
            raise NszFormatError(f"checksum mismatch in section {tag.decode()!r} at byte {offset}")
        if not sections and tag != b"HEAD":
            raise NszFormatError("the first section is not the HEAD header")
        if sections and tag == b"HEAD":
            raise NszFormatError(f"a second HEAD section at byte {offset}")
        if tag == b"END ":
            if length:
                raise NszFormatError("the END section is not empty")
            ended = True
        sections.append((tag, payload))
        if len(sections) > MAX_SECTIONS:
            raise NszFormatError(f"more than {MAX_SECTIONS} sections")
        offset = start + length + _CRC.size
    if not ended:
        raise NszFormatError("file is truncated: no END section")
    return version, sections


def read_header(payload: memoryview | bytes) -> dict[str, Any]:
    """The HEAD section's JSON object (zlib, at most ``MAX_HEADER_BYTES`` inflated and
    ``MAX_HEADER_VALUES`` values; strict JSON)."""
    inflater = zlib.decompressobj()
    try:
        head = inflater.decompress(payload, MAX_HEADER_BYTES)
    except zlib.error as exc:
        raise NszFormatError(f"header is not a valid zlib stream: {exc}") from None
    if inflater.unconsumed_tail:
        raise NszFormatError(f"header inflates to more than {MAX_HEADER_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise NszFormatError("header zlib stream is truncated or has trailing bytes")
    # Every JSON value opens an array or object or follows a comma: counting those bytes
    # bounds the values (strings' commas count too: a bound, not a parse).
    if sum(head.count(c) for c in (b",", b"[", b"{")) > MAX_HEADER_VALUES:
        raise NszFormatError(f"header holds more than {MAX_HEADER_VALUES} JSON values")
    try:  # strict JSON: no NaN or Infinity, no duplicate keys (readers would disagree)
        header = json.loads(
            head.decode("utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite,
            object_pairs_hook=_unique_keys,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NszFormatError(f"header is not valid JSON: {str(exc)[:100]}") from None
    if not isinstance(header, dict):
        raise NszFormatError("header is not a JSON object")
    return header
