"""Quality maps in the compression codec: a lambda per region, stored in the file."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import skimage.data
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from trainers import compression as cli
from yoto_tf.compression import (
    CompressionNetwork,
    CorruptFileError,
    compress_image,
    compression_loss_space,
    container,
    decompress_image,
    load_compression_model,
    reconstruct_image,
)
from yoto_tf.compression import quality_map, roi_evaluation
from yoto_tf.compression.quality_map import QualityMapError, QuantizedMap

FLAGS = flags.FLAGS
cli.define_flags()
LOW, HIGH = 1e-4, 1e-2


def _photo():
    return skimage.data.coffee()[:150, 100:330]  # 150 x 230: not a multiple of 64


def _left_right(shape, left, right):
    height, width = shape
    return np.where(np.arange(width)[None, :] < width // 2, left, right) * np.ones((height, 1))


@pytest.fixture(scope="module")
def untrained():
    """A small untrained model whose FiLM kernels are random, so lambda changes every layer."""
    keras.utils.set_random_seed(0)
    model = CompressionNetwork(compression_loss_space((LOW, HIGH)), 16, 24, 16, seed=0)
    model.build()
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if "film" in weight.path and weight.path.endswith("kernel"):
            weight.assign(rng.normal(0.0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def trained(trained_compression):
    """The briefly trained small model of conftest.py (lambda range [1e-4, 1e-2])."""
    return trained_compression


# ------------------------------------------------------------------------ the stored map
def test_stored_map_is_compact_and_exact_for_two_values():
    lams = _left_right((512, 768), LOW, HIGH)
    qmap = quality_map.quantize_map(lams, 512, 768, (LOW, HIGH))
    assert qmap.levels.shape == (32, 48)
    assert set(np.unique(qmap.levels)) == {0, 15}
    payload = qmap.to_bytes()
    assert len(payload) < 40  # a region-of-interest map costs a few dozen bytes
    parsed = QuantizedMap.from_bytes(payload, np.float32(qmap.low), 512, 768)
    np.testing.assert_array_equal(parsed.levels, qmap.levels)
    grid = parsed.lambda_grid()
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid[:, :24], LOW, rtol=1e-6)
    np.testing.assert_allclose(grid[:, 24:], HIGH, rtol=1e-6)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_noisy_maps_round_trip_at_every_depth(bits):
    rng = np.random.default_rng(bits)
    lams = np.exp(rng.uniform(np.log(LOW), np.log(HIGH), (70, 90)))
    qmap = quality_map.quantize_map(lams, 70, 90, (LOW, HIGH), cell=32, bits=bits)
    parsed = QuantizedMap.from_bytes(qmap.to_bytes(), np.float32(qmap.low), 70, 90)
    np.testing.assert_array_equal(parsed.levels, qmap.levels)
    assert parsed.levels.shape == (3, 3) and parsed.levels.max() < 1 << bits


def test_a_map_of_another_size_is_resized_to_the_image():
    small = _left_right((4, 6), LOW, HIGH)
    qmap = quality_map.quantize_map(small, 64, 96, (LOW, HIGH))
    assert qmap.levels.shape == (4, 6)
    assert qmap.levels[:, 0].max() == 0 and qmap.levels[:, -1].min() == 15


# ------------------------------------------------------------------------ coding with a map
def test_round_trip_with_a_map_is_bit_exact_and_matches_reconstruction(untrained):
    image = _photo()
    lams = _left_right(image.shape[:2], LOW, HIGH)
    data = compress_image(untrained, image, lambda_map=lams)
    assert container.unpack(data).version == container.QUALITY_MAP_VERSION
    decoded = decompress_image(untrained, data)
    np.testing.assert_array_equal(decoded, reconstruct_image(untrained, image, lambda_map=lams))
    np.testing.assert_array_equal(decoded, decompress_image(untrained, data))
    assert compress_image(untrained, image, lambda_map=lams) == data  # deterministic


def test_files_without_a_map_keep_format_version_1(untrained):
    data = compress_image(untrained, _photo(), 1e-3)
    assert container.unpack(data).version == container.FORMAT_VERSION == 1
    assert data[4] == 1


def test_uniform_map_matches_the_single_lambda(untrained):
    image = _photo()
    for lam in (LOW, 1e-3, HIGH):
        single = compress_image(untrained, image, lam)
        mapped = compress_image(untrained, image, lambda_map=np.full(image.shape[:2], lam))
        overhead = 4 + len(container.unpack(mapped).payloads[2])
        assert overhead < 20
        assert abs(len(mapped) - overhead - len(single)) <= 0.01 * len(single)
        difference = np.abs(decompress_image(untrained, mapped).astype(int) - decompress_image(untrained, single))
        assert difference.mean() < 0.05 and difference.max() <= 2


def test_map_changes_the_transforms_per_region(untrained):
    image = _photo()
    half = image.shape[1] // 2
    mapped = reconstruct_image(untrained, image, lambda_map=_left_right(image.shape[:2], LOW, HIGH)).astype(int)
    low = reconstruct_image(untrained, image, LOW).astype(int)
    high = reconstruct_image(untrained, image, HIGH).astype(int)
    margin = 48  # the transforms' receptive field blurs the seam
    assert np.abs(mapped - low)[:, : half - margin].mean() < 0.5 * np.abs(high - low)[:, : half - margin].mean()
    assert np.abs(mapped - high)[:, half + margin :].mean() < 0.5 * np.abs(high - low)[:, half + margin :].mean()


def test_bad_maps_raise_errors_naming_the_range(untrained):
    image = _photo()
    with pytest.raises(ValueError, match=r"trained range \[0.0001, 0.01\]"):
        compress_image(untrained, image, lambda_map=np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="non-empty"):
        compress_image(untrained, image, lambda_map=np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        compress_image(untrained, image, lambda_map=np.full((4, 4, 2), 1e-3))
    with pytest.raises(ValueError, match="non-finite"):
        compress_image(untrained, image, lambda_map=np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="exactly one"):
        compress_image(untrained, image, 1e-3, lambda_map=np.full((4, 4), 1e-3))
    with pytest.raises(QualityMapError, match="cell"):
        compress_image(untrained, image, lambda_map=np.full((4, 4), 1e-3), map_cell=8)


def test_damaged_map_payload_behind_a_valid_checksum_is_caught(untrained):
    image = _photo()
    data = compress_image(untrained, image, lambda_map=_left_right(image.shape[:2], LOW, HIGH))
    parsed = container.unpack(data)
    for bad in (b"\x09" + parsed.payloads[2][1:], parsed.payloads[2][:5], parsed.payloads[2][:-3]):
        forged = container.pack(container.CompressedImage(
            parsed.fingerprint, parsed.lam, parsed.height, parsed.width,
            parsed.payloads[:2] + (bad,), parsed.version))
        with pytest.raises(CorruptFileError, match="quality map"):
            decompress_image(untrained, forged)
    two_payloads = container.pack(container.CompressedImage(
        parsed.fingerprint, parsed.lam, parsed.height, parsed.width, parsed.payloads[:2], parsed.version))
    with pytest.raises(CorruptFileError, match="expected 3 payloads"):
        decompress_image(untrained, two_payloads)


# ------------------------------------------------------------------------ a trained model
def test_map_spends_quality_where_it_is_white(trained):
    codec, _ = trained
    image = skimage.data.chelsea()[:192, :256]
    half = image.shape[1] // 2
    mapped = compress_image(codec, image, lambda_map=_left_right(image.shape[:2], LOW, HIGH))
    sizes = {lam: len(compress_image(codec, image, lam)) for lam in (LOW, HIGH)}
    assert sizes[LOW] < len(mapped) < sizes[HIGH]

    def column_error(data):
        return ((decompress_image(codec, data).astype(float) - image) ** 2).mean(axis=(0, 2))

    error = column_error(mapped)
    uniform = {lam: column_error(compress_image(codec, image, lam)) for lam in (LOW, HIGH)}
    margin = 32  # the transforms' receptive field blurs the seam
    left, right = slice(0, half - margin), slice(half + margin, None)
    # The two lambdas differ clearly on this model ...
    assert uniform[HIGH].mean() < 0.8 * uniform[LOW].mean()
    # ... and each half is coded like the uniform file of its own lambda: within 10 % of its
    # error, and nearer to it than to the other lambda's.
    for side, own, other in ((left, LOW, HIGH), (right, HIGH, LOW)):
        mapped_error, own_error, other_error = (e[side].mean() for e in (error, uniform[own], uniform[other]))
        assert mapped_error == pytest.approx(own_error, rel=0.1)
        assert abs(mapped_error - own_error) < 0.5 * abs(other_error - own_error)


def test_roi_evidence_compares_with_the_uniform_file_of_the_same_size(trained):
    codec, _ = trained
    image = skimage.data.chelsea()[:192, :256]
    mask = roi_evaluation.centre_roi(*image.shape[:2])
    assert mask.mean() == pytest.approx(0.25)
    result = roi_evaluation.roi_evidence(codec, image, mask, name="chelsea")
    assert result.size_met and abs(result.uniform_bytes / result.map_bytes - 1) <= 0.02
    assert result.gain_inside_db > 0.2  # the region gets better than uniform at the same size
    assert result.cost_outside_db > 0
    band = roi_evaluation.edge_band(mask)
    assert np.isfinite(result.map_psnr_edge) and np.isfinite(result.uniform_psnr_edge)
    assert 0 < band.mean() < 0.5
    summary = roi_evaluation.summary([result])
    assert summary["images_gaining_inside"] == 1 and set(result.row()) == set(roi_evaluation.FIELDS)


def test_edge_band_is_the_pixels_within_the_radius_of_the_regions_boundary():
    mask = np.zeros((40, 50), bool)
    mask[10:30, 20:50] = True  # touches the right border: no boundary there
    band = roi_evaluation.edge_band(mask, radius=3)
    rows, cols = np.nonzero(band)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 32, 17, 49)
    assert band[20, 16:24].tolist() == [False, True, True, True, True, True, True, False]
    assert not band[20, 40] and not band[0, 0]  # deep inside, far outside
    assert band[8, 49] and not band[5, 49]  # the band follows the top edge to the border


@pytest.mark.slow
def test_map_files_decode_to_the_same_symbols_in_another_process(trained, tmp_path):
    """Eigen instead of oneDNN and one thread on the decoding side: the entropy parameters
    it derives from the stored map still give exactly the encoder's symbols."""
    codec, path = trained
    image = skimage.data.chelsea()[:150, :230]
    lams = np.where(roi_evaluation.centre_roi(*image.shape[:2]), HIGH, LOW)
    (tmp_path / "map.yotc").write_bytes(compress_image(codec, image, lambda_map=lams))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = f"""
        import numpy as np, tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        from yoto_tf.compression import load_compression_model
        codec = load_compression_model({path!r})
        np.save({str(tmp_path / "y.npy")!r}, codec.decode(open({str(tmp_path / "map.yotc")!r}, "rb").read())[0])
        """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=repo, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": repo,
                                                       "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    _, lam_map = codec.quality_map(lams, *image.shape[:2])
    expected, _ = codec.quantize_latents(*codec.analyze(image, lam_map), lam_map)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


