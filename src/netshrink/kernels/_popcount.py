"""``popcount``: LLVM's ``llvm.ctpop.i64`` as a numba intrinsic.

LLVM lowers it to whatever the target has: ``popcnt`` on x86-64 with POPCNT, ``vpopcntq``
when it vectorizes a loop on AVX-512 VPOPCNTDQ, a nibble-lookup (``vpshufb``) sequence on
AVX2 — so the same source is correct everywhere and fast where the hardware allows.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["popcount"]


@intrinsic
def popcount(typingctx, word):
    """Number of set bits of a ``uint64``, as an ``int64`` (so sums stay signed integers)."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen
