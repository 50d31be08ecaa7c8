"""The YOTO-versus-separate-models harness (benchmarks/yoto_vs_fixed/)."""

import csv
import json
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
    EXAMPLES = 3

    def loss_space(self, low, high):
        return toy.loss_space(low or 0.01, high or 100.0)

    def build_model(self, loss_space, width_multiplier, seed):
        network = toy.build_network(loss_space, units=int(16 * width_multiplier))
        return LossConditionalModel(network, toy.loss_terms, seed=seed)

    def train_dataset(self, batch_size, seed):
        return tf.data.Dataset.from_tensors(tf.ones([batch_size, 1])).repeat()

    def evaluate(self, network, lam, split="test"):
        inputs = np.ones([self.EXAMPLES, 1], np.float32)
        y = keras.ops.convert_to_numpy(network((inputs, np.tile(lam[None], (self.EXAMPLES, 1)))))
        return {name: keras.ops.convert_to_numpy(value) for name, value in toy.loss_terms(None, y).items()}


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
    assert {(r["seed"], r["learning_rate"], r["kl_warmup_steps"]) for r in results} == {("0", "0.001", "0")}
    rows = _read(tmp_path / "summary.csv")
    assert list(rows[0]) == ["eval_lambda", "seeds", "examples", "fixed_metric"] + [
        f"yoto_w{w}_{column}" for w in (1, 2)
        for column in ("metric", "ratio", "ratio_low", "ratio_high", "verdict")]
    for row, entry in zip(rows, summary):
        # One seed: the mean ratio is the ratio of the means.
        assert float(row["yoto_w1_ratio"]) == pytest.approx(float(row["yoto_w1_metric"]) / float(row["fixed_metric"]))
        assert float(row["yoto_w1_ratio_low"]) <= float(row["yoto_w1_ratio"]) <= float(row["yoto_w1_ratio_high"])
        assert row["yoto_w1_verdict"] in harness.bootstrap.VERDICTS
        assert float(row["eval_lambda"]) == entry["eval_lambda"]
    # Per example: 4 models x 2 lambdas x ToyAdapter.EXAMPLES, their mean is the result row's.
    examples = _read(tmp_path / "examples.csv")
    assert list(examples[0])[: len(harness.EXAMPLE_COLUMNS)] == list(harness.EXAMPLE_COLUMNS)
    assert len(examples) == 8 * ToyAdapter.EXAMPLES
    for r in results:
        mine = [float(e["metric"]) for e in examples if (e["model"], e["seed"], e["eval_lambda"])
                == (r["model"], r["seed"], r["eval_lambda"])]
        assert len(mine) == ToyAdapter.EXAMPLES and np.mean(mine) == pytest.approx(float(r["metric"]), rel=1e-6)
    timing = _read(tmp_path / "timing.csv")
    assert [t["approach"] for t in timing] == ["2 fixed (w x1)", "YOTO w x1", "YOTO w x2"]
    fixed_seconds = sum(float(r["train_seconds"]) for r in results
                        if r["approach"] == "fixed" and r["eval_lambda"] == r["trained_lambda"])
    assert float(timing[0]["train_seconds"]) == pytest.approx(fixed_seconds)
    assert os.path.getsize(tmp_path / "yoto_vs_fixed.png") > 5000
    verdicts = (tmp_path / "verdicts.txt").read_text().splitlines()
    assert len(verdicts) == 4 and verdicts[0].startswith("lambda 0.1: YOTO w x1 / fixed = ")


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
    # Each model's .keras and .json under a key of label, seed and learning rate, and no
    # temporary files left behind.
    assert sorted(os.listdir(tmp_path / "models")) == sorted(
        f"{label}_seed0_lr0.001.{ext}" for label in steps for ext in ("keras", "json"))

    messages.clear()
    again = run(steps=3, equal_compute_yoto=True)
    assert sum("reusing" in m for m in messages) == 4 and not any("steps in" in m for m in messages)
    assert again == first  # the same saved networks, evaluated the same way

    messages.clear()
    run(steps=3, cosine_decay=True)  # another learning-rate recipe: every model retrains
    assert not any("reusing" in m for m in messages)
    assert sum("3 steps in" in m for m in messages) == 3

    messages.clear()
    run(steps=3, seeds=[0, 5], cosine_decay=True)  # seed 0 is saved; seed 5 is new
    assert sum("(seed 0, lr 0.001): reusing" in m for m in messages) == 3
    assert sum("(seed 5, lr 0.001): 3 steps in" in m for m in messages) == 3


