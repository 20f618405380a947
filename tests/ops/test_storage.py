"""Local output folders: refused early when they cannot be made or written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ops.storage import check_writable_dir


def unwritable_dir(tmp_path: Path) -> Path:
    """A folder that cannot be written, also for root (which ignores permission bits)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    if sys.platform.startswith("linux") and os.path.isdir("/sys/kernel"):
        return Path("/sys")  # sysfs: no new files, whoever asks
    pytest.skip("running as root without sysfs: no folder here refuses root's writes")


def test_check_writable_dir_accepts_new_and_existing_folders_and_uris(tmp_path):
    check_writable_dir(str(tmp_path))
    check_writable_dir(str(tmp_path / "new" / "deeper"))
    check_writable_dir("s3://bucket/out?endpoint_override=localhost:9000")
    assert os.listdir(tmp_path) == []  # the probe leaves nothing behind, creates no folder


def test_check_writable_dir_refuses_a_file_and_a_path_under_a_file(tmp_path):
    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder$"):
        check_writable_dir(str(file))
    with pytest.raises(ValueError, match="so .*taken/sub/out cannot be made under it"):
        check_writable_dir(str(file / "sub" / "out"))


def test_check_writable_dir_refuses_an_unwritable_folder(tmp_path):
    folder = unwritable_dir(tmp_path)
    with pytest.raises(ValueError, match="cannot write in"):
        check_writable_dir(str(folder / "out"))
