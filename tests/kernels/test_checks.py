"""The shared input checks of the kernels: each rejects bad input with a ValueError naming the
argument, and passes good input through as the C-contiguous array the compiled loops need."""

import re

import numpy as np
import pytest

from netshrink.kernels import binary
from netshrink.kernels.checks import (
    ABSENT,
    WORD_BITS,
    as_array,
    as_optional,
    as_pair,
    as_vector,
    check_exact,
    check_padding_bits,
)


def test_constants_shared_with_binary():
    assert WORD_BITS == 64
    assert binary.WORD_BITS is WORD_BITS
    assert ABSENT.shape == (1, 1) and ABSENT.dtype == np.float32 and ABSENT.flags.writeable


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1.0]], "x must be a numpy array, got list"),
        (np.zeros(3, np.float32), "x must have 2 dimensions, got shape (3,)"),
        (np.zeros((2, 2), np.float64), "x must be float32, got float64"),
    ],
)
def test_as_array_rejects(value, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        as_array("x", value, 2, np.float32)


def test_as_array_makes_strided_input_contiguous():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    strided = base[:, ::2]
    assert not strided.flags.c_contiguous
    got = as_array("x", strided, 2, np.float32)
    assert got.flags.c_contiguous
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, strided)
    assert as_array("x", base, 2, np.float32) is base  # contiguous input: no copy


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        ([3, 3], 1, "stride must be a tuple of two ints, got [3, 3]"),
        ((3,), 1, "stride must be a tuple of two ints, got (3,)"),
        ((1.0, 1), 1, "stride must be a tuple of two ints, got (1.0, 1)"),
        ((0, 1), 1, "stride must be >= 1, got (0, 1)"),
        ((-1, 0), 0, "stride must be >= 0, got (-1, 0)"),
    ],
)
def test_as_pair_rejects(value, minimum, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        as_pair("stride", value, minimum)


def test_as_pair_accepts_numpy_ints():
    got = as_pair("padding", (np.int64(2), 0), 0)
    assert got == (2, 0)
    assert all(type(v) is int for v in got)


def test_check_padding_bits():
    bits = np.zeros((2, 2), np.uint64)
    bits[1, 1] = np.uint64(1) << np.uint64(6)  # bit 70 of the row
    message = "w has padding bits set past bit 70: pack it with pack_rows"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_padding_bits("w", bits, 70)
    check_padding_bits("w", bits, 71)  # bit 70 is in use
    check_padding_bits("w", bits, 128)  # whole words: no padding bits
    check_padding_bits("w", np.zeros((0, 2), np.uint64), 70)  # no rows


def test_as_vector():
    with pytest.raises(ValueError, match=re.escape("alpha must have shape (3,), got (2,)")):
        as_vector("alpha", np.ones(2, np.float32), 3)
    with pytest.raises(ValueError, match=re.escape("alpha must be float32, got float64")):
        as_vector("alpha", np.ones(3), 3)
    got = as_vector("alpha", np.arange(6, dtype=np.float32)[::2], 3)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, [0, 2, 4])


def test_as_optional():
    assert as_optional("bias", None, (3,)) is None
    with pytest.raises(ValueError, match=re.escape("bias must have shape (1, 3), got (1, 2)")):
        as_optional("bias", np.ones((1, 2), np.float32), (1, 3))
    message = "bias must have 1 dimensions, got shape (3, 1)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        as_optional("bias", np.ones((3, 1), np.float32), (3,))
    got = as_optional("bias", np.ones((3, 4), np.float32).T, (4, 3))
    assert got.shape == (4, 3) and got.flags.c_contiguous


def test_check_exact():
    check_exact(2**24 - 1)
    message = f"dots of {2**24} >= 2**24 bits are not exact in float32"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_exact(2**24)
