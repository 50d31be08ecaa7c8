"""Training style transfer with lambda maps: per-region loss terms, the two-region map sampler,
the per-region weighting, the saved per-image network, the trainer's --init_from and
--lambda_map_fraction, and the one-pass map evidence (trainers.evaluate_strength_map)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from yoto_tf.model_files import save_model
from yoto_tf.style_transfer import evaluation
from yoto_tf.style_transfer.inference import stylize
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space, with_strength
from yoto_tf.style_transfer.losses import StyleTransferLoss, gram_matrix, masked_gram_matrix
from yoto_tf.style_transfer.training import StyleTransferModel
from yoto_tf.style_transfer.transformer import build_network, takes_lambda_map

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def losses():
    styles = [RNG.uniform(size=(48, 40, 3)).astype(np.float32) for _ in range(2)]
    return StyleTransferLoss(styles, vgg_weights="none", style_size=48)


def _network(seed=1):
    keras.utils.set_random_seed(seed)
    net = build_network(style_transfer_loss_space(), num_styles=2, width_multiplier=0.125,
                        conditioning_units=16)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.name.endswith("_cin"):  # make lambda matter
            layer.set_weights([w + 0.3 * rng.normal(size=w.shape).astype(np.float32)
                               for w in layer.get_weights()])
    return net


def _batch(size=32):
    return {"image": RNG.uniform(size=(2, size, size, 3)).astype(np.float32),
            "style_index": np.array([0, 1], np.int32)}


def test_region_terms_of_the_whole_image_are_the_terms(losses):
    inputs, outputs = _batch(), RNG.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    whole = losses(inputs, outputs)
    regions = losses.region_terms(inputs, outputs, np.ones((2, 1, 32, 32), np.float32))
    for name, term in whole.items():
        np.testing.assert_allclose(np.asarray(regions[name])[:, 0], np.asarray(term), rtol=1e-4)


def test_masked_grams_of_a_partition_add_up_to_the_gram_by_area():
    features = RNG.normal(size=(2, 8, 8, 5)).astype(np.float32)
    left = np.zeros((2, 8, 8), np.float32)
    left[:, :, :3] = 1.0
    parts = [masked_gram_matrix(features, m) for m in (left, 1.0 - left)]
    combined = 3 / 8 * np.asarray(parts[0]) + 5 / 8 * np.asarray(parts[1])
    np.testing.assert_allclose(combined, np.asarray(gram_matrix(features)), rtol=1e-4, atol=1e-6)
    assert not np.allclose(np.asarray(parts[0]), np.asarray(parts[1]))
    np.testing.assert_allclose(np.asarray(masked_gram_matrix(features, 0 * left)), 0.0)


def _rectangle_of(levels):
    """The cells unlike the top-left cell of a map [h, w, k] form one rectangle (or none)."""
    other = np.any(np.abs(levels - levels[:1, :1]) > 1e-6, axis=-1)
    if not other.any():
        other = ~other
    rows, cols = np.nonzero(other.any(axis=1))[0], np.nonzero(other.any(axis=0))[0]
    return other, rows, cols


def test_map_sampler_draws_two_region_maps_at_the_requested_rate(losses):
    model = StyleTransferModel(_network(), losses, seed=3, lambda_map_fraction=1.0)
    assert takes_lambda_map(model.network)
    images = np.zeros((16, 64, 64, 3), np.float32)
    maps = np.asarray(model.sample_lambda_map(images, model.sample_lambda(16)))
    assert maps.shape == (16, 16, 16, 7)
    two_level = 0
    for levels in maps:
        distinct = np.unique(levels.reshape(-1, 7), axis=0)
        assert len(distinct) <= 2
        two_level += len(distinct) == 2
        mask, rows, cols = _rectangle_of(levels)
        if len(distinct) == 2 and not mask[0, 0]:  # the rectangle: contiguous, sides >= 1/4
            assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
            assert len(rows) >= 4 and len(cols) >= 4
    assert two_level >= 14
    never = StyleTransferModel(_network(), losses, seed=3, lambda_map_fraction=0.0)
    assert not takes_lambda_map(never.network)
    rarely = StyleTransferModel(_network(), losses, seed=3, lambda_map_fraction=0.25)
    maps = np.asarray(rarely.sample_lambda_map(images, rarely.sample_lambda(16)))
    assert sum(len(np.unique(m.reshape(-1, 7), axis=0)) == 2 for m in maps) <= 10


def test_constant_map_loss_is_the_per_image_loss(losses):
    net = _network()
    per_image = StyleTransferModel(net, losses, seed=0)
    mapped = StyleTransferModel(net, losses, seed=0, lambda_map_fraction=0.5)
    batch = {"inputs": _batch(), "lambda": with_strength(style_transfer_loss_space(), 3.0)[None].repeat(2, 0)}
    values = []
    for model in (per_image, mapped):
        y_pred = model(batch, training=False)
        values.append(float(model.compute_loss(batch, None, y_pred, training=False)))
    assert len(np.shape(mapped(batch)["lambda"])) == 4
    np.testing.assert_allclose(values[0], values[1], rtol=1e-5)


@pytest.mark.parametrize("corner_inside", [False, True])
def test_two_region_loss_weights_each_region_by_its_own_lambda(losses, corner_inside):
    model = StyleTransferModel(_network(), losses, seed=0, lambda_map_fraction=1.0)
    space = style_transfer_loss_space()
    low, high = with_strength(space, 0.2), with_strength(space, 5.0)
    cells = np.zeros((8, 8), bool)
    cells[:, :3] = True  # a left band of 3 of 8 columns
    if not corner_inside:
        cells = ~cells
    lam = np.where(cells[..., None], high, low)[None].repeat(2, 0).astype(np.float32)
    inputs = _batch()
    y_pred = model({"inputs": inputs, "lambda": lam}, training=False)
    outputs = y_pred["outputs"]
    terms, got = model.terms_and_example_losses(inputs, outputs, ops.convert_to_tensor(lam), False)
    # The whole-image terms come from the same pass: those of the per-image loss.
    np.testing.assert_allclose(terms, model.per_example_terms(inputs, outputs), rtol=1e-5)
    got = np.asarray(got)
    pixels = np.repeat(np.repeat(cells, 4, 0), 4, 1).astype(np.float32)
    masks = np.stack([pixels, 1.0 - pixels])[None].repeat(2, 0)
    regions = losses.region_terms(inputs, outputs, masks)
    region_terms = np.stack([np.asarray(regions[n]) for n in space.names], axis=-1)  # [B, 2, k]
    weights = np.stack([np.asarray(model.loss_weights(np.stack([w, w]))) for w in (high, low)],
                       axis=1)  # [B, 2, k]: the map's high cells, then the rest
    area = np.array([pixels.mean(), 1.0 - pixels.mean()])
    expected = np.sum(area * np.sum(weights * region_terms / np.asarray(model.term_means), axis=-1), axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    _, uniform = model.terms_and_example_losses(
        inputs, outputs, ops.convert_to_tensor(np.broadcast_to(high, lam.shape).copy()), False)
    uniform = np.asarray(uniform)
    assert not np.allclose(got, uniform, rtol=1e-3)


def test_saved_network_is_the_per_image_network_with_the_trained_weights(losses):
    net = _network()
    before = [w.copy() for w in net.get_weights()]
    model = StyleTransferModel(net, losses, seed=0, lambda_map_fraction=1.0)
    model.compile(keras.optimizers.Adam(1e-2))
    batch = _batch(32)
    model.fit({"inputs": batch}, batch_size=2, epochs=2, verbose=0)
    saved = model.saved_network()
    assert not takes_lambda_map(saved)
    assert any(not np.allclose(a, b) for a, b in zip(before, saved.get_weights()))
    space = style_transfer_loss_space()
    lam = with_strength(space, 2.0)
    photo = batch["image"][0]
    constant = np.broadcast_to(lam, (8, 8, space.size)).astype(np.float32)
    twin_out = np.asarray(model.network({"image": photo[None], "loss_weights": constant[None],
                                         "style_index": np.array([1], np.int32)}))[0]
    np.testing.assert_allclose(stylize(saved, photo, lam, style_index=1), twin_out, atol=1e-5)


def test_split_map_evidence_places_each_half_between_the_uniform_outputs(monkeypatch):
    network = _network()
    space = style_transfer_loss_space()
    photo = RNG.uniform(size=(64, 96, 3)).astype(np.float32)
    low, high = (stylize(network, photo, with_strength(space, s), 1) for s in (0.1, 10.0))
    left = np.arange(96)[None, :, None] < 48
    for right_share, seam in ((1.0, 0.0), (0.5, 0.0), (1.0, 0.3)):
        def one_pass(map_network, image, lam_map, style_index, right_share=right_share, seam=seam):
            out = np.where(left, low, low + right_share * (high - low))
            out[:, 44:52] += seam
            return out
        monkeypatch.setattr(evaluation, "stylize_with_map", one_pass)
        result = evaluation.split_map_evidence(network, None, photo, 0.1, 10.0, style_index=1)
        assert abs(result.left_position) < 1e-5
        assert result.right_position == pytest.approx(right_share, abs=1e-4)
        if seam:
            assert result.edge_band_ratio > 10
        else:
            assert result.transition_px <= 8
            assert result.right_error / result.uniform_difference == pytest.approx(1 - right_share, abs=0.05)


def _cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": REPO})


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("small") / "model.keras")
    save_model(_network(), path)
    return path


@pytest.fixture(scope="module")
def style_files(tmp_path_factory):
    from yoto_tf.images import save_image

    folder = tmp_path_factory.mktemp("styles")
    paths = []
    for i in range(2):
        paths.append(str(folder / f"style{i}.png"))
        save_image(paths[-1], RNG.uniform(size=(40, 48, 3)).astype(np.float32))
    return paths


TINY = ["--image_size=32", "--batch_size=2", "--vgg_weights=none", "--sweep_size=48", "--style_size=48",
        "--content=builtin"]


@pytest.mark.slow
def test_trainer_fine_tunes_a_model_with_lambda_maps_and_saves_it_per_image(small_model, style_files, tmp_path):
    run = _cli("trainers.style_transfer", f"--model_dir={tmp_path / 'run'}", f"--init_from={small_model}",
               "--lambda_map_fraction=0.5", "--steps=2", f"--style_images={','.join(style_files)}", *TINY)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Starting from" in run.stderr
    network = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert not takes_lambda_map(network)
    assert network.get_layer("conv1").filters == 4  # the architecture of --init_from
    settings = json.loads((tmp_path / "run" / "train_config.json").read_text())["task"]
    assert settings["lambda_map_fraction"] == 0.5 and settings["init_from"] == small_model


def test_trainer_init_from_refuses_other_architectures_and_style_counts(small_model, style_files, tmp_path):
    for extra, message in ((["--width_multiplier=0.5", f"--style_images={','.join(style_files)}"],
                            "remove --width_multiplier"),
                           ([f"--style_images={style_files[0]}"], "holds 2 painting(s)")):
        run = _cli("trainers.style_transfer", f"--model_dir={tmp_path / 'run'}", f"--init_from={small_model}",
                   "--steps=1", *TINY, *extra)
        assert run.returncode == 1, run.stderr[-2000:]
        assert message in run.stderr and "Traceback" not in run.stderr


def test_evaluate_strength_map_reports_each_style_and_refuses_a_range_outside_the_model(small_model, tmp_path):
    out = tmp_path / "m.json"
    run = _cli("trainers.evaluate_strength_map", f"--model={small_model}", "--images=builtin",
               "--max_images=1", "--max_side=64", f"--out_json={out}")
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 2 and set(result["styles"]) == {"style 0", "style 1"}
    assert "| right position (1 = high) |" in run.stdout
    for row in result["rows"]:
        assert np.isfinite([row["left_position"], row["right_position"], row["edge_band_ratio"]]).all()
    bad = _cli("trainers.evaluate_strength_map", f"--model={small_model}", "--images=builtin", "--high=1000")
    assert bad.returncode == 1 and "allowed range" in bad.stderr and "Traceback" not in bad.stderr
