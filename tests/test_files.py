"""Atomic writes (yoto_tf.files)."""

import csv
import json
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


def test_json_report_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "results.json"
    files.write_json_atomically(str(path), {"psnr": [27.5, 31.0]})
    assert path.read_text() == '{\n  "psnr": [\n    27.5,\n    31.0\n  ]\n}\n'
    with pytest.raises(ValueError, match="JSON compliant"):
        files.write_json_atomically(str(path), {"psnr": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text()) == {"psnr": [27.5, 31.0]} and os.listdir(tmp_path) == ["results.json"]


def test_csv_report_keeps_the_previous_file_when_a_row_does_not_fit(tmp_path):
    path = tmp_path / "mean.csv"
    files.write_csv_atomically(str(path), [{"lambda": 0.01, "psnr": 30.5}], ["lambda", "psnr"])
    with open(path, newline="") as f:
        assert list(csv.DictReader(f)) == [{"lambda": "0.01", "psnr": "30.5"}]
    with pytest.raises(ValueError, match="bpp"):  # a field outside the header
        files.write_csv_atomically(str(path), [{"lambda": 0.1, "psnr": 31.0, "bpp": 0.8}], ["lambda", "psnr"])
    assert path.read_text().splitlines()[1] == "0.01,30.5" and os.listdir(tmp_path) == ["mean.csv"]


def test_figure_is_saved_in_the_format_of_its_extension(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from PIL import Image

    figure = plt.figure(figsize=(2, 1))
    figure.gca().plot([0, 1], [0, 1])
    path = tmp_path / "rd_curves.png"
    files.save_figure_atomically(figure, str(path), dpi=50)
    plt.close(figure)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (100, 50)
    assert os.listdir(tmp_path) == ["rd_curves.png"]
