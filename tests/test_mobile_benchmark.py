"""mobile.benchmark: latency figures of a .tflite (no timing assertions, only plumbing)."""

import os

import pytest

from mobile import benchmark, style_transfer
from tests.mobile_helpers import build_tiny_network


@pytest.fixture(scope="module")
def dynamic_tflite(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    (result,) = style_transfer.convert_model(
        build_tiny_network(seed=4), str(out), name="tiny", image_size=32, dynamic_size=True,
        num_parity_images=1, log=lambda line: None,
    )
    return result.path


def test_benchmark_reports_latency_and_size(dynamic_tflite):
    result = benchmark.benchmark(dynamic_tflite, threads=1, runs=3, warmup=1, image_size=48)
    assert result.size_bytes == os.path.getsize(dynamic_tflite)
    assert result.input_shapes == {"image": (1, 48, 48, 3), "loss_weights": (1, 3)}
    assert 0 < result.min_ms <= result.median_ms
    assert "median" in result.line() and "KiB" in result.line()


def test_benchmark_rejects_missing_and_invalid_files(tmp_path):
    with pytest.raises(ValueError, match="No such .tflite file"):
        benchmark.benchmark(str(tmp_path / "missing.tflite"))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match="not a valid .tflite file"):
        benchmark.benchmark(str(bad))
