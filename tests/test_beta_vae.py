"""beta-VAE task: shapes dataset (determinism, factors), network, loss terms, evaluation,
bad input, and a short YOTO training run where the rate falls as beta rises."""

import colorsys
import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from yoto_tf import find_loss_space
from yoto_tf.beta_vae import evaluation, inputs, model, shapes

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _factors(**overrides):
    """One example's factors; the fields not given are mid-range values."""
    values = dict(shape=1, scale=0.15, rotation=0.0, x=0.5, y=0.5, object_hue=0.0, background_hue=0.5)
    values.update(overrides)
    return shapes.ShapeFactors(**{k: np.array([v]) for k, v in values.items()})


def _object_mask(image, factors):
    """Pixels closer to the object's colour than to the background's."""
    obj = np.array(colorsys.hsv_to_rgb(factors.object_hue[0], 0.9, 0.95))
    bg = np.array(colorsys.hsv_to_rgb(factors.background_hue[0], 0.6, 0.35))
    return np.linalg.norm(image - obj, axis=-1) < np.linalg.norm(image - bg, axis=-1)


# ------------------------------------------------------------------------------ dataset
def test_shapes_are_deterministic_per_example_and_splits_differ():
    first = next(iter(shapes.shapes_dataset(4, 32, seed=3, num_examples=4))).numpy()
    again = next(iter(shapes.shapes_dataset(4, 32, seed=3, num_examples=4))).numpy()
    in_pairs = np.concatenate([b.numpy() for b in shapes.shapes_dataset(2, 32, seed=3, num_examples=4)])
    test_split = next(iter(shapes.shapes_dataset(4, 32, seed=3, split="test", num_examples=4))).numpy()
    other_seed = next(iter(shapes.shapes_dataset(4, 32, seed=4, num_examples=4))).numpy()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, in_pairs)  # example i does not depend on batch size
    assert first.shape == (4, 32, 32, 3) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert not np.allclose(first, test_split)
    assert not np.allclose(first, other_seed)


def test_infinite_stream_yields_the_factors_of_its_examples():
    images, factors = next(iter(shapes.shapes_dataset(3, 32, seed=7, with_factors=True)))
    expected_images, expected = shapes.shape_images(range(3), 32, seed=7)
    np.testing.assert_allclose(factors.numpy(), expected.as_array(), rtol=1e-6)
    np.testing.assert_array_equal(images.numpy(), expected_images)
    lo, hi = shapes.POSITION_RANGE
    many = shapes.sample_factors(range(500))
    assert set(np.unique(many.shape)) == {0, 1, 2}
    assert lo <= many.x.min() and many.x.max() <= hi and lo <= many.y.min() and many.y.max() <= hi
    assert shapes.SCALE_RANGE[0] <= many.scale.min() and many.scale.max() <= shapes.SCALE_RANGE[1]


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_rendered_centroid_and_area_match_the_factors(shape):
    size = 64
    for x, y, rotation in [(0.3, 0.6, 0.4), (0.7, 0.35, 2.0)]:
        f = _factors(shape=shape, x=x, y=y, rotation=rotation, scale=0.14)
        mask = _object_mask(shapes.render(f, size)[0], f)
        rows, cols = np.nonzero(mask)
        # Pixel (r, c) covers [c, c + 1) x [r, r + 1): its centre is at (c + 0.5, r + 0.5).
        assert abs(cols.mean() + 0.5 - x * size) < 0.5
        assert abs(rows.mean() + 0.5 - y * size) < 0.5
        s = 0.14 * size
        area = {0: (2 * s) ** 2, 1: np.pi * 1.2 * s * 0.6 * s, 2: 3 * np.sqrt(3) / 4 * (1.3 * s) ** 2}[shape]
        assert abs(mask.sum() - area) < 0.06 * area


def test_rotation_and_colours_follow_the_factors():
    flat = _factors(shape=1, rotation=0.0, object_hue=0.3, background_hue=0.8)
    upright = _factors(shape=1, rotation=np.pi / 2, object_hue=0.3, background_hue=0.8)
    flat_mask = _object_mask(shapes.render(flat, 64)[0], flat)
    upright_mask = _object_mask(shapes.render(upright, 64)[0], upright)
    width = lambda m: np.ptp(np.nonzero(m)[1])
    height = lambda m: np.ptp(np.nonzero(m)[0])
    assert width(flat_mask) > 1.7 * height(flat_mask)  # semi-axes 1.2 s (x) and 0.6 s (y)
    assert height(upright_mask) > 1.7 * width(upright_mask)
    image = shapes.render(flat, 64)[0]
    np.testing.assert_allclose(image[32, 32], colorsys.hsv_to_rgb(0.3, 0.9, 0.95), atol=1e-6)
    np.testing.assert_allclose(image[0, 0], colorsys.hsv_to_rgb(0.8, 0.6, 0.35), atol=1e-6)


