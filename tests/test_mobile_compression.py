"""mobile.compression: analysis / synthesis transforms exported with lambda as an input."""

import numpy as np
import pytest

from mobile import compression, metadata, parity, tflite_graph
from yoto_tf.compression.model import CompressionNetwork, compression_loss_space

SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = CompressionNetwork(compression_loss_space(), num_filters=8, num_latent=12, seed=0)
    model.build()
    rng = np.random.default_rng(0)
    for weight in model.weights:  # FiLM starts as the identity: make lambda matter
        if "film" in weight.path and weight.path.endswith("kernel"):
            weight.assign(rng.normal(0.0, 0.3, weight.shape).astype("float32"))
    out = tmp_path_factory.mktemp("compression")
    results = compression.convert_compression(
        model, str(out), name="codec", image_size=SIZE, num_parity_images=1,
        log=lambda line: None,
    )
    return model, {r.path.split("codec_")[1].split("_")[0]: r for r in results}


def test_both_transforms_export_with_named_signatures(exported):
    _, results = exported
    assert set(results) == {"analysis", "synthesis"}
    analysis = open(results["analysis"].path, "rb").read()
    synthesis = open(results["synthesis"].path, "rb").read()
    assert tflite_graph.signatures(analysis) == {
        "analysis": {"inputs": ["image", "loss_weights"], "outputs": ["latent"]}}
    assert tflite_graph.signatures(synthesis) == {
        "synthesis": {"inputs": ["latent", "loss_weights"], "outputs": ["reconstruction"]}}
    for tflite in (analysis, synthesis):
        tflite_graph.check_builtin_only(tflite)
    assert "TRANSPOSE_CONV" in tflite_graph.op_names(synthesis)
    for result in results.values():
        assert result.parity.passed and result.parity.num_cases >= parity.MIN_LAMBDA_SETTINGS


def test_transforms_match_keras_and_depend_on_lambda(exported):
    model, results = exported
    analysis_model, synthesis_model = compression.transforms(model)
    space = model.loss_space
    image = np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32)
    analyze = parity.signature_runner(open(results["analysis"].path, "rb").read(), "analysis")
    synthesize = parity.signature_runner(
        open(results["synthesis"].path, "rb").read(), "synthesis")
    latents = []
    for lam in (space.low, space.high):
        feed = {"image": image, "loss_weights": lam[None]}
        latent = analyze(**feed)["latent"]
        expected = analysis_model(feed).numpy()
        assert latent.shape == (1, SIZE // 16, SIZE // 16, 12)
        np.testing.assert_allclose(latent, expected, atol=1e-4 * np.abs(expected).max())
        y_hat = np.round(latent * 20.0)  # integers of a trained model's magnitude
        out = synthesize(latent=y_hat, loss_weights=lam[None])["reconstruction"]
        want = synthesis_model({"latent": y_hat, "loss_weights": lam[None]}).numpy()
        assert out.shape == (1, SIZE, SIZE, 3)
        np.testing.assert_allclose(out, want, atol=1e-5 * np.abs(want).max())
        latents.append(latent)
    assert np.abs(latents[0] - latents[1]).max() > 1e-4


def test_sidecar_has_the_rate_distortion_knob(exported):
    _, results = exported
    meta = metadata.read(results["synthesis"].path)
    coefficients = {c["name"]: c for c in meta["coefficients"]}
    assert coefficients["distortion"]["slider"]["scale"] == "log"
    assert coefficients["rate"]["slider"]["scale"] == "none"  # fixed: no slider
    assert meta["inputs"][0] == {
        "name": "latent", "dtype": "float32", "shape": [1, SIZE // 16, SIZE // 16, 12]}
    assert meta["outputs"][0]["name"] == "reconstruction"
    lam = metadata.loss_weights_from_sliders(meta, {"distortion": 1.0})
    np.testing.assert_allclose(lam, [[coefficients["distortion"]["high"], 1.0]], rtol=1e-6)
