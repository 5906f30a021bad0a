import os

import pytest

from netshrink.atomic import atomic_open, atomic_write_bytes, atomic_write_text, ensure_dir
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


def _hold_lock(folder):
    """Another process that holds ``folder``'s lock until killed (started once it does)."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from netshrink.atomic import folder_lock\n"
        "with folder_lock(sys.argv[1], 'survey'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE)
    assert other.stdout.readline() == b"held\n"
    return other


def test_folder_lock_stops_a_second_run_and_takes_over_a_dead_ones(tmp_path):
    from netshrink.atomic import folder_lock

    lock = tmp_path / ".netshrink.lock"
    with folder_lock(tmp_path, "survey"):
        assert lock.read_text() == str(os.getpid())
        with pytest.raises(NetshrinkError, match="another survey"):  # not re-entrant either
            with folder_lock(tmp_path, "survey"):
                pass
    assert not lock.exists()  # released
    # A live other process holds it: one line naming it, and the lock stays its.
    other = _hold_lock(tmp_path)
    try:
        with pytest.raises(NetshrinkError, match=f"another survey is running in .* {other.pid}"):
            with folder_lock(tmp_path, "survey"):
                pass
        assert lock.read_text() == str(other.pid)
    finally:
        other.kill()
        other.wait()
    # Its process is gone (killed): the lock file it left is taken over.
    assert lock.read_text() == str(other.pid)
    with folder_lock(tmp_path, "survey"):
        assert lock.read_text() == str(os.getpid())


def test_folder_lock_admits_one_of_many_started_at_once(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(6)
    workers = [
        context.Process(target=_contend, args=(tmp_path, barrier, results)) for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    spans = [results.get(timeout=5) for _ in workers]
    held = sorted(span for span in spans if span is not None)
    assert held, spans  # someone got it
    # No two holders overlap in time (each held it 0.3 s after the same barrier).
    assert all(a[1] <= b[0] for a, b in zip(held, held[1:], strict=False)), held


def _contend(folder, barrier, results):
    import time

    from netshrink.atomic import folder_lock

    barrier.wait()
    try:
        with folder_lock(folder, "survey"):
            start = time.monotonic()
            time.sleep(0.3)
            results.put((start, time.monotonic()))
    except NetshrinkError:
        results.put(None)


def test_survey_refuses_a_folder_another_survey_holds(tmp_path, capsys):
    from netshrink.cli import main

    other = _hold_lock(tmp_path)
    try:
        assert main(["survey", "--quick", "--out", str(tmp_path), "--only", "lenet5"]) == 2
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert "another survey is running" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def test_replace_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            events.append(("fsync folder", info.st_ino))
        else:  # what the file holds when it is made durable
            events.append(("fsync file", os.pread(fd, 100, 0)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "out.bin", b"payload")
    assert events == [
        ("fsync file", b"payload"),
        ("replace", "out.bin"),
        ("fsync folder", tmp_path.stat().st_ino),
    ]


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        left = tmp_path / f".out.bin.{dead.pid}.abc123.tmp"  # what SIGKILL mid-write leaves
        live = tmp_path / f".out.bin.{other.pid}.def456.tmp"  # a writer still at work
        unknown = tmp_path / ".out.bin.xyz.tmp"  # no process id: not ours to judge
        for path in (left, live, unknown):
            path.write_bytes(b"half")
        atomic_write_bytes(tmp_path / "out.bin", b"whole")
        assert sorted(os.listdir(tmp_path)) == sorted(["out.bin", live.name, unknown.name])
    finally:
        other.kill()
        other.wait()
