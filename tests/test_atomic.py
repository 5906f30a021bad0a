import os

import pytest

from netshrink.atomic import atomic_open, atomic_write_text, ensure_dir
from netshrink.errors import NetshrinkError


def test_interrupted_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target, "w") as handle:
        handle.write("half of the new")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_unwritable_output_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NetshrinkError, match="cannot create output folder"):
        ensure_dir(blocker / "sub")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_mode_the_umask_gives_a_new_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "atomic.txt", "x")
        with open(tmp_path / "plain.txt", "w") as handle:  # the reference: a normal file
            handle.write("x")
    finally:
        os.umask(previous)
    mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_cli_outputs_are_readable_by_others(tmp_path):
    from netshrink.cli import main

    previous = os.umask(0o022)
    try:
        assert main(["train", "lenet5", "--data", "digits", "--epochs", "1",
                     "--out", str(tmp_path / "run")]) == 0  # fmt: skip
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), files


def test_folder_lock_stops_a_second_run_and_takes_over_a_dead_ones(tmp_path):
    import subprocess
    import sys

    from netshrink.atomic import folder_lock

    lock = tmp_path / ".netshrink.lock"
    with folder_lock(tmp_path, "survey"):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()  # released
    # A live other process holds it: one line naming it, and the lock stays its.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(str(other.pid))
        with pytest.raises(NetshrinkError, match=f"another survey is running in .* {other.pid}"):
            with folder_lock(tmp_path, "survey"):
                pass
        assert lock.read_text() == str(other.pid)
    finally:
        other.kill()
        other.wait()
    # Its process is gone (killed): the stale lock is taken over.
    with folder_lock(tmp_path, "survey"):
        assert lock.read_text() == str(os.getpid())


def test_survey_refuses_a_folder_another_survey_holds(tmp_path, capsys):
    import subprocess
    import sys

    from netshrink.cli import main

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".netshrink.lock").write_text(str(other.pid))
        assert main(["survey", "--quick", "--out", str(tmp_path), "--only", "lenet5"]) == 2
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert "another survey is running" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()
