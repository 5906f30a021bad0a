"""The package's version, in one place below every layer (``pyproject.toml`` repeats it), and
the fingerprint of its code that caches of computed results key on."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["__version__", "sources_digest"]

__version__ = "0.1.0"


@functools.cache
def sources_digest() -> str:
    """SHA-256 (16 hex digits) of netshrink's ``.py`` files, names included (~5 ms, once per
    process): a cached result made by other code than this is stale, version or not."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
