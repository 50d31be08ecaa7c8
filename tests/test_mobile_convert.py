"""mobile.convert: Keras -> .tflite with named lambda input, builtin ops, parity gate."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobile import metadata, parity, style_transfer, tflite_graph
from mobile.model_io import ModelFileError, load_model, read_inputs
from tests.mobile_helpers import build_tiny_network, sample_images, tiny_loss_space

SIZE = 32
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_network(seed=1)


@pytest.fixture(scope="module")
def converted(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    results = style_transfer.convert_model(
        tiny_model, str(out), name="tiny", variants=["none", "float16"], image_size=SIZE,
        log=lambda line: None,
    )
    return out, {r.variant: r for r in results}


def _run(tflite_path, **inputs):
    runner = parity.signature_runner(open(tflite_path, "rb").read(), style_transfer.SIGNATURE_KEY)
    return runner(**inputs)[style_transfer.OUTPUT_NAME]


def test_float32_export_matches_keras_at_several_lambdas(tiny_model, converted):
    out, results = converted
    report = results["none"].parity
    assert report.passed and report.max_abs_error <= 1e-4
    assert report.num_cases >= 2 * parity.MIN_LAMBDA_SETTINGS
    # Independent check at lambdas the gate did not use, inputs fed by name.
    space = tiny_loss_space()
    image = sample_images(SIZE, 1)
    for lam in space.sample_numpy(3, rng=7):
        expected = tiny_model({"image": image, "loss_weights": lam[None]}).numpy()
        actual = _run(results["none"].path, loss_weights=lam[None], image=image)
        np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_lambda_is_a_live_input_of_the_tflite(converted):
    _, results = converted
    space = tiny_loss_space()
    image = sample_images(SIZE, 1)
    low = _run(results["none"].path, image=image, loss_weights=space.low[None])
    high = _run(results["none"].path, image=image, loss_weights=space.high[None])
    assert np.abs(low - high).max() > 1e-2


def test_signature_names_and_builtin_ops_only(converted):
    _, results = converted
    for result in results.values():
        tflite = open(result.path, "rb").read()
        assert tflite_graph.signatures(tflite) == {
            "stylize": {"inputs": ["image", "loss_weights"], "outputs": ["stylized"]}
        }
        ops = tflite_graph.operators(tflite)
        assert not [op.name for op in ops if op.is_custom]
        tflite_graph.check_builtin_only(tflite)
        names = {op.name for op in ops}
        assert {"CONV_2D", "MEAN", "MIRROR_PAD", "RESIZE_NEAREST_NEIGHBOR"} <= names


def test_float16_is_within_its_tolerance_and_smaller(converted):
    _, results = converted
    assert results["float16"].parity.max_abs_error <= parity.TOLERANCES["float16"]
    assert results["float16"].parity.max_abs_error > 0  # weights really changed
    assert results["float16"].size_bytes < results["none"].size_bytes


def test_sidecar_describes_coefficients_and_signature(converted):
    _, results = converted
    path = results["none"].path
    meta = metadata.read(path, open(path, "rb").read())
    space = tiny_loss_space()
    assert [c["name"] for c in meta["coefficients"]] == list(space.names)
    for entry, coef in zip(meta["coefficients"], space.coefficients):
        assert (entry["low"], entry["high"], entry["default"]) == (
            coef.low, coef.high, coef.default)
        assert entry["distribution"] == "log_uniform" and entry["slider"]["scale"] == "log"
        value = metadata.slider_to_value(entry, entry["slider"]["default_position"])
        assert value == pytest.approx(coef.default, rel=1e-5)
    assert meta["signature_key"] == "stylize" and meta["variant"] == "none"
    assert [i["name"] for i in meta["inputs"]] == ["image", "loss_weights"]
    assert meta["inputs"][0]["shape"] == [1, SIZE, SIZE, 3]
    assert meta["inputs"][1]["shape"] == [1, space.size]
    assert meta["outputs"][0]["name"] == "stylized"
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_error"] <= 1e-4


def test_stale_sidecar_is_detected(converted):
    _, results = converted
    other = open(results["float16"].path, "rb").read()
    with pytest.raises(metadata.MetadataError, match="SHA-256"):
        metadata.read(results["none"].path, other)


def test_multi_style_dynamic_size_export(tmp_path):
    model = build_tiny_network(num_styles=3, seed=2)
    assert read_inputs(model).num_styles == 3
    results = style_transfer.convert_model(
        model, str(tmp_path), name="multi", image_size=SIZE, dynamic_size=True,
        num_parity_images=1, log=lambda line: None,
    )
    (result,) = results
    # 1 image x 2 sizes x 5 lambdas x 3 styles
    assert result.parity.num_cases == 2 * parity.MIN_LAMBDA_SETTINGS * 3
    assert result.parity.max_abs_error <= 1e-4
    tflite = open(result.path, "rb").read()
    assert tflite_graph.signatures(tflite)["stylize"]["inputs"] == [
        "image", "loss_weights", "style_index"]
    meta = metadata.read(result.path)
    assert meta["num_styles"] == 3 and meta["inputs"][0]["shape"] == [1, -1, -1, 3]
    image = sample_images(48, 1)[:, :40]  # a size the gate did not use
    lam = tiny_loss_space().default()[None]
    outs = [_run(result.path, image=image, loss_weights=lam,
                 style_index=np.array([s], np.int32)) for s in range(3)]
    assert outs[0].shape == (1, 40, 48, 3)
    expected = model({"image": image, "loss_weights": lam,
                      "style_index": np.array([2], np.int32)}).numpy()
    np.testing.assert_allclose(outs[2], expected, atol=1e-4)
    assert np.abs(outs[0] - outs[2]).max() > 1e-3
    # Dynamic sizes keep the graph off the GPU delegate; the report says why.
    assert not meta["gpu_delegate"]["covered"]
    assert any("dynamic-size" in p for p in meta["gpu_delegate"]["problems"])


def test_parity_gate_fails_on_a_wrong_model(tiny_model, converted):
    _, results = converted
    other = build_tiny_network(seed=5)
    cases = parity.parity_cases(
        [{"image": sample_images(SIZE, 1)}], tiny_loss_space(), num_lambdas=5)
    report = parity.check_parity(
        other, open(results["none"].path, "rb").read(), "stylize", "stylized", cases, "none")
    assert not report.passed
    with pytest.raises(parity.ParityError, match="Parity gate failed for variant 'none'"):
        parity.require(report)


def test_lambda_settings_cover_the_space():
    space = tiny_loss_space()
    lam = parity.lambda_settings(space, 7)
    assert lam.shape == (7, space.size)
    assert len({tuple(row) for row in lam}) == 7
    np.testing.assert_array_equal(lam[0], space.default())
    space.validate(lam)
    with pytest.raises(ValueError, match="at least 5"):
        parity.lambda_settings(space, 4)


def test_not_a_yoto_model_is_rejected(tmp_path):
    image = keras.Input((None, None, 3), name="image")
    plain = keras.Model(image, keras.layers.Conv2D(3, 3, padding="same")(image))
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    with pytest.raises(ModelFileError, match="not a loss-conditioned yoto_tf model"):
        read_inputs(load_model(path))
    garbage = tmp_path / "garbage.keras"
    garbage.write_text("not a zip")
    with pytest.raises(ModelFileError, match="garbage.keras"):
        load_model(str(garbage))
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(str(tmp_path / "missing.keras"))


def test_unnamed_lambda_input_is_explained():
    space = tiny_loss_space()
    from yoto_tf import ConditioningNetwork
    image = keras.Input((8, 8, 3), name="image")
    lam = keras.Input((space.size,), name="lam")
    emb = ConditioningNetwork(space, units=4)(lam)
    out = image * keras.layers.Dense(1)(emb)[:, None, None, :]
    with pytest.raises(ModelFileError, match="none is named 'loss_weights'"):
        read_inputs(keras.Model([image, lam], out))


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mobile.convert", *args], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT),
    )


def test_real_style_transformer_converts(tmp_path):
    from yoto_tf.style_transfer.loss_space import style_transfer_loss_space
    from yoto_tf.style_transfer.transformer import build_network

    space = style_transfer_loss_space()
    path = str(tmp_path / "style.keras")
    build_network(space, num_styles=2, width_multiplier=0.125).save(path)
    model = load_model(path)  # the transformer's own layers must be registered
    (result,) = style_transfer.convert_model(
        model, str(tmp_path / "out"), name="style", image_size=SIZE, num_parity_images=1,
        log=lambda line: None)
    assert result.parity.max_abs_error <= 1e-4
    assert result.parity.num_cases == parity.MIN_LAMBDA_SETTINGS * 2
    meta = metadata.read(result.path)
    assert [c["name"] for c in meta["coefficients"]] == list(space.names)
    assert meta["num_styles"] == 2
    assert tflite_graph.signatures(open(result.path, "rb").read())["stylize"] == {
        "inputs": ["image", "loss_weights", "style_index"], "outputs": ["stylized"]}


def test_cli_exits_nonzero_on_parity_failure_and_bad_model(tiny_model, tmp_path):
    path = str(tmp_path / "tiny.keras")
    tiny_model.save(path)
    out = tmp_path / "out"
    # float16 cannot meet a 1e-9 tolerance: the gate must stop it, float32 still passes.
    result = _cli("--model", path, "--out", str(out), "--image_size", str(SIZE),
                  "--quantize", "none,float16", "--tolerance", "float16=1e-9")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Parity gate failed for variant 'float16'" in result.stderr
    assert "parity         none" in result.stdout and "ok" in result.stdout
    assert sorted(os.listdir(out)) == ["tiny_float32.json", "tiny_float32.tflite"]
    assert json.load(open(out / "tiny_float32.json"))["parity"]["passed"]

    plain_image = keras.Input((None, None, 3), name="image")
    keras.Model(plain_image, plain_image * 2.0).save(str(tmp_path / "plain.keras"))
    result = _cli("--model", str(tmp_path / "plain.keras"), "--out", str(out))
    assert result.returncode == 1
    assert "not a loss-conditioned yoto_tf model" in result.stderr
    assert "Traceback" not in result.stderr


def test_multi_style_fixed_size_graph_is_covered_by_the_gpu_delegate(tmp_path):
    """The style-index path (one-hot of an int32 index, lowered to GATHER) has GPU kernels."""
    from mobile import gpu_delegate

    (result,) = style_transfer.convert_model(
        build_tiny_network(num_styles=3, seed=2), str(tmp_path), name="multi", image_size=SIZE,
        num_parity_images=1, log=lambda line: None,
    )
    report = gpu_delegate.check(open(result.path, "rb").read())
    assert report.covered, report.summary()
    assert "GATHER" in tflite_graph.op_names(open(result.path, "rb").read())


def test_gpu_delegate_report(converted, tmp_path):
    from mobile import gpu_delegate
    from mobile.export import export_saved_model
    from mobile.quantization import convert as to_tflite

    _, results = converted
    for result in results.values():  # fixed size: every op has a GPU kernel
        report = gpu_delegate.check(open(result.path, "rb").read())
        assert report.covered, report.summary()
        assert metadata.read(result.path)["gpu_delegate"]["covered"]
    # SYMMETRIC mirror padding and ARG_MAX are outside the delegate's op set.
    image = keras.Input((8, 8, 3), name="image")
    padded = keras.layers.Lambda(
        lambda x: keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric"))(image)
    label = keras.layers.Lambda(lambda x: tf.math.argmax(x, axis=-1))(padded)
    spec = {"image": tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")}
    export_saved_model(keras.Model(image, label), str(tmp_path / "a"), spec, "run", "out")
    report = gpu_delegate.check(to_tflite(str(tmp_path / "a"), "run"))
    assert not report.covered
    text = report.summary()
    assert "SYMMETRIC" in text and "ARG_MAX has no GPU kernel" in text


def test_graph_needing_flex_ops_is_refused_clearly(tmp_path):
    from mobile.export import export_saved_model
    from mobile.quantization import convert as to_tflite

    image = keras.Input((8, 8, 3), name="image")
    # keras.ops.argmax lowers to tf.BitwiseAnd & co on TF: no builtin kernel.
    label = keras.layers.Lambda(lambda x: keras.ops.argmax(x, axis=-1))(image)
    spec = {"image": tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image")}
    export_saved_model(keras.Model(image, label), str(tmp_path), spec, "run", "out")
    with pytest.raises(tflite_graph.NotBuiltinOpsError, match="tf.BitwiseAnd"):
        to_tflite(str(tmp_path), "run")


def test_shipped_model_converts_by_name(tmp_path):
    out = tmp_path / "out"
    result = _cli("--model", "painters4", "--out", str(out), "--image_size", "64",
                  "--num_parity_images", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["painters4_float32.json", "painters4_float32.tflite"]
    meta = json.load(open(out / "painters4_float32.json"))
    assert meta["num_styles"] == 4 and meta["parity"]["passed"]
    unknown = _cli("--model", "painters99", "--out", str(out))
    assert unknown.returncode == 1 and "painters4" in unknown.stderr
    assert "Traceback" not in unknown.stderr