def test_unknown_split_and_empty_folder_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="split 'valid'"):
        shapes.shapes_dataset(4, split="valid")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no images matched"):
        inputs.training_dataset(f"folder:{tmp_path}/*", 32, 4, seed=0)
    with pytest.raises(ValueError, match="'shapes', 'folder:GLOB' or 'tfds:NAME"):
        inputs.training_dataset("dsprites", 32, 4, seed=0)


# ------------------------------------------------------------------------------ model
def test_network_output_shapes_and_film_placement():
    space = model.beta_loss_space(0.5, 8.0)
    network = model.build_network(space, image_size=32, latent_dim=6)
    images = shapes.shape_images(range(2), 32)[0]
    out = network((images, space.make(2, kl=2.0)))
    assert tuple(out["logits"].shape) == (2, 32, 32, 3)
    assert tuple(out["z_mean"].shape) == (2, 6) and tuple(out["z_log_var"].shape) == (2, 6)
    assert find_loss_space(network) == space
    # One FiLM per block (4 convs + dense in the encoder, 2 dense + 3 deconvs in the decoder),
    # each between its block's last linear layer and its ReLU.
    for part in ("encoder", "decoder"):
        sub = network.get_layer(part)
        films = [layer for layer in sub.layers if layer.__class__.__name__ == "FiLM"]
        assert len(films) == 5
        for film in films:
            block = film.name[: -len("_film")]
            relu = sub.get_layer(f"{block}_relu")
            assert relu.input is film.output
            assert film.input[0] is sub.get_layer(block).output
    wide = model.build_network(space, image_size=32, latent_dim=6, width_multiplier=2)
    assert wide.get_layer("encoder").get_layer("conv_0").filters == 64
    assert wide.count_params() > 2 * network.count_params()


def test_loss_terms_are_per_example_and_zero_at_the_optimum():
    images = np.full((2, 16, 16, 3), 0.25, np.float32)
    perfect_logits = np.log(0.25 / 0.75) * np.ones_like(images)
    terms = model.loss_terms(images, {
        "logits": perfect_logits, "z_mean": np.zeros((2, 4), np.float32),
        "z_log_var": np.zeros((2, 4), np.float32),
    })
    np.testing.assert_allclose(terms["reconstruction"], [0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(terms["kl"], [0.0, 0.0], atol=1e-6)
    off = model.loss_terms(images, {
        "logits": np.zeros_like(images), "z_mean": np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32),
        "z_log_var": np.zeros((2, 4), np.float32),
    })
    # sigmoid(0) = 0.5: squared error 0.0625 per value over 768 values, / (2 * 0.1^2).
    np.testing.assert_allclose(off["reconstruction"], [2400.0, 2400.0], rtol=1e-5)
    np.testing.assert_allclose(off["kl"], [0.5, 0.0], atol=1e-6)


def test_geometric_mean_weights_rescale_each_examples_loss():
    images = shapes.shape_images(range(2), 16)[0]
    batch = {"inputs": images, "lambda": np.array([[1.0, 0.5], [1.0, 8.0]], np.float32)}
    beta = batch["lambda"][:, 1]
    losses = {}
    for normalized in (True, False):
        vae = model.build_model(model.beta_loss_space(0.5, 8.0), image_size=16, seed=0,
                                geometric_mean_weights=normalized)
        y_pred = vae(batch)
        terms = {k: keras.ops.convert_to_numpy(v) for k, v in model.loss_terms(images, y_pred["outputs"]).items()}
        losses[normalized] = (float(vae.compute_loss(x=batch, y_pred=y_pred)), terms)
    loss, terms = losses[True]
    expected = np.mean(terms["reconstruction"] / np.sqrt(beta) + np.sqrt(beta) * terms["kl"])
    assert loss == pytest.approx(expected, rel=1e-5)
    loss, terms = losses[False]
    assert loss == pytest.approx(np.mean(terms["reconstruction"] + beta * terms["kl"]), rel=1e-5)


def test_fixed_beta_model_uses_the_same_network_with_constant_conditioning():
    fixed = model.fixed_beta_loss_space(4.0)
    network = model.build_network(fixed, image_size=32)
    assert fixed.coefficients[1].distribution == "fixed" and fixed.default()[1] == 4.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fixed.to_conditioning(fixed.make(1, kl=4.0))), 0.0)
    assert [l.name for l in network.layers] == [l.name for l in model.build_network(image_size=32).layers]