def test_every_model_trains_with_every_seed_and_the_report_has_intervals(tmp_path):
    settings = harness.HarnessSettings(batch_size=8)
    messages = []
    summary = harness.run_comparison(
        ToyAdapter(settings), [0.1, 10.0], steps=5, out_dir=str(tmp_path), seeds=[0, 1, 2],
        settings=settings, log=messages.append)
    results = _read(tmp_path / "results.csv")
    # One row per (model, seed, lambda): 3 models x 3 seeds x 2 lambdas.
    keys = [(r["model"], r["seed"], r["eval_lambda"]) for r in results]
    assert len(keys) == len(set(keys)) == 18
    assert {r["seed"] for r in results} == {"0", "1", "2"}
    # The seeds give different models (weights and lambda sampling), hence different metrics.
    yoto_at_10 = {float(r["metric"]) for r in results if r["model"] == "yoto_w1" and r["eval_lambda"] == "10.0"}
    assert len(yoto_at_10) == 3
    for entry in summary:
        per_seed = [
            np.mean([float(r["metric"]) for r in results if r["model"] == "yoto_w1" and r["seed"] == seed
                     and float(r["eval_lambda"]) == entry["eval_lambda"]])
            / np.mean([float(r["metric"]) for r in results if r["approach"] == "fixed" and r["seed"] == seed
                       and float(r["trained_lambda"]) == entry["eval_lambda"]
                       and float(r["eval_lambda"]) == entry["eval_lambda"]])
            for seed in ("0", "1", "2")]
        assert entry["seeds"] == 3
        assert entry["yoto_w1_ratio"] == pytest.approx(np.mean(per_seed), rel=1e-6)
        assert entry["yoto_w1_ratio_low"] < entry["yoto_w1_ratio_high"]  # the seeds differ
        assert min(per_seed) <= entry["yoto_w1_ratio_high"] and entry["yoto_w1_ratio_low"] <= max(per_seed)
    assert sum(m.startswith("lambda ") and "(3 seeds x 3 examples)" in m for m in messages) == 2


def test_learning_rate_sweep_picks_the_better_rate_for_every_model(tmp_path):
    """A rate of 1e-7 barely moves the toy's weights in 20 steps; 0.05 fits it."""
    settings = harness.HarnessSettings(batch_size=8)
    messages = []
    harness.run_comparison(
        ToyAdapter(settings), [0.1, 10.0], steps=40, out_dir=str(tmp_path), seeds=[3, 4],
        learning_rates=[1e-7, 0.05], sweep_steps=20, settings=settings, log=messages.append)
    sweep = _read(tmp_path / "sweep.csv")
    assert list(sweep[0])[: len(harness.SWEEP_COLUMNS)] == list(harness.SWEEP_COLUMNS)
    # Every model at every rate, same budget for fixed and YOTO, with the first seed.
    assert sorted((r["model"], float(r["learning_rate"])) for r in sweep) == sorted(
        (label, rate) for label in ("fixed_0.1", "fixed_10", "yoto_w1") for rate in (1e-7, 0.05))
    assert {(r["steps"], r["seed"]) for r in sweep} == {("20", "3")}
    for r in sweep:
        slow = next(s for s in sweep if s["model"] == r["model"] and float(s["learning_rate"]) == 1e-7)
        fast = next(s for s in sweep if s["model"] == r["model"] and float(s["learning_rate"]) == 0.05)
        assert float(fast["validation_score"]) < float(slow["validation_score"])
        assert (r["chosen"] == "True") == (float(r["learning_rate"]) == 0.05)
    # The full runs (every seed) use the chosen rate, and the CSV says so.
    results = _read(tmp_path / "results.csv")
    assert {(r["learning_rate"], r["steps"]) for r in results} == {("0.05", "40")}
    assert sorted(os.listdir(tmp_path / "models" / "sweep")) == sorted(
        f"{label}_seed3_lr{rate}.{ext}" for label in ("fixed_0.1", "fixed_10", "yoto_w1")
        for rate in ("1e-07", "0.05") for ext in ("keras", "json"))
    assert any(m == "yoto_w1: learning rate 0.05" or m.startswith("yoto_w1: learning rate 0.05 ")
               for m in messages)
    timing = _read(tmp_path / "timing.csv")
    assert all(float(t["sweep_seconds"]) > 0 for t in timing)


