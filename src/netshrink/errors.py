"""The one exception type users see: a one-line message naming the problem."""

__all__ = ["NetshrinkError"]


class NetshrinkError(Exception):
    """A user-facing error (bad input, bad file, bad argument).

    The CLI prints ``netshrink: error: <message>`` on one line and exits with code 2.
    Messages name the offending file, argument or value.
    """
