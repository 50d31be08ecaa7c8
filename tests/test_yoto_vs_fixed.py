"""The YOTO-versus-separate-models harness (benchmarks/yoto_vs_fixed/)."""

import csv
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import yoto_vs_fixed as harness
from yoto_tf import LossConditionalModel, toy
from yoto_tf.beta_vae import pool
from yoto_tf.coefficients import Coefficient, LossSpace

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ToyAdapter(harness.TaskAdapter):
    """The two-target toy (yoto_tf.toy) as a harness task: seconds to train."""

    name = "toy"
    coefficient = "to_a"

    def loss_space(self, low, high):
        return toy.loss_space(low or 0.01, high or 100.0)

    def build_model(self, loss_space, width_multiplier, seed):
        network = toy.build_network(loss_space, units=int(16 * width_multiplier))
        return LossConditionalModel(network, toy.loss_terms, seed=seed)

    def train_dataset(self, batch_size, seed):
        return tf.data.Dataset.from_tensors(tf.ones([batch_size, 1])).repeat()

    def evaluate(self, network, lam):
        y = keras.ops.convert_to_numpy(network((np.ones([1, 1], np.float32), lam[None])))
        return {name: float(value[0]) for name, value in toy.loss_terms(None, y).items()}


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_fixed_loss_space_fixes_every_coefficient():
    space = LossSpace([Coefficient("a", 0.1, 10.0), Coefficient("b", 1.0, 4.0, "uniform", default=2.0),
                       Coefficient.fixed("c", 3.0)])
    fixed = harness.fixed_loss_space(space, "a", 0.5)
    assert [c.distribution for c in fixed.coefficients] == ["fixed"] * 3
    np.testing.assert_array_equal(fixed.default(), [0.5, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"'a' = 20 is outside its allowed range \[0.1, 10\]"):
        harness.fixed_loss_space(space, "a", 20.0)


def test_request_checks_name_the_problem():
    with pytest.raises(ValueError, match="Unknown task 'segmentation'; available"):
        harness.make_adapter("segmentation", harness.HarnessSettings())
    with pytest.raises(ValueError, match="at least 2 distinct lambdas"):
        harness.check_lambdas([1.0, 1.0])
    assert harness.check_lambdas([8, 0.5]) == [0.5, 8.0]
    with pytest.raises(ValueError, match="multiple of 64, got 48"):
        harness.make_adapter("compression", harness.HarnessSettings(image_size=48))


def test_harness_end_to_end_on_the_toy_task(tmp_path):
    settings = harness.HarnessSettings(batch_size=8)
    summary = harness.run_comparison(
        ToyAdapter(settings), [10.0, 0.1], steps=3, out_dir=str(tmp_path),
        yoto_width_multipliers=[1.0, 2.0], settings=settings, log=lambda message: None,
    )
    results = _read(tmp_path / "results.csv")
    assert list(results[0])[: len(harness.RESULT_COLUMNS)] == list(harness.RESULT_COLUMNS)
    assert {"to_a", "to_b"} <= set(results[0])
    # 2 fixed models + 2 YOTO models, each evaluated at the 2 lambdas.
    assert len(results) == 8
    assert {r["model"] for r in results} == {"fixed_0.1", "fixed_10", "yoto_w1", "yoto_w2"}
    for r in results:
        assert float(r["metric"]) == pytest.approx(float(r["to_b"]) + float(r["eval_lambda"]) * float(r["to_a"]), rel=1e-5)
        assert int(r["steps"]) == 3 and float(r["train_seconds"]) > 0
    # A fixed model runs at its own lambda whatever the evaluation lambda: same terms.
    fixed_terms = {(r["to_a"], r["to_b"]) for r in results if r["model"] == "fixed_10"}
    assert len(fixed_terms) == 1
    rows = _read(tmp_path / "summary.csv")
    assert list(rows[0]) == ["eval_lambda", "fixed_metric", "yoto_w1_metric", "yoto_w1_ratio",
                             "yoto_w2_metric", "yoto_w2_ratio"]
    for row, entry in zip(rows, summary):
        assert float(row["yoto_w1_ratio"]) == pytest.approx(float(row["yoto_w1_metric"]) / float(row["fixed_metric"]))
        assert float(row["eval_lambda"]) == entry["eval_lambda"]
    timing = _read(tmp_path / "timing.csv")
    assert [t["approach"] for t in timing] == ["2 fixed (w x1)", "YOTO w x1", "YOTO w x2"]
    fixed_seconds = sum(float(r["train_seconds"]) for r in results
                        if r["approach"] == "fixed" and r["eval_lambda"] == r["trained_lambda"])
    assert float(timing[0]["train_seconds"]) == pytest.approx(fixed_seconds)
    assert os.path.getsize(tmp_path / "yoto_vs_fixed.png") > 5000


def test_rerun_reuses_finished_models_and_retrains_when_the_recipe_changes(tmp_path):
    settings = harness.HarnessSettings(batch_size=8)
    messages = []
    run = lambda **kwargs: harness.run_comparison(
        ToyAdapter(settings), [0.1, 10.0], out_dir=str(tmp_path), settings=settings,
        log=messages.append, **kwargs)
    first = run(steps=3, equal_compute_yoto=True)
    # The equal-compute YOTO model trains K x steps = 6 steps and gets its own columns.
    assert "yoto_w1_6steps_ratio" in first[0]
    steps = {r["model"]: int(r["steps"]) for r in _read(tmp_path / "results.csv")}
    assert steps == {"fixed_0.1": 3, "fixed_10": 3, "yoto_w1": 3, "yoto_w1_6steps": 6}
    # Each model's .keras and .json, and no temporary files left behind.
    assert sorted(os.listdir(tmp_path / "models")) == sorted(
        f"{label}.{ext}" for label in steps for ext in ("keras", "json"))

    messages.clear()
    again = run(steps=3, equal_compute_yoto=True)
    assert sum("reusing" in m for m in messages) == 4 and not any("steps in" in m for m in messages)
    assert again == first  # the same saved networks, evaluated the same way

    messages.clear()
    run(steps=3, cosine_decay=True)  # another learning-rate recipe: every model retrains
    assert not any("reusing" in m for m in messages)
    assert sum("3 steps in" in m for m in messages) == 3


@pytest.mark.slow
def test_harness_cli_on_beta_vae_at_tiny_scale(tmp_path):
    """Worker processes, the pre-rendered pool (cached in --out_dir), the equal-compute model."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.yoto_vs_fixed", "--task", "beta_vae", "--lambdas", "1,8",
         "--steps", "3", "--image_size", "16", "--batch_size", "8", "--eval_examples", "16",
         "--train_examples", "64", "--workers", "2", "--equal_compute_yoto", "--out_dir", str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = _read(tmp_path / "results.csv")
    assert {"reconstruction", "kl"} <= set(results[0]) and len(results) == 8
    assert {r["metric_name"] for r in results} == {"neg_beta_elbo"}
    assert {r["model"]: r["steps"] for r in results}["yoto_w1_6steps"] == "6"
    assert [r["eval_lambda"] for r in _read(tmp_path / "summary.csv")] == ["1.0", "8.0"]
    assert (tmp_path / "yoto_vs_fixed.png").exists()
    assert sorted(n for n in os.listdir(tmp_path / "models") if n.endswith(".keras")) == [
        "fixed_1.keras", "fixed_8.keras", "yoto_w1.keras", "yoto_w1_6steps.keras"]
    np.testing.assert_array_equal(np.load(tmp_path / "shapes_train_seed0_16px_64.npy"),
                                  pool.render_pool(64, 16, seed=0, workers=1))
    bad = subprocess.run(
        [sys.executable, "-m", "benchmarks.yoto_vs_fixed", "--lambdas", "1,1024", "--out_dir", str(tmp_path / "bad")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode != 0 and "outside its allowed range [0.5, 512]" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("task, image_size", [("compression", 64), ("style_transfer", 32)])
def test_task_adapters_plug_in_with_the_tasks_public_builders(task, image_size, tmp_path):
    """Each adapter builds a fixed and a YOTO model of its task and measures every loss term
    at a lambda (no training: the harness itself is covered above)."""
    from yoto_tf.images import save_image

    for name in ("a.png", "b.png"):
        save_image(str(tmp_path / name), np.random.default_rng(len(name)).random((80, 96, 3)))
    settings = harness.HarnessSettings(image_size=image_size, batch_size=2, eval_examples=2,
                                       train_data=f"folder:{tmp_path}/*.png", vgg_weights="none")
    adapter = harness.make_adapter(task, settings)
    space = adapter.loss_space(None, None)
    swept = space.coefficient(adapter.coefficient)
    assert swept.distribution == "log_uniform"
    fixed = harness.fixed_loss_space(space, adapter.coefficient, swept.high)
    batch = next(iter(adapter.train_dataset(2, seed=0)))
    for loss_space in (space, fixed):
        model = adapter.build_model(loss_space, 1.0, seed=0)
        assert model.loss_space == loss_space
        if task == "compression":  # the trainer's objective, not a plain weighted sum
            assert model.weight_normalization == "geometric_mean"
        model(batch)  # builds: the batch is what the model trains on
        lam = loss_space.make(**{adapter.coefficient: swept.high})
        measurements = adapter.evaluate(model.network, lam)
        assert set(space.names) <= set(measurements)
        assert all(np.isfinite(v) for v in measurements.values())
        assert np.isfinite(adapter.metric(measurements, lam, space))