def test_a_sweep_run_is_its_recipe_shortened_steps_and_warmup_alike():
    spec = harness.ModelSpec("fixed_8", "fixed", 1.0, 8.0, LossSpace([Coefficient.fixed("kl", 8.0)]), 3000,
                             seed=2, learning_rate=harness.LearningRate(3e-4, cosine_decay=True),
                             kl_warmup_steps=1000)
    short = spec.shortened(0.2)
    assert (short.steps, short.kl_warmup_steps) == (600, 200)
    assert (short.seed, short.learning_rate, short.label) == (spec.seed, spec.learning_rate, spec.label)
    assert spec.key == "fixed_8_seed2_lr0.0003" and spec.shortened(1e-6).steps == 1


def test_seeds_flag_and_options_are_checked_before_training():
    assert harness.parse_seeds(["3"], first=10) == [10, 11, 12]
    assert harness.parse_seeds(["0", "4", "2"]) == [0, 4, 2]
    with pytest.raises(ValueError, match="count N or a list of seeds"):
        harness.parse_seeds(["a"])
    with pytest.raises(ValueError, match="N >= 1"):
        harness.parse_seeds(["0"])
    toy = ToyAdapter(harness.HarnessSettings())
    assert harness.check_options(toy, 100, [1, 2], [1e-3, 3e-4], None, 0) == ([1, 2], [1e-3, 3e-4], 20)
    with pytest.raises(ValueError, match="distinct seeds"):
        harness.check_options(toy, 100, [1, 1], [1e-3], None, 0)
    with pytest.raises(ValueError, match="distinct positive learning rates"):
        harness.check_options(toy, 100, [0], [1e-3, 0.0], None, 0)
    with pytest.raises(ValueError, match=r"--sweep_steps must be in \[1, --steps = 100\]"):
        harness.check_options(toy, 100, [0], [1e-3, 3e-4], 200, 0)
    with pytest.raises(ValueError, match="the toy task has no KL term"):
        harness.check_options(toy, 100, [0], [1e-3], None, 10)