def test_saved_network_round_trips_and_evaluates_identically(tmp_path):
    network = model.build_network(model.beta_loss_space(1.0, 16.0), image_size=16)
    path = str(tmp_path / "model.keras")
    network.save(path)
    loaded = keras.models.load_model(path)
    images = shapes.shape_images(range(8), 16, split="test")[0]
    assert evaluation.evaluate_betas(loaded, images, [1.0, 16.0]) == evaluation.evaluate_betas(
        network, images, [1.0, 16.0])
    assert find_loss_space(loaded) == find_loss_space(network)


def test_beta_outside_the_trained_range_is_refused_naming_the_range():
    network = model.build_network(model.beta_loss_space(0.5, 8.0), image_size=16)
    images = shapes.shape_images(range(2), 16)[0]
    with pytest.raises(ValueError, match=r"'kl' = 16 is outside its allowed range \[0.5, 8\]"):
        evaluation.evaluate_betas(network, images, [1.0, 16.0])
    fixed = model.build_network(model.fixed_beta_loss_space(2.0), image_size=16)
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        evaluation.reconstructions_and_samples(fixed, images, [4.0])


@pytest.mark.slow  # two TensorFlow subprocesses, started together (about 10 s on the shared CPU), no training
def test_trainer_cli_rejects_bad_beta_and_empty_folder_before_training(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    common = [sys.executable, "-m", "trainers.beta_vae", "--model_dir", str(tmp_path / "run")]
    (tmp_path / "empty").mkdir()
    bad_beta, empty = processes = [
        subprocess.Popen(common + flags, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for flags in (["--beta_range", "0.5,8", "--eval_betas", "1,16"],
                      ["--data", f"folder:{tmp_path}/empty/*.png"])]
    bad_beta_stderr, empty_stderr = (process.communicate(timeout=120)[1] for process in processes)
    assert bad_beta.returncode != 0
    assert "outside its allowed range [0.5, 8]" in bad_beta_stderr
    assert "Traceback" not in bad_beta_stderr
    assert empty.returncode != 0
    assert "no images matched" in empty_stderr and "empty/*.png" in empty_stderr
    assert "Traceback" not in empty_stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


# ------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_yoto_training_gives_less_kl_and_more_distortion_as_beta_rises(tmp_path):
    # 16 px images: the reconstruction term is 4x smaller than at 32 px, so the range where a
    # 400-step model trades distortion for rate lies lower than the default [0.5, 512]
    # (below beta ~ 0.1 its distortion no longer moves measurably with beta).
    keras.utils.set_random_seed(0)
    vae = model.build_model(model.beta_loss_space(0.1, 100.0), image_size=16, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(shapes.shapes_dataset(32, 16, seed=0), steps_per_epoch=400, epochs=1, verbose=0)
    images = shapes.shape_images(range(256), 16, split="test")[0]
    betas = [0.1, 1.0, 10.0, 100.0]
    results = evaluation.evaluate_betas(vae.network, images, betas)
    kl = [r.kl for r in results]
    distortion = [r.reconstruction for r in results]
    assert all(a > b for a, b in zip(kl, kl[1:])), kl
    assert kl[0] > 2 * kl[-1], kl
    assert all(a < b for a, b in zip(distortion, distortion[1:])), distortion
    # It learned more than the mean image (the distortion of a collapsed posterior).
    mean_image = np.broadcast_to(images.mean(axis=0), images.shape)
    collapsed = float(np.mean(np.sum((images - mean_image) ** 2, axis=(1, 2, 3)) / (2 * model.DECODER_STD**2)))
    assert distortion[0] < 0.85 * collapsed, (distortion, collapsed)
    evaluation.plot_rate_distortion({"yoto": results}, str(tmp_path / "rd.png"))
    evaluation.save_grid(vae.network, images[:3], betas, str(tmp_path / "grid.png"), num_samples=2)
    assert os.path.getsize(tmp_path / "rd.png") > 1000 and os.path.getsize(tmp_path / "grid.png") > 1000


@pytest.mark.slow
def test_trainer_writes_model_evaluation_and_plots(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "trainers.beta_vae", "--model_dir", str(run), "--steps", "6",
         "--batch_size", "8", "--image_size", "16", "--beta_range", "1,16", "--eval_images", "16",
         "--log_every", "3"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.keras", "rate_distortion.png", "samples.png", "evaluation.csv"):
        assert (run / name).exists(), name
    assert json.loads((run / "train_config.json").read_text())["task"]["latent_dim"] > 0
    with open(run / "evaluation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["beta"]) for r in rows] == [1.0, 2.0, 4.0, 8.0, 16.0]
    for r in rows:
        assert float(r["neg_beta_elbo"]) == pytest.approx(float(r["reconstruction"]) + float(r["beta"]) * float(r["kl"]))
    network = keras.models.load_model(run / "model.keras")
    assert find_loss_space(network) == model.beta_loss_space(1.0, 16.0)
