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
