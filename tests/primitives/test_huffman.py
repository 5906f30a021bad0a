"""Canonical Huffman coding, checked against a textbook heapq Huffman and Shannon's bound."""

import heapq
import itertools
import re
from fractions import Fraction

import numpy as np
import pytest

from netshrink.primitives.huffman import (
    canonical_codes,
    code_lengths,
    decode,
    encode,
    entropy_bits,
)


def reference_huffman_cost(counts: np.ndarray) -> int:
    """Textbook Huffman: total bits = sum of the weights of all merged nodes."""
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]  # one symbol, one bit each
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def kraft_sum(lengths: np.ndarray) -> Fraction:
    return sum((Fraction(1, 2 ** int(length)) for length in lengths if length), Fraction(0))


def skewed_counts(rng: np.random.Generator, n_symbols: int) -> np.ndarray:
    counts = rng.geometric(0.3, size=n_symbols) ** 3
    counts[rng.random(n_symbols) < 0.2] = 0  # some unused symbols
    return counts


def stream(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(counts.size), counts))


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_and_bounds_on_skewed_distributions(seed):
    rng = np.random.default_rng(seed)
    counts = skewed_counts(rng, int(rng.integers(2, 300)))
    counts[rng.integers(counts.size)] += 1  # at least one used symbol
    symbols = stream(rng, counts)
    lengths = code_lengths(counts)
    data, n_bits = encode(symbols, lengths)
    np.testing.assert_array_equal(decode(data, n_bits, symbols.size, lengths), symbols)
    assert len(data) == (n_bits + 7) // 8
    assert n_bits == int((counts * lengths.astype(np.int64)).sum())
    assert np.all((lengths == 0) == (counts == 0))
    entropy = entropy_bits(counts)
    assert entropy - 1e-6 <= n_bits < entropy + symbols.size


@pytest.mark.parametrize("seed", range(20))
def test_total_bits_match_textbook_huffman(seed):
    rng = np.random.default_rng(100 + seed)
    counts = skewed_counts(rng, int(rng.integers(1, 200)))
    counts[0] = max(counts[0], 1)
    lengths = code_lengths(counts, max_length=32)
    assert int((counts * lengths.astype(np.int64)).sum()) == reference_huffman_cost(counts)


@pytest.mark.parametrize("seed", range(10))
def test_kraft_and_prefix_free(seed):
    rng = np.random.default_rng(200 + seed)
    counts = skewed_counts(rng, int(rng.integers(2, 64)))
    counts[:2] += 1
    lengths = code_lengths(counts)
    assert kraft_sum(lengths) == 1  # an optimal code with >= 2 symbols is complete
    codes = canonical_codes(lengths)
    words = [format(int(codes[s]), f"0{lengths[s]}b") for s in np.flatnonzero(lengths)]
    assert all(len(w) == lengths[s] for w, s in zip(words, np.flatnonzero(lengths), strict=True))
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)


def test_canonical_codes_match_deflate_example():
    # RFC 1951 §3.2.2: lengths (3,3,3,3,3,2,4,4) give codes 010,011,100,101,110,00,1110,1111.
    codes = canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    np.testing.assert_array_equal(codes, [2, 3, 4, 5, 6, 0, 14, 15])


def test_single_used_symbol():
    counts = np.array([0, 0, 7, 0])
    lengths = code_lengths(counts)
    np.testing.assert_array_equal(lengths, [0, 0, 1, 0])
    symbols = np.full(7, 2)
    data, n_bits = encode(symbols, lengths)
    assert n_bits == 7
    np.testing.assert_array_equal(decode(data, n_bits, 7, lengths), symbols)


def test_two_symbols():
    lengths = code_lengths(np.array([5, 1]))
    np.testing.assert_array_equal(lengths, [1, 1])
    symbols = np.array([0, 1, 1, 0, 0])
    data, n_bits = encode(symbols, lengths)
    assert (data, n_bits) == (bytes([0b01100000]), 5)
    np.testing.assert_array_equal(decode(data, n_bits, 5, lengths), symbols)


