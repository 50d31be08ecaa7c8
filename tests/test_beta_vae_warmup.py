"""The beta-VAE's KL warm-up (yoto_tf.beta_vae.model.BetaVAEModel): the schedule, that the
training loss applies it and evaluation does not, that it counts training steps and resumes
from a checkpoint, and that the trainer takes it as a flag."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from yoto_tf.beta_vae import model, shapes

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BETA = 4.0  # geometric-mean weights: reconstruction / 2 + 2 * factor * kl


def _vae(kl_warmup_steps):
    return model.build_model(model.fixed_beta_loss_space(BETA), image_size=16, seed=0,
                             kl_warmup_steps=kl_warmup_steps)


def test_kl_weight_ramps_from_zero_at_the_first_step_to_full_at_the_end_of_warmup():
    factors = [float(model.kl_warmup_factor(step, 4)) for step in range(7)]
    assert factors == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert float(model.kl_warmup_factor(0, 0)) == 1.0 and float(model.kl_warmup_factor(10, 0)) == 1.0
    assert float(model.kl_warmup_factor(keras.ops.convert_to_tensor(2.0), 8)) == 0.25
    with pytest.raises(ValueError, match="kl_warmup_steps must be >= 0, got -1"):
        _vae(-1)


def _kl_share(vae, images, training):
    """The KL weight's share of its full value in one loss computation (and the terms)."""
    y_pred = vae(images, training=training)
    loss = float(vae.compute_loss(x=images, y_pred=y_pred, training=training))
    terms = {k: float(np.mean(keras.ops.convert_to_numpy(v)))
             for k, v in model.loss_terms(images, y_pred["outputs"]).items()}
    weights = {"reconstruction": 1.0 / np.sqrt(BETA), "kl": np.sqrt(BETA)}
    return (loss - weights["reconstruction"] * terms["reconstruction"]) / (weights["kl"] * terms["kl"])


def test_training_loss_ramps_the_kl_weight_and_evaluation_uses_the_full_weight():
    images = shapes.shape_images(range(8), 16)[0]
    vae = _vae(4)
    # Evaluation: full weight, and the count of training steps does not move.
    assert _kl_share(vae, images, training=False) == pytest.approx(1.0, rel=1e-4)
    shares = [_kl_share(vae, images, training=True) for _ in range(6)]
    assert shares == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0], abs=1e-4)
    assert float(vae.kl_warmup_step) == 6.0
    assert _kl_share(_vae(0), images, training=True) == pytest.approx(1.0, rel=1e-4)
    assert not any("kl_warmup_step" in v.path for v in _vae(0).variables)  # no warm-up, no counter


def test_fit_counts_its_steps_and_a_checkpoint_resumes_the_ramp(tmp_path):
    images = shapes.shape_images(range(8), 16)[0]
    vae = _vae(10)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(tf.data.Dataset.from_tensors(images).repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    assert float(vae.kl_warmup_step) == 3.0
    vae.evaluate(tf.data.Dataset.from_tensors(images), verbose=0)
    assert float(vae.kl_warmup_step) == 3.0  # evaluation is not training
    path = tf.train.Checkpoint(model=vae).save(str(tmp_path / "ckpt"))
    resumed = _vae(10)
    # As trainers.core resumes (the optimizer's slots are left out here).
    tf.train.Checkpoint(model=resumed).restore(path).assert_existing_objects_matched().expect_partial()
    assert float(resumed.kl_warmup_step) == 3.0
    assert _kl_share(resumed, images, training=True) == pytest.approx(0.3, abs=1e-4)


@pytest.mark.slow  # a TensorFlow subprocess training 4 steps (about 10 s on the shared CPU)
def test_trainer_flag_trains_with_the_warmup_and_records_it(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "trainers.beta_vae", "--model_dir", str(run), "--steps", "4",
         "--batch_size", "4", "--image_size", "16", "--beta_range", "1,16", "--eval_images", "8",
         "--eval_betas", "1,16", "--kl_warmup_steps", "3"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "train_config.json").read_text())["task"]["kl_warmup_steps"] == 3
    checkpoint = tf.train.latest_checkpoint(str(run / "checkpoints"))
    counters = [name for name, _ in tf.train.list_variables(checkpoint) if "kl_warmup_step" in name]
    assert len(counters) == 1
    assert float(tf.train.load_variable(checkpoint, counters[0])) == 4.0  # every training step counted
