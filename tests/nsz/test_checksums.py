"""Every single-byte change of a small file is detected, byte position by byte position.

Past the 12-byte preamble every byte belongs to a section's tag, length, payload or CRC-32,
and the CRC covers the tag, the length and the payload: CRC-32 detects every error burst of
up to 32 bits, so a changed byte fails the checksum (or, in a length, the framing). The
preamble has no checksum; each of its fields is validated instead (magic, version 1..2,
flags 0), which leaves one change undetected: version 1 read as 2. Version 2 only adds
tags, an encoding and a header key, so a version-1 file read as version 2 decodes to the
same tensors; the test checks that, and that it is the only one.
"""

from __future__ import annotations

import fuzz_corpus as corpus
import numpy as np
import pytest

from netshrink.nsz import NszFormatError, parse_nsz
from netshrink.nsz.container import MAGIC


def _detected(data: bytes) -> bool:
    try:
        parse_nsz(data)
    except NszFormatError:
        return True
    return False


@pytest.mark.parametrize("kind", corpus.SMALL_FILES)
def test_every_byte_after_the_preamble_is_checksummed(kind):
    data = corpus.corpus_file(kind)
    missed = []
    for at in range(corpus.PREAMBLE, len(data)):
        for mask in (0x01, 0x80, 0xFF):
            changed = bytearray(data)
            changed[at] ^= mask
            if not _detected(bytes(changed)):
                missed.append((at, mask))
    assert missed == []


@pytest.mark.parametrize("kind", corpus.SMALL_FILES)
def test_the_preamble_fields_are_validated_except_version_one_read_as_two(kind):
    data = corpus.corpus_file(kind)
    version = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 2], "little")
    missed = []
    for at in range(corpus.PREAMBLE):
        for value in range(256):
            if value != data[at]:
                changed = data[:at] + bytes([value]) + data[at + 1 :]
                if not _detected(changed):
                    missed.append((at, value))
    assert missed == ([(len(MAGIC), 2)] if version == 1 else [])
    if missed:  # a superset's reading of the same bytes: the same tensors
        at, value = missed[0]
        original = parse_nsz(data)
        relabelled = parse_nsz(data[:at] + bytes([value]) + data[at + 1 :])
        for i in range(len(original.entries)):
            np.testing.assert_array_equal(original.tensor(i), relabelled.tensor(i))


def test_bytes_after_the_end_section_are_refused():
    data = corpus.corpus_file("huffman")
    for tail in [bytes([value]) for value in range(256)] + [b"\x00" * 16, data[-16:]]:
        with pytest.raises(NszFormatError, match="stray bytes after the END section"):
            parse_nsz(data + tail)