def test_empty_input():
    assert code_lengths(np.zeros(3, np.int64)).tolist() == [0, 0, 0]
    assert code_lengths(np.zeros(0, np.int64)).size == 0
    lengths = np.array([1, 1])
    assert encode(np.zeros(0, np.int64), lengths) == (b"", 0)
    assert decode(b"", 0, 0, lengths).size == 0
    assert entropy_bits(np.zeros(4)) == 0.0


def fibonacci_like_counts(n_symbols: int) -> np.ndarray:
    """Each count is one more than the sum of all before it but the last: no ties, so the
    optimal tree is a chain of depth ``n_symbols - 1``."""
    counts = [1, 1]
    while len(counts) < n_symbols:
        counts.append(sum(counts[:-1]) + 1)
    return np.array(counts, np.int64)


@pytest.mark.parametrize("max_length", [8, 12, 24])
def test_length_limit_on_fibonacci_like_counts(max_length):
    counts = fibonacci_like_counts(30)
    unlimited = code_lengths(counts, max_length=32)
    assert unlimited.max() == 29 > max_length
    assert int((counts * unlimited.astype(np.int64)).sum()) == reference_huffman_cost(counts)
    lengths = code_lengths(counts, max_length=max_length)
    assert lengths.max() <= max_length and lengths.min() >= 1
    assert kraft_sum(lengths) <= 1
    rng = np.random.default_rng(max_length)
    symbols = rng.integers(0, counts.size, size=5000)
    data, n_bits = encode(symbols, lengths)
    np.testing.assert_array_equal(decode(data, n_bits, symbols.size, lengths), symbols)


def test_length_limit_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib, np.int64)
    assert code_lengths(counts, max_length=32).max() > 12
    lengths = code_lengths(counts, max_length=12)
    assert lengths.max() <= 12 and kraft_sum(lengths) <= 1


def test_length_limit_too_small_for_alphabet():
    with pytest.raises(ValueError, match="huffman"):
        code_lengths(np.ones(5, np.int64), max_length=2)


def test_kraft_violation_rejected():
    bad = np.array([1, 1, 2])
    for call in (
        lambda: canonical_codes(bad),
        lambda: encode(np.array([0]), bad),
        lambda: decode(b"\x00", 1, 1, bad),
    ):
        with pytest.raises(ValueError, match="Kraft"):
            call()


def test_encode_rejects_symbols_without_code():
    with pytest.raises(ValueError, match="huffman"):
        encode(np.array([0, 2]), np.array([1, 1, 0]))
    with pytest.raises(ValueError, match="huffman"):
        encode(np.array([3]), np.array([1, 1]))


def test_truncated_and_invalid_streams():
    lengths = code_lengths(np.array([10, 5, 2, 1]))
    symbols = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    data, n_bits = encode(symbols, lengths)
    with pytest.raises(ValueError, match="huffman"):
        decode(data, n_bits - 1, symbols.size, lengths)  # ends mid-codeword
    with pytest.raises(ValueError, match="huffman"):
        decode(data[:-1], n_bits, symbols.size, lengths)  # fewer bytes than n_bits
    with pytest.raises(ValueError, match="huffman"):
        decode(data, n_bits, symbols.size - 1, lengths)  # bits left over
    # Single-symbol code "0": a 1 bit is no codeword (the code is incomplete).
    with pytest.raises(ValueError, match="invalid code"):
        decode(b"\x40", 2, 2, np.array([1, 0]))


