"""TFLite exports whose lambda input is a map [1, h, w, k] (mobile.convert --lambda_map)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from mobile import compression, lambda_maps, metadata, parity, style_transfer, tflite_graph
from mobile.model_io import read_inputs
from yoto_tf.compression.model import CompressionNetwork, compression_loss_space
from yoto_tf.style_transfer import transformer
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space

STYLE_SIZE, CODEC_SIZE = 32, 64
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _style_network():
    return transformer.build_network(style_transfer_loss_space(), width_multiplier=0.125)


def _runner(result, key):
    return parity.signature_runner(open(result.path, "rb").read(), key)


@pytest.fixture(scope="module")
def style_export(tmp_path_factory):
    network = _style_network()
    out = tmp_path_factory.mktemp("style_map")
    (result,) = style_transfer.convert_model(
        network, str(out), name="style", image_size=STYLE_SIZE, num_parity_images=1,
        lambda_map=True, log=lambda line: None)
    return network, result


@pytest.fixture(scope="module")
def codec_export(tmp_path_factory):
    model = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=12, seed=0)
    model.build()
    rng = np.random.default_rng(0)
    for weight in model.weights:  # FiLM starts as the identity: make lambda matter
        if "film" in weight.path and weight.path.endswith("kernel"):
            weight.assign(rng.normal(0.0, 0.3, weight.shape).astype("float32"))
    out = tmp_path_factory.mktemp("codec_map")
    results = compression.convert_compression(
        model, str(out), name="codec", image_size=CODEC_SIZE, num_parity_images=1,
        lambda_map=True, log=lambda line: None)
    return model, {os.path.basename(r.path).split("_")[1]: r for r in results}


def test_style_map_export_passes_parity_with_builtin_ops(style_export):
    _, result = style_export
    assert os.path.basename(result.path) == "style_lambda_map_float32.tflite"
    assert result.parity.passed and result.parity.max_abs_error <= 1e-4
    # every lambda setting as a uniform map, plus a left/right and a random map
    assert result.parity.num_cases == parity.MIN_LAMBDA_SETTINGS + 2
    tflite = open(result.path, "rb").read()
    tflite_graph.check_builtin_only(tflite)
    assert "RESIZE_BILINEAR" in {op.name for op in tflite_graph.operators(tflite)}


def test_style_map_sidecar_describes_the_map(style_export):
    _, result = style_export
    meta = metadata.read(result.path, open(result.path, "rb").read())
    k = style_transfer_loss_space().size
    lam = {i["name"]: i for i in meta["inputs"]}["loss_weights"]
    assert lam["shape"] == [1, STYLE_SIZE // 4, STYLE_SIZE // 4, k]
    assert lam["kind"] == "lambda_map" and lam["map_stride"] == lambda_maps.STYLE_MAP_STRIDE
    assert "MAP" in meta["conditioning"]


def test_uniform_map_gives_the_per_example_output(style_export):
    network, result = style_export
    space = style_transfer_loss_space()
    image = np.random.default_rng(3).random((1, STYLE_SIZE, STYLE_SIZE, 3), dtype=np.float32)
    run = _runner(result, style_transfer.SIGNATURE_KEY)
    for lam in (space.low, space.high, space.default()):
        uniform = lambda_maps.uniform_map(lam, (STYLE_SIZE // 4, STYLE_SIZE // 4))
        mapped = run(image=image, loss_weights=uniform)[style_transfer.OUTPUT_NAME]
        expected = network({"image": image, "loss_weights": lam[None]}).numpy()
        np.testing.assert_allclose(mapped, expected, atol=1e-4)


def test_compression_map_transforms_match_keras(codec_export):
    model, results = codec_export
    assert set(results) == {"analysis", "synthesis"}
    space = model.loss_space
    analysis, synthesis = compression.transforms(model, lambda_map=True)
    per_example_analysis, per_example_synthesis = compression.transforms(model)
    assert read_inputs(analysis).lambda_map and not read_inputs(per_example_analysis).lambda_map
    grid = (CODEC_SIZE // 16, CODEC_SIZE // 16)
    image = np.random.default_rng(0).random((1, CODEC_SIZE, CODEC_SIZE, 3), dtype=np.float32)
    analyze, synthesize = _runner(results["analysis"], "analysis"), _runner(results["synthesis"], "synthesis")
    for name, result in results.items():
        assert result.parity.passed, name
        assert os.path.basename(result.path) == f"codec_{name}_lambda_map_float32.tflite"
        lam = {i["name"]: i for i in metadata.read(result.path)["inputs"]}["loss_weights"]
        assert lam["shape"] == [1, *grid, space.size] and lam["map_stride"] == 16
    split = lambda_maps.split_map(space, grid)
    latent = analyze(image=image, loss_weights=split)["latent"]
    expected = analysis({"image": image, "loss_weights": split}).numpy()
    np.testing.assert_allclose(latent, expected, atol=1e-4 * np.abs(expected).max())
    y_hat = np.round(latent * 20.0)
    out = synthesize(latent=y_hat, loss_weights=split)["reconstruction"]
    want = synthesis({"latent": y_hat, "loss_weights": split}).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5 * np.abs(want).max())
    # a uniform map is the per-example transform; the split map differs from both ends
    for lam in (space.low, space.high):
        uniform = analyze(image=image, loss_weights=lambda_maps.uniform_map(lam, grid))["latent"]
        single = per_example_analysis({"image": image, "loss_weights": lam[None]}).numpy()
        np.testing.assert_allclose(uniform, single, atol=1e-4 * np.abs(single).max())
        assert np.abs(uniform - latent).max() > 1e-3


def test_cli_lambda_map_option(tmp_path):
    path = str(tmp_path / "style.keras")
    _style_network().save(path)
    done = subprocess.run(
        [sys.executable, "-m", "mobile.convert", "--model", path, "--out", str(tmp_path / "out"),
         "--image_size", str(STYLE_SIZE), "--num_parity_images", "1", "--lambda_map"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert os.path.exists(tmp_path / "out" / "style_lambda_map_float32.tflite")
    refused = subprocess.run(
        [sys.executable, "-m", "mobile.convert", "--model", path, "--out", str(tmp_path / "x"),
         "--lambda_map", "--dynamic_size"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert refused.returncode == 1 and "fixed-size" in refused.stderr
