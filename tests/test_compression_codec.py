"""The compression codec: bit-exact round trips (also across processes and thread counts),
real rate vs the model's estimate, rate vs lambda, rate control, bad input, the CLI."""

import errno
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
    CompressionCodec,
    CompressionNetwork,
    CorruptFileError,
    ModelMismatchError,
    compress_image,
    compress_to_target,
    compression_loss_space,
    container,
    decompress_image,
    estimate_bpp,
    load_compression_model,
    reconstruct_image,
)

FLAGS = flags.FLAGS
cli.define_flags()  # train, compress and decompress: each command's own flags
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_LAMBDAS = (1e-4, 1e-2)  # a wide trade-off, so a briefly trained model already uses lambda
HEADER_BITS = 8 * container.header_size(2, 2)


def _small_model(space=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = CompressionNetwork(space or compression_loss_space(TEST_LAMBDAS), 16, 24, 16, seed=seed)
    model.build()
    return model


def _photos():
    """Real photos at sizes that are not multiples of 64."""
    return {
        "coffee": skimage.data.coffee()[:150, 100:330],
        "chelsea": skimage.data.chelsea(),
    }


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    model = _small_model()
    path = str(tmp_path_factory.mktemp("untrained") / "model.keras")
    model.save(path)
    return load_compression_model(path), path


@pytest.fixture(scope="module")
def trained(trained_compression):
    """The briefly trained small model of conftest.py (lambda range [1e-4, 1e-2])."""
    return trained_compression


# ------------------------------------------------------------------------ round trips
def test_round_trip_reproduces_quantized_reconstruction(untrained):
    codec, _ = untrained
    for name, image in _photos().items():
        data = compress_image(codec, image, 1e-3)
        decoded = decompress_image(codec, data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8, name
        np.testing.assert_array_equal(decoded, reconstruct_image(codec, image, 1e-3), err_msg=name)


@pytest.mark.parametrize("shape", [(1, 1), (1, 130), (67, 2), (64, 64)])
def test_any_image_size_round_trips(untrained, shape):
    codec, _ = untrained
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    decoded = decompress_image(codec, compress_image(codec, image, 0.003))
    assert decoded.shape == image.shape
    np.testing.assert_array_equal(decoded, reconstruct_image(codec, image, 0.003))


def test_codec_accepts_the_keras_model_and_the_loaded_file_agrees(untrained):
    codec, path = untrained
    network = keras.models.load_model(path)
    image = _photos()["coffee"]
    assert CompressionCodec(network).fingerprint == codec.fingerprint
    np.testing.assert_array_equal(
        decompress_image(codec, compress_image(network, image, 0.002)),
        reconstruct_image(codec, image, 0.002),
    )
    assert codec.loss_space == compression_loss_space(TEST_LAMBDAS)
    assert codec.lambda_range == pytest.approx(TEST_LAMBDAS)


def _decode_in_subprocess(script, tmp_path, env_extra):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_decoding_in_other_processes_with_other_thread_counts(trained, tmp_path):
    codec, path = trained
    images = _photos()
    for name, image in images.items():
        (tmp_path / f"{name}.yotc").write_bytes(compress_image(codec, image, 3e-3))
    # 1) The CLI in a fresh process with one intra-op and one inter-op thread (this one uses
    #    the default, two): the decoded pixels are bit-identical.
    _decode_in_subprocess(f"""
        import sys, tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from trainers import compression
        for name in {sorted(images)!r}:
            sys.argv = ["compression", "decompress", "--model", {path!r},
                        "--input", {str(tmp_path)!r} + f"/{{name}}.yotc",
                        "--out", {str(tmp_path)!r} + f"/{{name}}.png"]
            try:
                compression.cli_main()
            except SystemExit as exit:
                assert not exit.code, exit.code
        """, tmp_path, {})
    for name, image in images.items():
        decoded = np.asarray(Image.open(tmp_path / f"{name}.png"))
        np.testing.assert_array_equal(decoded, reconstruct_image(codec, image, 3e-3), err_msg=name)
    # 2) Another convolution library (Eigen instead of oneDNN, whose float32 results depend
    #    on the thread count) and one thread: the entropy decoding, which depends on the
    #    scale indices recomputed by the decoder, still gives exactly the encoder's symbols.
    _decode_in_subprocess(f"""
        import numpy as np, tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        from yoto_tf.compression import load_compression_model
        codec = load_compression_model({path!r})
        for name in {sorted(images)!r}:
            data = open({str(tmp_path)!r} + f"/{{name}}.yotc", "rb").read()
            y_symbols = codec.decode(data)[0]
            np.save({str(tmp_path)!r} + f"/{{name}}_y.npy", y_symbols)
        """, tmp_path, {"TF_ENABLE_ONEDNN_OPTS": "0"})
    for name, image in images.items():
        lam_vec = codec.lambda_vector(3e-3)
        expected, _ = codec.quantize_latents(*codec.analyze(image, lam_vec), lam_vec)
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_y.npy"), expected, err_msg=name)


# ------------------------------------------------------------------------ rates
@pytest.mark.slow
def test_real_bits_within_one_percent_of_estimated_rate(trained):
    codec, _ = trained
    image = skimage.data.astronaut()[:384, :448]
    pixels = image.shape[0] * image.shape[1]
    for lam in np.geomspace(*TEST_LAMBDAS, 3):
        estimated_bits = estimate_bpp(codec, image, lam) * pixels
        real_bits = 8 * len(compress_image(codec, image, lam))
        assert abs(real_bits - HEADER_BITS - estimated_bits) <= 0.01 * estimated_bits, (
            lam, real_bits, estimated_bits)


@pytest.mark.slow
def test_rate_falls_monotonically_as_lambda_falls(trained):
    codec, _ = trained
    for image in (skimage.data.astronaut()[:256, :256], _photos()["chelsea"]):
        lams = np.geomspace(*TEST_LAMBDAS, 5)
        sizes = [len(compress_image(codec, image, lam)) for lam in lams]
        assert all(np.diff(sizes) > 0), sizes
        # The quality moves the other way.
        errors = [np.mean((reconstruct_image(codec, image, lam) - image.astype(float)) ** 2) for lam in lams[[0, -1]]]
        assert errors[1] < errors[0]


@pytest.mark.slow
def test_rate_control_meets_a_reachable_target_and_stores_lambda(trained):
    codec, _ = trained
    image = skimage.data.astronaut()[:256, :320]
    smallest = len(compress_image(codec, image, TEST_LAMBDAS[0]))
    largest = len(compress_image(codec, image, TEST_LAMBDAS[1]))
    target = (smallest * largest) ** 0.5
    result = compress_to_target(codec, image, target)
    assert result.met and abs(len(result.data) / target - 1) <= 0.02
    assert TEST_LAMBDAS[0] < result.lam < TEST_LAMBDAS[1]
    assert container.unpack(result.data).lam[0] == pytest.approx(result.lam, rel=1e-6)
    np.testing.assert_array_equal(decompress_image(codec, result.data), reconstruct_image(codec, image, result.lam))
    too_small = compress_to_target(codec, image, smallest / 3)
    assert not too_small.met and "smallest file" in too_small.reason
    assert len(too_small.data) == smallest and too_small.tries == 1


# ------------------------------------------------------------------------ bad input
def test_damaged_truncated_and_foreign_files_raise_clear_errors(untrained):
    codec, _ = untrained
    data = compress_image(codec, _photos()["coffee"], 1e-3)
    for length in (0, 3, 10, 40, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptFileError, match="truncated|too short"):
            decompress_image(codec, data[:length])
    rng = np.random.default_rng(0)
    for bit in rng.choice(8 * len(data), 40, replace=False):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((CorruptFileError, ModelMismatchError)):
            decompress_image(codec, bytes(damaged))
    with pytest.raises(CorruptFileError, match="not a yoto_tf compressed image"):
        decompress_image(codec, rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    other = CompressionCodec(_small_model(seed=1))
    with pytest.raises(ModelMismatchError, match="different model"):
        decompress_image(other, data)


def test_payload_damage_behind_a_valid_checksum_is_caught(untrained):
    """A file rewritten with a recomputed CRC (e.g. by a buggy tool) still fails cleanly."""
    codec, _ = untrained
    parsed = container.unpack(compress_image(codec, _photos()["coffee"], 1e-3))
    stream, escapes = parsed.payloads
    for payloads in ((stream[:-4], escapes), (stream, escapes + b"\x05"), (stream[:-1], escapes),
                     (stream + bytes(4), escapes), (stream,)):
        forged = container.pack(container.CompressedImage(
            parsed.fingerprint, parsed.lam, parsed.height, parsed.width, payloads))
        with pytest.raises(CorruptFileError):
            decompress_image(codec, forged)


def test_lambda_outside_the_trained_range_names_the_range(untrained):
    codec, _ = untrained
    with pytest.raises(ValueError, match=r"outside this model's trained range \[0.0001, 0.01\]"):
        compress_image(codec, _photos()["coffee"], 0.05)
    with pytest.raises(ValueError, match="must be a number"):
        estimate_bpp(codec, _photos()["coffee"], "high")


def test_bad_images_are_rejected_with_the_reason(untrained):
    codec, _ = untrained
    with pytest.raises(ValueError, match=r"shape \[H, W, 3\]"):
        compress_image(codec, np.zeros((8, 8), np.uint8), 1e-3)
    with pytest.raises(ValueError, match="uint8"):
        compress_image(codec, np.zeros((8, 8, 3), np.float32), 1e-3)
    with pytest.raises(ValueError, match="larger than this codec handles"):
        compress_image(codec, np.zeros((1, 1 << 25, 3), np.uint8), 1e-3)


def test_fixed_lambda_model_codes_only_its_lambda():
    codec = CompressionCodec(_small_model(compression_loss_space(fixed_lambda=0.01)))
    image = _photos()["coffee"]
    np.testing.assert_array_equal(decompress_image(codec, compress_image(codec, image, 0.01)),
                                  reconstruct_image(codec, image, 0.01))
    with pytest.raises(ValueError, match=r"\[0.01, 0.01\]"):
        compress_image(codec, image, 0.02)


def test_load_compression_model_names_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_compression_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.keras"):
        load_compression_model(tmp_path / "junk.keras")


# ------------------------------------------------------------------------ CLI
def _run(*args, **flag_values):
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()  # the defaults, as if run with no arguments
    with flagsaver.flagsaver(**flag_values):
        cli.main(["compression", *args])


@pytest.mark.slow
def test_cli_compress_decompress_and_errors(trained, tmp_path, capsys, monkeypatch):
    codec, path = trained
    image = skimage.data.chelsea()
    grey = (tmp_path / "grey.png")
    Image.fromarray(image[..., 1]).save(grey)
    _run("compress", model=path, input=str(grey), out=str(tmp_path / "a.yotc"), **{"lambda": 2e-3})
    out = capsys.readouterr().out
    assert "grayscale" in out and "bpp" in out
    size = os.path.getsize(tmp_path / "a.yotc")
    assert f"{size} bytes" in out
    _run("decompress", model=path, input=str(tmp_path / "a.yotc"), out=str(tmp_path / "a.png"))
    rgb_grey = np.repeat(image[..., 1:2], 3, axis=-1)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                                  reconstruct_image(codec, rgb_grey, 2e-3))

    Image.fromarray(image).save(tmp_path / "cat.png")
    # No quality option at all: the model's default lambda, said on the console.
    low, high = codec.lambda_range
    assert low < codec.default_lambda < high
    _run("compress", model=path, input=str(tmp_path / "cat.png"), out=str(tmp_path / "d.yotc"))
    assert f"default lambda {codec.default_lambda:g}" in capsys.readouterr().out
    _run("decompress", model=path, input=str(tmp_path / "d.yotc"), out=str(tmp_path / "d.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")),
                                  reconstruct_image(codec, image, codec.default_lambda))

    pixels = image.shape[0] * image.shape[1]
    reachable = [8 * len(compress_image(codec, image, lam)) / pixels for lam in TEST_LAMBDAS]
    target_bpp = float(np.sqrt(np.prod(reachable)))
    _run("compress", model=path, input=str(tmp_path / "cat.png"), out=str(tmp_path / "t.yotc"),
         target_bpp=target_bpp)
    assert ": met;" in capsys.readouterr().out
    real_bpp = 8 * os.path.getsize(tmp_path / "t.yotc") / pixels
    assert real_bpp == pytest.approx(target_bpp, rel=0.02)

    damaged = bytearray((tmp_path / "a.yotc").read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    (tmp_path / "bad.yotc").write_bytes(bytes(damaged))
    failures = [
        (("decompress",), dict(input=str(tmp_path / "bad.yotc"), out=str(tmp_path / "x.png")), "checksum"),
        (("compress",), dict(input=str(tmp_path / "cat.png"), out=str(tmp_path / "x"), **{"lambda": 0.5}),
         "trained range [0.0001, 0.01]"),
        (("compress",), dict(input=str(tmp_path / "nope.png"), out=str(tmp_path / "x"), **{"lambda": 1e-3}),
         "nope.png"),
        (("compress",), dict(input=str(tmp_path / "cat.png"), out=str(tmp_path / "x"), target_bpp=0.5,
                             **{"lambda": 1e-3}), "at most one of --lambda"),
    ]
    for args, flag_values, message in failures:
        with pytest.raises(SystemExit) as exit_info:
            _run(*args, model=path, **flag_values)
        assert exit_info.value.code == 1
        assert message in capsys.readouterr().err

    # A file that cannot be written (here the final rename fails) is an error naming it, and
    # the file already there stays whole: compress writes a temporary file, then renames it.
    before = (tmp_path / "a.yotc").read_bytes()

    def failing_rename(*_):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_rename)
    with pytest.raises(SystemExit) as exit_info:
        _run("compress", model=path, input=str(tmp_path / "cat.png"), out=str(tmp_path / "a.yotc"),
             **{"lambda": 1e-3})
    assert exit_info.value.code == 1
    assert f"cannot write {tmp_path / 'a.yotc'}: Input/output error" in capsys.readouterr().err
    assert (tmp_path / "a.yotc").read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*"))
