import struct
import zlib

import numpy as np
import pytest

from netshrink.nsz.container import (
    MAGIC,
    VERSION,
    NszFormatError,
    read_container,
    write_container,
)
from netshrink.nsz.streams import decode_stream, encode_stream, stream_info
from netshrink.primitives import huffman


def test_container_round_trip_and_byte_layout():
    data = write_container({"format": "x", "n": 1}, [(b"RAW ", b"abc"), (b"CBK ", b"")])
    assert data[:8] == MAGIC and struct.unpack_from("<HH", data, 8) == (1, 0)
    tag, length = struct.unpack_from("<4sQ", data, 12)
    head = data[24 : 24 + length]
    assert tag == b"HEAD" and zlib.decompress(head) == b'{"format":"x","n":1}'
    (crc,) = struct.unpack_from("<I", data, 24 + length)
    assert crc == zlib.crc32(data[12 : 24 + length])
    version, header, sections = read_container(data)
    assert version == 1 and header == {"format": "x", "n": 1}
    assert [(t, bytes(p)) for t, p in sections] == [(b"RAW ", b"abc"), (b"CBK ", b"")]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:5], "too short"),
        (lambda d: b"\x89NSX" + d[4:], "magic"),
        (lambda d: d[:8] + struct.pack("<H", VERSION + 1) + d[10:], "newer"),
        (lambda d: d[:8] + struct.pack("<H", 0) + d[10:], "invalid format version 0"),
        (lambda d: d[:-20], "truncated|declares"),
        (lambda d: d + b"x", "stray|truncated"),
        (lambda d: d[:30] + bytes([d[30] ^ 1]) + d[31:], "checksum"),
    ],
)
def test_damaged_containers_give_one_line_errors(mutate, message):
    data = write_container({"format": "x"}, [(b"RAW ", b"abcdef")])
    with pytest.raises(NszFormatError, match=message) as info:
        read_container(mutate(data))
    assert "\n" not in str(info.value)


def test_declared_section_length_beyond_the_file_is_refused_without_allocating():
    data = bytearray(write_container({"format": "x"}, []))
    struct.pack_into("<Q", data, 16, 1 << 60)
    with pytest.raises(NszFormatError, match="declares"):
        read_container(bytes(data))


@pytest.mark.parametrize("coding", ["fixed", "huffman", "auto"])
@pytest.mark.parametrize("bits", [1, 4, 8, 16])
def test_streams_round_trip(coding, bits):
    rng = np.random.default_rng(bits)
    for count in (0, 1, 100, 5000):
        symbols = np.minimum(rng.geometric(0.3, count) - 1, (1 << bits) - 1)
        payload = encode_stream(symbols, bits, coding)
        assert np.array_equal(decode_stream(payload), symbols)
        info = stream_info(payload)
        assert info.count == count and info.symbol_bits == bits


def test_auto_coding_picks_huffman_only_when_smaller_and_huffman_is_near_entropy():
    rng = np.random.default_rng(0)
    skewed = np.minimum(rng.geometric(0.5, 20000) - 1, 31)
    uniform = rng.integers(0, 32, 20000)
    assert stream_info(encode_stream(skewed, 5)).coding == "huffman"
    assert stream_info(encode_stream(uniform, 5)).coding == "fixed"
    info = stream_info(encode_stream(skewed, 5, "huffman"))
    bound = huffman.entropy_bits(np.bincount(skewed))
    assert bound <= info.n_bits <= bound + skewed.size  # Huffman is within 1 bit/symbol


def test_stream_header_lies_are_caught():
    payload = bytearray(encode_stream(np.arange(8), 3, "fixed"))
    struct.pack_into("<Q", payload, 2, 9)  # count no longer matches n_bits
    with pytest.raises(NszFormatError, match="declares"):
        decode_stream(bytes(payload))
    payload = bytearray(encode_stream(np.arange(8), 3, "huffman"))
    struct.pack_into("<Q", payload, 2, 10**12)  # more symbols than bits
    with pytest.raises(NszFormatError, match="symbols in"):
        decode_stream(bytes(payload))
