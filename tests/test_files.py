"""Atomic writes (yoto_tf.files)."""

import os

import numpy as np
import pytest

from yoto_tf import files


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "pool.npy"
    files.write_atomically(str(path), lambda tmp: np.save(tmp, np.arange(3)), suffix=".npy")
    np.testing.assert_array_equal(np.load(path), [0, 1, 2])
    assert os.listdir(tmp_path) == ["pool.npy"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # a normal file's mode, not mkstemp's 0600


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "info.json"
    path.write_text("old")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomically(str(path), fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["info.json"]