# ------------------------------------------------------------------------ the CLI
def _run(*args, **flag_values):
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**flag_values):
        cli.main(["compression", *args])


def test_cli_quality_map_round_trip_and_errors(untrained, tmp_path, capsys):
    path = str(tmp_path / "model.keras")
    untrained.save(path)
    codec = load_compression_model(path)
    image = _photo()
    Image.fromarray(image).save(tmp_path / "photo.png")
    small_map = np.zeros((15, 23), np.uint8)
    small_map[:, 12:] = 255
    Image.fromarray(small_map).save(tmp_path / "map.png")
    _run("compress", model=path, input=str(tmp_path / "photo.png"), out=str(tmp_path / "a.yotc"),
         quality_map=str(tmp_path / "map.png"))
    out = capsys.readouterr().out
    assert "resized to the input's 230x150" in out and "quality map" in out
    _run("decompress", model=path, input=str(tmp_path / "a.yotc"), out=str(tmp_path / "a.png"))
    gray = quality_map.resize_map(small_map.astype(np.float64), *image.shape[:2])
    expected = reconstruct_image(codec, image, lambda_map=quality_map.lambdas_from_gray(gray / 255.0, LOW, HIGH))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), expected)

    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    failures = [
        (dict(quality_map=str(tmp_path / "notes.txt")), "notes.txt"),
        (dict(quality_map=str(tmp_path / "empty.png")), "empty.png"),
        (dict(quality_map=str(tmp_path / "map.png"), quality_map_range="0.001,0.5"),
         "trained lambda range [0.0001, 0.01]"),
        (dict(quality_map=str(tmp_path / "map.png"), quality_map_range="1e-3"), "LO,HI"),
        (dict(quality_map=str(tmp_path / "map.png"), **{"lambda": 1e-3}), "at most one of"),
        (dict(quality_map_range="1e-3,1e-2", **{"lambda": 1e-3}), "needs --quality_map"),
    ]
    for flag_values, message in failures:
        with pytest.raises(SystemExit) as exit_info:
            _run("compress", model=path, input=str(tmp_path / "photo.png"), out=str(tmp_path / "x"),
                 **flag_values)
        assert exit_info.value.code == 1
        assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