@pytest.mark.slow
def test_harness_cli_on_beta_vae_at_tiny_scale_and_a_rerun_reuses_every_model(tmp_path):
    """The real task at a tiny scale: worker processes, the pre-rendered pool (cached in
    --out_dir), the equal-compute model, two seeds, the KL warm-up, one row per (model, seed,
    lambda); and a rerun (as after an interruption) loads every finished model instead of
    training it again."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # Requests refused before training, run beside the real one (each process spends seconds
    # importing TensorFlow).
    bad_requests = [(["--lambdas", "1,1024"], "outside its allowed range [0.5, 512]"),
                    (["--task", "compression", "--kl_warmup_steps", "5"], "compression task has no KL term")]
    bad_runs = [subprocess.Popen(
        [sys.executable, "-m", "benchmarks.yoto_vs_fixed", *flags, "--out_dir", str(tmp_path / "bad")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for flags, _ in bad_requests]
    command = [sys.executable, "-m", "benchmarks.yoto_vs_fixed", "--task", "beta_vae", "--lambdas", "1,8",
               "--steps", "3", "--image_size", "16", "--batch_size", "8", "--eval_examples", "16",
               "--train_examples", "64", "--workers", "2", "--equal_compute_yoto", "--seeds", "2",
               "--kl_warmup_steps", "1", "--out_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = _read(tmp_path / "results.csv")
    assert {"reconstruction", "kl"} <= set(results[0]) and len(results) == 16
    keys = {(r["model"], r["seed"], r["eval_lambda"]) for r in results}
    assert len(keys) == 16  # 4 models x 2 seeds x 2 lambdas, one row each
    assert len(_read(tmp_path / "examples.csv")) == 16 * 16
    assert {r["metric_name"] for r in results} == {"neg_beta_elbo"}
    assert {r["seed"] for r in results} == {"0", "1"} and {r["kl_warmup_steps"] for r in results} == {"1"}
    assert {r["model"]: r["steps"] for r in results}["yoto_w1_6steps"] == "6"
    summary = _read(tmp_path / "summary.csv")
    assert [r["eval_lambda"] for r in summary] == ["1.0", "8.0"] and {r["seeds"] for r in summary} == {"2"}
    assert (tmp_path / "yoto_vs_fixed.png").exists()
    assert sorted(n for n in os.listdir(tmp_path / "models") if n.endswith(".keras")) == sorted(
        f"{label}_seed{seed}_lr0.001.keras" for label in ("fixed_1", "fixed_8", "yoto_w1", "yoto_w1_6steps")
        for seed in (0, 1))
    with open(tmp_path / "models" / "yoto_w1_seed1_lr0.001.json") as f:
        recipe = json.load(f)["recipe"]
    assert (recipe["seed"], recipe["kl_warmup_steps"], recipe["learning_rate"]["initial"]) == (1, 1, 1e-3)
    np.testing.assert_array_equal(np.load(tmp_path / "shapes_train_seed0_16px_64.npy"),
                                  pool.render_pool(64, 16, seed=0, workers=1))

    saved = {name: os.path.getmtime(tmp_path / "models" / name) for name in os.listdir(tmp_path / "models")}
    summary_text = (tmp_path / "summary.csv").read_text()
    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("reusing the model") == 8 and "steps in" not in rerun.stdout, rerun.stdout
    assert {name: os.path.getmtime(tmp_path / "models" / name) for name in saved} == saved
    assert (tmp_path / "summary.csv").read_text() == summary_text
    for (_, message), bad in zip(bad_requests, bad_runs):
        _, stderr = bad.communicate(timeout=120)
        assert bad.returncode != 0 and message in stderr
        assert "Traceback" not in stderr


@pytest.mark.parametrize("task, image_size", [("beta_vae", 16), ("compression", 64), ("style_transfer", 32)])
def test_task_adapters_plug_in_with_the_tasks_public_builders(task, image_size, tmp_path):
    """Each adapter builds a fixed and a YOTO model of its task and measures every loss term
    per example at a lambda, on the test and the validation examples (no training: the
    harness itself is covered above)."""
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
        assert all(np.shape(v) == (2,) and np.isfinite(v).all() for v in measurements.values())  # per example
        metric = adapter.metric(measurements, lam, space)
        assert metric.shape == (2,) and np.isfinite(metric).all()
        validation = adapter.evaluate(model.network, lam, split="validation")
        assert set(validation) == set(measurements)
        assert not np.allclose(validation[swept.name], measurements[swept.name])  # other crops
    with pytest.raises(ValueError, match="Unknown evaluation split 'train'"):
        adapter.evaluate(model.network, lam, split="train")


def _rd_rows(seed, label, approach, points):
    """Result rows of one model: ``points`` = [(lambda, bpp, psnr)]; a fixed model has one."""
    return [{"seed": seed, "model": label, "approach": approach, "eval_lambda": lam,
             "trained_lambda": lam if approach == "fixed" else "", "rate": bpp, "psnr_db": psnr}
            for lam, bpp, psnr in points]


def test_bd_rate_rows_compare_each_yoto_curve_with_the_fixed_models_curve():
    """Per seed: the fixed models' points at their own lambdas form the anchor curve; a YOTO
    curve with the same qualities at 0.9x (seed 0) and 1.1x (seed 1) the rates is -10 % and
    +10 % (BD-rate averages log rates); the mean row averages the seeds; curves that do not
    overlap in quality get a note instead of a number."""
    lambdas, bpps, psnrs = [0.01, 0.1, 1.0], [0.2, 0.5, 1.1], [26.0, 29.0, 32.0]
    rows = []
    for seed, factor in ((0, 0.9), (1, 1.1)):
        for lam, bpp, psnr in zip(lambdas, bpps, psnrs):
            rows += _rd_rows(seed, f"fixed_{lam:g}", "fixed", [(lam, bpp, psnr)])
            # a fixed model evaluated at another lambda is the same point: must not enter the curve
            rows += [dict(r, eval_lambda=other) for r in _rd_rows(seed, f"fixed_{lam:g}", "fixed", [(lam, bpp, psnr)])
                     for other in lambdas if other != lam]
        rows += _rd_rows(seed, "yoto_w1", "yoto", [(lam, bpp * factor, psnr) for lam, bpp, psnr in zip(lambdas, bpps, psnrs)])
        rows += _rd_rows(seed, "yoto_w2", "yoto", [(lam, bpp, psnr + 20) for lam, bpp, psnr in zip(lambdas, bpps, psnrs)])
    result = harness.bd_rate_rows(rows, ["yoto_w1", "yoto_w2"], "rate", "psnr_db")
    by_key = {(r["model"], r["seed"]): r for r in result}
    assert by_key[("yoto_w1", 0)]["bd_rate_percent"] == pytest.approx(-10.0, abs=1e-6)
    assert by_key[("yoto_w1", 1)]["bd_rate_percent"] == pytest.approx(10.0, abs=1e-6)
    assert by_key[("yoto_w1", "mean")]["bd_rate_percent"] == pytest.approx(0.0, abs=1e-6)
    assert by_key[("yoto_w1", "mean")]["note"] == "2 of 2 seeds, range -10.00 .. +10.00 %"
    assert by_key[("yoto_w1", 0)]["note"] is None
    assert by_key[("yoto_w2", 0)]["bd_rate_percent"] is None and by_key[("yoto_w2", 0)]["note"]
    assert by_key[("yoto_w2", "mean")]["bd_rate_percent"] is None
    # a fixed curve whose PSNR falls at the top (an undertrained fixed model) is flagged
    bent = [dict(r, psnr_db=25.0) if r["model"] == "fixed_1" else r for r in rows]
    noted = {(r["model"], r["seed"]): r for r in harness.bd_rate_rows(bent, ["yoto_w1"], "rate", "psnr_db")}
    assert "fixed: PSNR does not rise with rate" in noted[("yoto_w1", 0)]["note"]
    assert noted[("yoto_w1", "mean")]["note"].endswith("; 2 seed(s) with a note")
    lines = harness.report.bd_rate_lines(result, {"yoto_w1": "YOTO w x1", "yoto_w2": "YOTO w x2"}, "psnr_db")
    assert lines == ["BD-rate (psnr_db) of YOTO w x1 vs the fixed models' curve: +0.00 % "
                     "(mean over seeds; 2 of 2 seeds, range -10.00 .. +10.00 %)",
                     "BD-rate (psnr_db) of YOTO w x2 vs the fixed models' curve: undefined "
                     "(mean over seeds; 0 of 2 seeds; 2 seed(s) with a note)"]


def test_compression_adapter_builds_the_chosen_recipe_and_records_it():
    """--mean_scale / --mixed_quantization / --geometric_mean_weights reach the model and the saved recipe (so a
    model of another recipe is retrained), and stay out of other tasks' recipes."""
    plain = harness.make_adapter("compression", harness.HarnessSettings(image_size=64))
    chosen = harness.make_adapter("compression", harness.HarnessSettings(
        image_size=64, mean_scale=True, mixed_quantization=True))
    space = chosen.loss_space(None, None)
    network = chosen.build_model(space, 0.25, seed=0).network
    assert network.mean_scale and network.mixed_quantization
    assert not plain.build_model(space, 0.25, seed=0).network.mean_scale
    assert plain.build_model(space, 0.25, seed=0).weight_normalization == "geometric_mean"
    unweighted = harness.make_adapter("compression", harness.HarnessSettings(image_size=64, geometric_mean_weights=False))
    assert unweighted.build_model(space, 0.25, seed=0).weight_normalization == "none"
    spec = harness.ModelSpec("yoto_w1", "yoto", 1.0, None, space, 10)
    recipes = [harness.training.recipe(adapter, spec) for adapter in (plain, chosen)]
    # A task's own settings count when not at their defaults (a new setting at its default
    # keeps older saved models reusable).
    assert "mean_scale" not in recipes[0] and recipes[1]["mean_scale"] is True
    assert recipes[1]["mixed_quantization"] is True and "geometric_mean_weights" not in recipes[1]
    bvae = harness.make_adapter("beta_vae", harness.HarnessSettings(image_size=16, eval_examples=2))
    assert "mean_scale" not in harness.training.recipe(bvae, spec)
