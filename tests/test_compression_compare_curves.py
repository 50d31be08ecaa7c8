"""Tests of reading RD curves back from mean.csv files and `python -m trainers.compare_rd_curves`."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from yoto_tf.compression import evaluation
from yoto_tf.files import write_csv_atomically

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAMBDAS = (0.002, 0.005, 0.01, 0.03, 0.1)
PSNRS = (27.0, 29.0, 30.5, 31.5, 32.0)


def _means(codec, kind, setting, values, bpps, psnrs, ms_ssim_db=True):
    """mean.csv rows (all MEAN_FIELDS) of one codec."""
    rows = []
    for value, bpp, psnr in zip(values, bpps, psnrs):
        row = dict.fromkeys(evaluation.MEAN_FIELDS)
        row.update(codec=codec, kind=kind, setting=setting, value=value, num_images=2, bpp=bpp, psnr=psnr,
                   ms_ssim_db=psnr - 15.0 if ms_ssim_db else None, encode_seconds=0.1, decode_seconds=0.1)
        rows.append(row)
    return rows


def _write_mean_csv(path, rows):
    write_csv_atomically(str(path), rows, evaluation.MEAN_FIELDS)
    return str(path)


def _model_and_webp(model="vbr", rate_factor=1.0):
    """A model whose rates are ``rate_factor`` times WebP's at the same PSNRs."""
    webp_bpps = np.geomspace(0.15, 1.2, len(PSNRS))
    return (_means(model, "variable", "lambda", LAMBDAS, webp_bpps * rate_factor, PSNRS)
            + _means("webp", "baseline", "quality", (10, 30, 50, 70, 90), webp_bpps, PSNRS))


def test_read_mean_curve_gives_the_curves_of_the_evaluation(tmp_path):
    rows = _model_and_webp(rate_factor=0.9)
    path = _write_mean_csv(tmp_path / "mean.csv", rows)
    expected = evaluation.curves(rows)
    for codec in ("vbr", "webp"):
        curve = evaluation.read_mean_curve(path, codec)
        np.testing.assert_allclose(curve.bpp, expected[codec].bpp)
        np.testing.assert_allclose(curve.psnr, expected[codec].psnr)
        np.testing.assert_allclose(curve.ms_ssim_db, expected[codec].ms_ssim_db)
    row = evaluation.bjontegaard_row(evaluation.read_mean_curve(path, "vbr"), evaluation.read_mean_curve(path, "webp"))
    assert row["bd_rate_psnr_percent"] == pytest.approx(-10.0, abs=1e-6)
    assert row["bd_rate_ms_ssim_percent"] == pytest.approx(-10.0, abs=1e-6)


def test_read_mean_curve_keeps_a_lambda_range_and_fixed_models(tmp_path):
    fixed = [row for lam, bpp, psnr in zip(LAMBDAS[:2], (0.2, 0.4), (27.5, 29.5))
             for row in _means(f"q{lam:g}", "fixed", "lambda", [lam], [bpp], [psnr])]
    path = _write_mean_csv(tmp_path / "mean.csv", _model_and_webp() + fixed)
    part = evaluation.read_mean_curve(path, "vbr", values=(0.005, 0.03))
    np.testing.assert_allclose(part.psnr, PSNRS[1:4])
    fixed_curve = evaluation.read_mean_curve(path, evaluation.FIXED_CURVE)
    np.testing.assert_allclose(fixed_curve.bpp, [0.2, 0.4])


def test_read_mean_curve_without_ms_ssim_compares_psnr_only(tmp_path):
    rows = (_means("vbr", "variable", "lambda", LAMBDAS, np.geomspace(0.1, 1, 5), PSNRS, ms_ssim_db=False)
            + _means("webp", "baseline", "quality", LAMBDAS, np.geomspace(0.1, 1, 5), PSNRS))
    path = _write_mean_csv(tmp_path / "mean.csv", rows)
    curve = evaluation.read_mean_curve(path, "vbr")
    assert curve.ms_ssim_db is None
    row = evaluation.bjontegaard_row(curve, evaluation.read_mean_curve(path, "webp"))
    assert row["bd_rate_psnr_percent"] == pytest.approx(0.0, abs=1e-6) and row["bd_rate_ms_ssim_percent"] is None


