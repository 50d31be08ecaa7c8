"""int8 export of a briefly trained conditioned network: within its documented tolerance."""

import numpy as np
import pytest

from mobile import parity, quantization, style_transfer, tflite_graph
from tests.mobile_helpers import sample_images, tiny_loss_space, train_tiny_network

SIZE = 64


@pytest.fixture(scope="module")
def trained():
    return train_tiny_network(steps=150, seed=0)


@pytest.mark.slow
def test_selective_int8_meets_tolerance_where_naive_int8_does_not(trained, tmp_path):
    results = {r.variant: r for r in style_transfer.convert_model(
        trained, str(tmp_path), name="tiny", variants=["int8", "full_int8"],
        image_size=SIZE, require_parity=False, log=lambda line: None,
    )}
    int8, naive = results["int8"], results["full_int8"]
    assert int8.parity.passed
    assert int8.parity.max_abs_error <= parity.TOLERANCES["int8"] == 0.05
    assert naive.parity.max_abs_error > 2 * int8.parity.max_abs_error
    ops = tflite_graph.operators(open(int8.path, "rb").read())
    conv_types = {op.inputs[0].dtype for op in ops if op.name == "CONV_2D"}
    assert "INT8" in conv_types  # the convolutions really run in int8
    assert {op.inputs[0].dtype for op in ops if op.name == "MEAN"} == {"FLOAT32"}
    assert {op.inputs[0].dtype for op in ops if op.name == "LOG"} == {"FLOAT32"}
    # lambda still steers the int8 model
    space = tiny_loss_space()
    runner = parity.signature_runner(open(int8.path, "rb").read(), "stylize")
    image = sample_images(SIZE, 1)
    low = runner(image=image, loss_weights=space.low[None])["stylized"]
    high = runner(image=image, loss_weights=space.high[None])["stylized"]
    assert np.abs(low - high).max() > 0.05


@pytest.mark.slow
def test_sensitive_convolutions_go_back_to_float(trained, tmp_path):
    from mobile.export import export_saved_model, input_specs
    from mobile.model_io import read_inputs
    from mobile.samples import calibration_data

    inputs = read_inputs(trained)
    export_saved_model(trained, str(tmp_path), input_specs(inputs, SIZE), "stylize", "stylized")
    space = inputs.loss_space
    images = list(sample_images(SIZE, 3)[:, None])
    cases = [{"image": images[i % 3], "loss_weights": lam[None]}
             for i, lam in enumerate([space.low, space.high, space.default()])]
    error = parity.error_function(trained, "stylize", "stylized", cases)
    calibration = calibration_data(images, space, 16)
    all_int8 = error(quantization.selective_int8(str(tmp_path), "stylize", calibration))
    lines = []
    mixed = quantization.selective_int8(
        str(tmp_path), "stylize", calibration, error, target=all_int8 / 3, log=lines.append)
    assert error(mixed) < all_int8
    assert any(line.startswith("  int8: kept") for line in lines), lines
    convs = [op for op in tflite_graph.operators(mixed) if op.name == "CONV_2D"]
    assert {op.inputs[0].dtype for op in convs} == {"INT8", "FLOAT32"}