def test_fuzzed_streams_raise_value_error_or_decode():
    rng = np.random.default_rng(7)
    counts = np.array([50, 20, 9, 9, 5, 3, 1, 1, 0, 2])
    limited = code_lengths(counts)
    incomplete = limited.copy()
    incomplete[np.argmax(incomplete)] = 0  # leaves unused bit patterns
    for trial in range(400):
        lengths = incomplete if trial % 2 else limited
        symbols = rng.choice(np.flatnonzero(lengths), size=int(rng.integers(1, 60)))
        data, n_bits = encode(symbols, lengths)
        buffer = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            buffer[rng.integers(len(buffer))] ^= 1 << int(rng.integers(8))
        cut = int(rng.integers(0, len(buffer) + 1)) if trial % 5 == 0 else len(buffer)
        n_symbols = symbols.size + int(rng.integers(-2, 3)) if trial % 3 == 0 else symbols.size
        try:
            out = decode(bytes(buffer[:cut]), n_bits, max(n_symbols, 0), lengths)
        except ValueError as error:
            assert str(error).startswith("huffman:")
        else:
            assert out.shape == (max(n_symbols, 0),)
            assert np.all(lengths[out] > 0)


# --- Table-driven decoding against a pure-Python bit-by-bit reference -----------------------


def reference_codewords(lengths: np.ndarray) -> dict[str, int]:
    """Canonical code as bit strings: symbols sorted by (length, symbol), each code the
    previous plus one, shifted left when the length grows (RFC 1951 §3.2.2)."""
    codewords, code, previous = {}, 0, 0
    for length, symbol in sorted((int(n), s) for s, n in enumerate(lengths) if n):
        code <<= length - previous
        codewords[format(code, f"0{length}b")] = symbol
        code, previous = code + 1, length
    return codewords


def reference_decode(data: bytes, n_bits: int, n_symbols: int, lengths: np.ndarray):
    """Read one bit at a time until the bits read are a codeword. Returns the symbols, or the
    message the decoder must raise: an invalid code once ``max_len`` bits match nothing."""
    codewords = reference_codewords(lengths)
    max_len = int(max(lengths))
    bits = "".join(format(byte, "08b") for byte in data)[:n_bits]
    symbols, pos = [], 0
    for _ in range(n_symbols):
        word = ""
        while word not in codewords:
            if len(word) == max_len:
                return f"invalid code at bit {pos}"
            if pos == n_bits:
                return f"stream ended after {n_bits} bits"
            word += bits[pos]
            pos += 1
        symbols.append(codewords[word])
    if pos != n_bits:
        return f"{n_bits - pos} bits left over"
    return symbols


def reference_encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    code_of = {symbol: word for word, symbol in reference_codewords(lengths).items()}
    bits = "".join(code_of[int(s)] for s in symbols)
    padded = bits + "0" * (-len(bits) % 8)
    return bytes(int(padded[i : i + 8], 2) for i in range(0, len(padded), 8)), len(bits)


def assert_decodes_like_reference(data: bytes, n_bits: int, n_symbols: int, lengths) -> None:
    expected = reference_decode(data, n_bits, n_symbols, lengths)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match="huffman: " + re.escape(expected)):
            decode(data, n_bits, n_symbols, lengths)
    else:
        np.testing.assert_array_equal(decode(data, n_bits, n_symbols, lengths), expected)


def random_code_lengths(rng: np.random.Generator, n_codes: int, max_len: int) -> np.ndarray:
    """Leaf depths of a random complete binary tree, grown by splitting leaves: half the
    splits deepen the newest leaf, so long chains (codes of 20+ bits) are common. Placed at
    random positions of a larger alphabet, so some symbols are unused."""
    depths = [0]
    while len(depths) < n_codes:
        open_leaves = [i for i, depth in enumerate(depths) if depth < max_len]
        if not open_leaves:
            break
        i = open_leaves[-1] if rng.random() < 0.5 else int(rng.choice(open_leaves))
        depth = depths.pop(i)
        depths += [depth + 1, depth + 1]
    lengths = np.zeros(len(depths) + int(rng.integers(0, 5)), np.uint8)
    lengths[rng.choice(lengths.size, len(depths), replace=False)] = depths
    return lengths


