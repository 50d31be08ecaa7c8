"""Tests of `python -m trainers.evaluate_compression` (baselines, outputs, bad input)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from trainers import evaluate_compression

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_images(directory, size=(176, 192)):
    """Two small photo crops (large enough for MS-SSIM) as PNG files."""
    os.makedirs(directory, exist_ok=True)
    height, width = size
    for name, image in (("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee())):
        Image.fromarray(image[:height, 100 : 100 + width]).save(os.path.join(directory, f"{name}.png"))
    return str(directory)


def _run_cli(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "trainers.evaluate_compression", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def test_cli_baselines_write_json_csv_and_plot(tmp_path):
    images = _write_images(tmp_path / "images")
    out_dir = tmp_path / "out"
    result = _run_cli(
        "--images", images, "--out_dir", str(out_dir),
        "--jpeg_qualities", "10,30,60,90", "--webp_qualities", "5,30,60,90",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BD-rate PSNR" in result.stdout and "webp" in result.stdout

    results = json.loads((out_dir / "results.json").read_text())
    assert results["config"]["num_images"] == 2
    assert results["config"]["image_names"] == ["astronaut", "coffee"]
    per_image = results["per_image"]
    assert len(per_image) == 2 * 8
    for row in per_image:
        assert set(evaluate_compression.RESULT_FIELDS) == set(row)
        assert row["bpp"] == pytest.approx(row["bytes"] * 8 / (176 * 192))
        assert 0.5 < row["ms_ssim"] < 1 and row["psnr"] > 20 and row["estimated_bpp"] is None
    means = results["mean"]
    assert [(m["codec"], m["value"]) for m in means[:4]] == [("jpeg", q) for q in (10, 30, 60, 90)]
    for mean in means:
        group = [r for r in per_image if (r["codec"], r["value"]) == (mean["codec"], mean["value"])]
        assert mean["num_images"] == 2
        assert mean["bpp"] == pytest.approx(np.mean([r["bpp"] for r in group]))
        assert mean["psnr"] == pytest.approx(np.mean([r["psnr"] for r in group]))
    jpeg_bpps = [m["bpp"] for m in means if m["codec"] == "jpeg"]
    assert jpeg_bpps == sorted(jpeg_bpps)
    (bd,) = results["bd_rate"]
    assert (bd["test"], bd["anchor"]) == ("webp", "jpeg")
    assert -90 < bd["bd_rate_psnr_percent"] < 0  # WebP beats baseline JPEG on photos
    assert bd["bd_psnr_db"] > 0

    with open(out_dir / "per_image.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and tuple(rows[0]) == evaluate_compression.RESULT_FIELDS
    assert float(rows[0]["bpp"]) == pytest.approx(per_image[0]["bpp"])
    with open(out_dir / "mean.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    with open(out_dir / "bd_rate.csv") as handle:
        assert float(next(csv.DictReader(handle))["bd_rate_psnr_percent"]) == pytest.approx(
            bd["bd_rate_psnr_percent"]
        )
    with Image.open(out_dir / "rd_curves.png") as plot:
        assert plot.format == "PNG" and plot.width > 600


def test_cli_empty_image_dir_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "out"
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()  # the defaults, as if run with no arguments
    with flagsaver.flagsaver(images=str(empty), out_dir=str(out_dir)):
        with pytest.raises(SystemExit) as exit_info:
            evaluate_compression.main(["evaluate_compression"])
    assert str(exit_info.value) == f"evaluate_compression: error: --images: directory {empty} is empty"
    assert not out_dir.exists()


def test_folder_without_images_and_bad_qualities_are_errors(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no images matched"):
        evaluate_compression.run_evaluation(str(folder), str(tmp_path / "out"), jpeg_qualities=[50])
    images = _write_images(tmp_path / "images")
    with pytest.raises(ValueError, match=r"webp quality must be an integer in \[0, 100\]"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"), webp_qualities=[50, 120])
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="--lambdas: 'abc' is not a valid float"):
        evaluate_compression.parse_numbers(["0.01", "abc"], "lambdas", float)


def test_images_too_small_for_ms_ssim_get_none_and_a_note(tmp_path):
    images = _write_images(tmp_path / "images", size=(64, 80))
    notes = []
    results = evaluate_compression.run_evaluation(
        images, str(tmp_path / "out"), jpeg_qualities=[20, 80], log=notes.append
    )
    assert all(row["ms_ssim"] is None and row["psnr"] > 15 for row in results["per_image"])
    assert sum("below 161px: no MS-SSIM" in note for note in notes) == 2  # once per image
    with open(tmp_path / "out" / "per_image.csv") as handle:
        assert next(csv.DictReader(handle))["ms_ssim"] == ""


def test_model_labels():
    assert evaluate_compression.model_label("runs/vbr/model.keras") == "vbr"
    assert evaluate_compression.model_label("runs/q3.keras") == "q3"
    taken = {"jpeg"}
    assert evaluate_compression._unique_labels(["a/model.keras", "b/a.keras", "jpeg.keras"], taken) == [
        "a", "a_2", "jpeg_2",
    ]
