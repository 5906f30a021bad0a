"""The package's version, in one place below every layer (``pyproject.toml`` repeats it)."""

__version__ = "0.1.0"
