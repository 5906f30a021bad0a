"""Input checks shared by the kernels: each one returns the checked value or raises a
``ValueError`` naming the argument and saying what is wrong with it.

The compiled loops read their arguments unchecked, so every public kernel runs its inputs
through these first: arrays come back C-contiguous and of the dtype the loops were compiled
for (copied if strided), which is also what keeps each kernel to one compiled variant.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ABSENT",
    "WORD_BITS",
    "as_array",
    "as_optional",
    "as_pair",
    "as_vector",
    "check_exact",
    "check_padding_bits",
]

WORD_BITS = 64  # bits per packed word (uint64)
_EXACT_BITS = 1 << 24  # float32 holds every integer dot below this exactly

# Stands in for a missing alpha, input_scale or bias, which the kernels then never read
# (writable, so that it has the type of a real argument and needs no extra compilation).
ABSENT = np.ones((1, 1), np.float32)


def as_array(name: str, value: object, ndim: int, dtype: type) -> np.ndarray:
    """``value`` as a C-contiguous array (copied if strided), or a ValueError saying why not:
    not a numpy array, not ``ndim`` dimensions, or not of ``dtype`` (never converted)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {value.shape}")
    if value.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype).name}, got {value.dtype}")
    return np.ascontiguousarray(value)


def as_pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """``value`` (a tuple of two ints, numpy integers allowed, each >= ``minimum``) as two
    Python ints: a kernel size, stride or padding."""
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int | np.integer) for v in value)
    ):
        raise ValueError(f"{name} must be a tuple of two ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def check_padding_bits(name: str, bits: np.ndarray, n_bits: int) -> None:
    """The last word of every packed row of ``bits`` must have its bits past ``n_bits`` clear
    (as :func:`netshrink.kernels.binary.pack_rows` leaves them), else dots are wrong."""
    used = n_bits % WORD_BITS
    if used and bits.size and np.any(bits[..., -1] >> np.uint64(used)):
        raise ValueError(f"{name} has padding bits set past bit {n_bits}: pack it with pack_rows")


def as_vector(name: str, value: object, length: int) -> np.ndarray:
    """``value`` as a C-contiguous float32 array of shape ``(length,)``."""
    value = as_array(name, value, 1, np.float32)
    if value.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {value.shape}")
    return value


def as_optional(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """None, or ``value`` as a C-contiguous float32 array of ``shape``."""
    if value is None:
        return None
    value = as_array(name, value, len(shape), np.float32)
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    return value


def check_exact(k_bits: int) -> None:
    """Dots of ``k_bits`` bits must be below 2**24: they pass through float32 (one compiled
    kernel per layer kind), which holds every integer only up to there."""
    if k_bits >= _EXACT_BITS:
        raise ValueError(f"dots of {k_bits} >= 2**24 bits are not exact in float32")