def test_read_mean_curve_errors_name_the_file_and_the_problem(tmp_path):
    path = _write_mean_csv(tmp_path / "mean.csv", _model_and_webp())
    with pytest.raises(ValueError, match=r"mean.csv has no codec 'jpeg' \(it has: vbr, webp\)"):
        evaluation.read_mean_curve(path, "jpeg")
    with pytest.raises(ValueError, match=r"'vbr' has 1 point\(s\) with a setting value in \[0.01, 0.02\]"):
        evaluation.read_mean_curve(path, "vbr", values=(0.01, 0.02))
    with pytest.raises(ValueError, match="cannot read .*missing.csv"):
        evaluation.read_mean_curve(str(tmp_path / "missing.csv"), "vbr")
    other = tmp_path / "per_image.csv"
    other.write_text("image,bpp\nkodim01,0.5\n")
    with pytest.raises(ValueError, match="not a mean.csv .*missing columns: codec, kind, ms_ssim_db, psnr, value"):
        evaluation.read_mean_curve(str(other), "vbr")


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainers.compare_rd_curves", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _bd_rates(line):
    """``(label, BD-rate PSNR, BD-rate MS-SSIM)`` of one report line."""
    match = re.fullmatch(r"(.*): BD-rate PSNR ([-+.\d]+) %, BD-PSNR [-+.\d]+ dB, BD-rate MS-SSIM ([-+.\d]+) %.*", line)
    assert match, line
    return match[1], float(match[2]), float(match[3])


def test_cli_compares_runs_apart_and_parts_of_the_range(tmp_path):
    # the new model needs 20 % fewer bits at the three lowest lambdas, as many at the two highest
    new = _write_mean_csv(tmp_path / "new.csv", _model_and_webp("new", rate_factor=np.array([0.8, 0.8, 0.8, 1, 1])))
    old = _write_mean_csv(tmp_path / "old.csv", _model_and_webp("old", rate_factor=1.0))
    result = _run_cli("--test", f"{new}:new", "--anchor", f"{old}:old", "--test_ranges", "0.002:0.01,0.03:0.1")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"new ({new}) against old ({old}, 5 points)")
    assert len(lines) == 4
    whole, low, high = (_bd_rates(line) for line in lines[1:])
    assert whole[0] == "all (5 points)" and -20 < whole[1] < -3
    # fewer points are fitted with a lower-degree polynomial than the anchor's 5: close, not exact
    assert low[0] == "0.002-0.01 (3 points)" and low[1] == pytest.approx(-20.0, abs=1.0) and low[2] == low[1]
    assert high[0] == "0.03-0.1 (2 points)" and high[1] == pytest.approx(0.0, abs=3.0)

    same_file = _run_cli("--test", f"{old}:old", "--anchor", "webp")
    assert same_file.returncode == 0 and "all (5 points): BD-rate PSNR +0.00 %" in same_file.stdout


@pytest.mark.parametrize("args, message", [
    (["--test", "vbr", "--anchor", "webp"], "--test must be CSV:CODEC"),
    (["--test", "{csv}:vbr", "--anchor", "webp", "--test_ranges", "0.1:0.01"], "--test_ranges needs 0 < LO < HI"),
    (["--test", "{csv}:nope", "--anchor", "webp"], "has no codec 'nope' (it has: vbr, webp)"),
])
def test_cli_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    path = _write_mean_csv(tmp_path / "mean.csv", _model_and_webp())
    result = _run_cli(*[arg.format(csv=path) for arg in args])
    assert result.returncode == 1
    assert "compare_rd_curves: error: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
