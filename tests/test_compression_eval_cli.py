"""Tests of `python -m trainers.evaluate_compression` (baselines, outputs, bad input)."""

import csv
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from trainers import evaluate_compression
from yoto_tf.compression import evaluation, matched_rate

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
        assert set(evaluation.RESULT_FIELDS) == set(row)
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
    assert len(rows) == 16 and tuple(rows[0]) == evaluation.RESULT_FIELDS
    assert float(rows[0]["bpp"]) == pytest.approx(per_image[0]["bpp"])
    with open(out_dir / "mean.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    with open(out_dir / "bd_rate.csv") as handle:
        assert float(next(csv.DictReader(handle))["bd_rate_psnr_percent"]) == pytest.approx(
            bd["bd_rate_psnr_percent"]
        )
    with Image.open(out_dir / "rd_curves.png") as plot:
        assert plot.format == "PNG" and plot.width > 600


def test_cli_empty_image_dir_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "out"
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()  # the defaults, as if run with no arguments
    with flagsaver.flagsaver(images=str(empty), out_dir=str(out_dir)):
        with pytest.raises(SystemExit) as exit_info:
            evaluate_compression.main(["evaluate_compression"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"evaluate_compression: error: --images: directory {empty} is empty\n"
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
    assert evaluate_compression.model_label("model.keras") == "model"
    taken = {"jpeg"}
    assert evaluate_compression._unique_labels(["a/model.keras", "b/a.keras", "jpeg.keras"], taken) == [
        "a", "a_2", "jpeg_2",
    ]


# --------------------------------------------------------------------------------- learned codecs


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Untrained tiny compression models saved as .keras: one variable-rate, two fixed-lambda.

    Untrained weights give a real (if poor) codec: the evaluation only needs bitstreams."""
    from yoto_tf.compression import CompressionNetwork, compression_loss_space

    root = tmp_path_factory.mktemp("models")
    spaces = {
        "vbr": compression_loss_space((0.002, 0.2)),
        "q_low": compression_loss_space(fixed_lambda=0.005),
        "q_high": compression_loss_space(fixed_lambda=0.05),
    }
    paths = {}
    for seed, (name, space) in enumerate(spaces.items()):
        network = CompressionNetwork(space, num_filters=8, num_latent=8, conditioning_units=16, seed=seed)
        network.build()
        paths[name] = str(root / name / "model.keras")
        os.makedirs(os.path.dirname(paths[name]))
        network.save(paths[name])
    return paths


def _run_main(**flag_values):
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()  # the defaults, as if run with no arguments
    with flagsaver.flagsaver(**flag_values):
        evaluate_compression.main(["evaluate_compression"])


def test_cli_with_variable_and_fixed_models(tmp_path, tiny_models):
    images = _write_images(tmp_path / "images")
    out_dir = tmp_path / "out"
    _run_main(
        images=images, out_dir=str(out_dir), models=[tiny_models["vbr"]],
        fixed_models=[tiny_models["q_low"], os.path.dirname(tiny_models["q_high"])],  # file or run dir
        lambdas=["0.002", "0.02", "0.2"], jpeg_qualities=["10", "50", "90"], webp_qualities=[],
    )
    results = json.loads((out_dir / "results.json").read_text())
    assert results["config"]["lambdas"] == {"vbr": [0.002, 0.02, 0.2], "q_low": [0.005], "q_high": [0.05]}
    learned = [row for row in results["per_image"] if row["kind"] != "baseline"]
    assert [(r["codec"], r["value"]) for r in learned[::2]] == [
        ("vbr", 0.002), ("vbr", 0.02), ("vbr", 0.2), ("q_low", 0.005), ("q_high", 0.05),
    ]
    assert {r["kind"] for r in learned} == {"variable", "fixed"}
    for row in learned:
        assert row["setting"] == "lambda"
        assert row["bytes"] > 16 and row["bpp"] == pytest.approx(row["bytes"] * 8 / (176 * 192))
        assert 0 < row["estimated_bpp"] < row["bpp"]  # the container adds a header
        assert row["encode_seconds"] > 0 and row["decode_seconds"] > 0
        assert np.isfinite(row["psnr"]) and 0 <= row["ms_ssim"] <= 1
    pairs = {(row["test"], row["anchor"]) for row in results["bd_rate"]}
    assert pairs == {("vbr", "jpeg"), ("vbr", evaluation.FIXED_CURVE),
                     (evaluation.FIXED_CURVE, "jpeg")}
    for row in results["bd_rate"]:
        # An untrained model's curve may not overlap JPEG's; that is reported, not raised.
        assert row["bd_rate_psnr_percent"] is not None or row["note"]
    comparison = results["fixed_lambda_comparison"]
    assert [(r["fixed_model"], r["variable_model"]) for r in comparison] == [("q_low", "vbr"), ("q_high", "vbr")]
    with open(out_dir / "mean.csv") as handle:
        means = list(csv.DictReader(handle))
    assert [m["codec"] for m in means] == ["jpeg"] * 3 + ["vbr"] * 3 + ["q_low", "q_high"]
    assert all(float(m["estimated_bpp"]) > 0 for m in means[3:])
    assert (out_dir / "rd_curves.png").stat().st_size > 10_000


def test_lambda_outside_model_range_names_the_range(tmp_path, tiny_models, capsys):
    images = _write_images(tmp_path / "images")
    with pytest.raises(SystemExit):
        _run_main(images=images, out_dir=str(tmp_path / "out"), models=[tiny_models["vbr"]],
                  lambdas=["0.01", "0.5"])
    assert re.search(r"vbr/model.keras: lambda 0.5 is outside .*\[0.002, 0.2\]", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # checked before any work


def test_model_list_errors(tmp_path, tiny_models):
    images = _write_images(tmp_path / "images")
    with pytest.raises(ValueError, match=r"range \[0.002, 0.2\], not at one fixed lambda"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"), fixed_model_paths=[tiny_models["vbr"]])
    with pytest.raises(ValueError, match="missing.keras' does not exist"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"), model_paths=[str(tmp_path / "missing.keras")])
    with pytest.raises(ValueError, match="Unknown model 'no_such_model'.*shipped models are painters4"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"), model_paths=["no_such_model"])
    with pytest.raises(ValueError, match="--target_bpps needs --models"):
        evaluate_compression.run_evaluation(images, str(tmp_path / "out"), jpeg_qualities=[50], target_bpps=[0.5])


def test_matched_rate_comparison_against_webp_at_the_same_size(tmp_path, tiny_models):
    images = _write_images(tmp_path / "images")
    out_dir = tmp_path / "out"
    results = evaluate_compression.run_evaluation(
        images, str(out_dir), model_paths=[tiny_models["vbr"]], lambdas=[0.02], estimate=False,
        with_ms_ssim=False, target_bpps=[1.0, 2.0], log=lambda _: None)
    with open(out_dir / "matched_rate.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["codec"], float(r["target_bpp"]), r["image"]) for r in rows] == [
        ("vbr", t, name) for t in (1.0, 2.0) for name in ("astronaut", "coffee")]
    for row in rows:
        if row["webp_psnr"]:
            assert float(row["psnr_gain_db"]) == pytest.approx(float(row["psnr"]) - float(row["webp_psnr"]))
    summary = results["matched_rate"]["vbr"]
    assert [s["target_bpp"] for s in summary] == [1.0, 2.0]
    assert all(s["num_images"] == 2 for s in summary)


def test_webp_psnr_at_interpolates_the_image_own_webp_curve():
    from yoto_tf.compression.baselines import encode_decode
    from yoto_tf.compression.metrics import psnr

    image = skimage.data.astronaut()[:128, :160]
    encoded = encode_decode(image, "webp", 50)
    at_50 = matched_rate.webp_psnr_at(image, encoded.bpp)
    assert at_50 == pytest.approx(psnr(image, encoded.reconstruction), abs=0.3)
    higher = matched_rate.webp_psnr_at(image, 2 * encoded.bpp)
    assert higher > at_50 + 1.0
    assert matched_rate.webp_psnr_at(image, 1e-4) is None and matched_rate.webp_psnr_at(image, 50.0) is None


def test_default_lambdas_span_the_trained_range(tiny_models):
    from yoto_tf.compression import load_compression_model

    lambdas = evaluate_compression.default_lambdas(load_compression_model(tiny_models["vbr"]))
    assert len(lambdas) == evaluate_compression.DEFAULT_NUM_LAMBDAS
    assert lambdas[0] == pytest.approx(0.002) and lambdas[-1] == pytest.approx(0.2)
    assert np.allclose(np.diff(np.log(lambdas)), np.log(100) / (len(lambdas) - 1))


def _mean_row(codec, kind, value, bpp, psnr_db, ms_ssim_db=None):
    return {"codec": codec, "kind": kind, "setting": "quality" if kind == "baseline" else "lambda",
            "value": value, "bpp": bpp, "psnr": psnr_db, "ms_ssim_db": ms_ssim_db}


def test_bjontegaard_table_and_fixed_lambda_comparison():
    # log(bpp) linear in PSNR; the fixed-lambda models need 10 % more bits than the variable
    # model at equal PSNR, JPEG 50 % more.
    def rate(psnr_db, factor):
        return factor * math.exp(0.17 * psnr_db - 6.6)

    vbr_psnr = [27.0, 29.0, 31.0, 33.0, 35.0, 37.0]
    means = (
        [_mean_row("jpeg", "baseline", q, rate(p, 1.5), p) for q, p in zip((10, 30, 50, 70, 90), (26, 29, 32, 35, 38))]
        + [_mean_row("vbr", "variable", 0.001 * 2**i, rate(p, 1.0), p) for i, p in enumerate(vbr_psnr)]
        + [_mean_row(f"q{i}", "fixed", lam, rate(p, 1.1), p) for i, (lam, p) in enumerate(((0.004, 30.0), (0.03, 34.0)))]
    )
    all_curves = evaluation.curves(means)
    assert list(all_curves) == ["jpeg", "vbr", evaluation.FIXED_CURVE]
    table = {(row["test"], row["anchor"]): row for row in evaluation.bjontegaard_table(all_curves)}
    assert set(table) == {("vbr", "jpeg"), ("vbr", evaluation.FIXED_CURVE),
                          (evaluation.FIXED_CURVE, "jpeg")}
    assert table["vbr", "jpeg"]["bd_rate_psnr_percent"] == pytest.approx(100 * (1 / 1.5 - 1), abs=1e-6)
    assert table["vbr", "jpeg"]["bd_psnr_db"] == pytest.approx(math.log(1.5) / 0.17, abs=1e-6)
    assert table["vbr", "jpeg"]["note"] is None
    fixed_row = table["vbr", evaluation.FIXED_CURVE]
    assert fixed_row["bd_rate_psnr_percent"] == pytest.approx(100 * (1 / 1.1 - 1), abs=1e-6)
    assert (fixed_row["psnr_overlap_low"], fixed_row["psnr_overlap_high"]) == (30.0, 34.0)
    assert "polynomial fit of degree 1" in fixed_row["note"]
    comparison = evaluation.fixed_point_comparison(means, all_curves)
    assert [row["fixed_model"] for row in comparison] == ["q0", "q1"]
    for row in comparison:
        # Linear interpolation of log-rate is exact on this curve.
        assert row["variable_rate_change_percent_at_equal_psnr"] == pytest.approx(100 * (1 / 1.1 - 1), abs=1e-6)


def test_bjontegaard_table_compares_recipes_against_a_reference_model():
    def rate(psnr_db, factor):
        return factor * math.exp(0.17 * psnr_db - 6.6)

    psnrs = [27.0, 30.0, 33.0, 36.0]
    means = ([_mean_row("base", "variable", 0.001 * 2**i, rate(p, 1.0), p) for i, p in enumerate(psnrs)]
             + [_mean_row("better", "variable", 0.001 * 2**i, rate(p, 0.8), p) for i, p in enumerate(psnrs)])
    table = {(row["test"], row["anchor"]): row
             for row in evaluation.bjontegaard_table(evaluation.curves(means), reference="base")}
    assert set(table) == {("better", "base")}
    assert table["better", "base"]["bd_rate_psnr_percent"] == pytest.approx(-20.0, abs=1e-6)


def test_bjontegaard_row_flags_a_curve_whose_quality_falls_with_rate():
    jpeg = evaluation.Curve("jpeg", np.array([0.2, 0.5, 1.0, 2.0]), np.array([24.0, 29.0, 33.0, 38.0]), None)
    erratic = evaluation.Curve("vbr", np.array([0.3, 0.4, 0.6, 0.9]), np.array([27.0, 30.0, 29.0, 33.0]), None)
    row = evaluation.bjontegaard_row(erratic, jpeg)
    assert row["bd_rate_psnr_percent"] is not None
    assert "vbr: PSNR does not rise with rate" in row["note"]
    assert evaluation.bjontegaard_row(jpeg, jpeg)["note"] is None
