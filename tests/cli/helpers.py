"""Helpers of the CLI tests: run ``netshrink`` in-process and check one-line errors."""

from netshrink.cli import main


def run(capsys, *argv):
    """``netshrink ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, needle):
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err