@pytest.mark.parametrize("seed", range(12))
def test_decode_matches_reference_on_random_codes(seed):
    rng = np.random.default_rng(300 + seed)
    max_len = [4, 12, 13, 20, 24, 32][seed % 6]
    lengths = random_code_lengths(rng, int(rng.integers(2, 80)), max_len)
    if seed % 2:  # drop codes: Kraft's sum < 1 leaves bit patterns that are no codeword
        used = np.flatnonzero(lengths)
        lengths[rng.choice(used, int(rng.integers(1, used.size)), replace=False)] = 0
    used = np.flatnonzero(lengths)
    for _ in range(25):
        symbols = rng.choice(used, size=int(rng.integers(1, 150)))  # long codes are frequent
        data, n_bits = encode(symbols, lengths)
        assert (data, n_bits) == reference_encode(symbols, lengths)
        np.testing.assert_array_equal(decode(data, n_bits, symbols.size, lengths), symbols)
        cut = int(rng.integers(0, n_bits))  # ends anywhere, often inside a long code
        assert_decodes_like_reference(data, cut, symbols.size, lengths)
        n_symbols = max(symbols.size + int(rng.integers(-3, 4)), 1)
        assert_decodes_like_reference(data, n_bits, n_symbols, lengths)
        corrupt = bytearray(data)
        corrupt[rng.integers(len(corrupt))] ^= 1 << int(rng.integers(8))
        assert_decodes_like_reference(bytes(corrupt), n_bits, symbols.size, lengths)
        noise = rng.bytes(int(rng.integers(1, 40)))
        assert_decodes_like_reference(noise, int(rng.integers(0, 8 * len(noise) + 1)), 50, lengths)


def test_bits_past_n_bits_are_ignored():
    # The decoder reads whole words past n_bits; padding bits and extra bytes must not matter.
    rng = np.random.default_rng(5)
    lengths = random_code_lengths(rng, 40, 24)
    used = np.flatnonzero(lengths)
    for _ in range(50):
        symbols = rng.choice(used, size=int(rng.integers(1, 40)))
        data, n_bits = encode(symbols, lengths)
        dirty = bytearray(data) + rng.bytes(int(rng.integers(0, 9)))
        dirty[len(data) - 1] |= 0xFF >> (n_bits - 8 * (len(data) - 1))  # set the padding bits
        np.testing.assert_array_equal(decode(bytes(dirty), n_bits, symbols.size, lengths), symbols)
        assert_decodes_like_reference(bytes(dirty), n_bits - 1, symbols.size, lengths)


def test_longest_codes_round_trip():
    counts = fibonacci_like_counts(33)  # a chain: the two rarest symbols get 32-bit codes
    lengths = code_lengths(counts, max_length=32)
    assert lengths.max() == 32
    symbols = np.array([31, 32, 0, 32, 31, 1, 30, 32])
    data, n_bits = encode(symbols, lengths)
    assert (data, n_bits) == reference_encode(symbols, lengths)
    np.testing.assert_array_equal(decode(data, n_bits, symbols.size, lengths), symbols)
    for cut in range(n_bits):
        assert_decodes_like_reference(data, cut, symbols.size, lengths)


def test_single_symbol_alphabet_matches_reference():
    lengths = np.array([0, 0, 1, 0])
    for data, n_bits, n_symbols in [
        (b"\x00", 8, 8),
        (b"\x00", 7, 8),  # truncated
        (b"\x00", 8, 7),  # one bit left over
        (b"\x10", 8, 8),  # "1" is no codeword
        (b"\xff", 1, 1),
        (b"", 0, 1),
    ]:
        assert_decodes_like_reference(data, n_bits, n_symbols, lengths)


def test_more_symbols_than_bits_is_truncated_not_allocated():
    lengths = np.array([1, 1])
    with pytest.raises(ValueError, match="stream ended after 8 bits"):
        decode(b"\x00", 8, 10**15, lengths)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint64])
def test_encode_accepts_integer_dtypes(dtype):
    lengths = np.array([2, 1, 3, 3])
    symbols = np.array([1, 0, 3, 2, 1, 1], dtype)
    assert encode(symbols, lengths) == reference_encode(symbols, lengths)
    with pytest.raises(ValueError, match=r"must be in \[0, 4\)"):
        encode(np.array([1, 4], dtype), lengths)
