"""Entropy models, integer tables, the ANS glue and the container (no training)."""

import math
import struct

import keras
import numpy as np
import pytest
from keras import ops

from yoto_tf.compression import ans_coder, container, entropy_models, tables


# ------------------------------------------------------------------------ tables + coder
def test_make_table_is_integer_and_complete():
    pmf = entropy_models.gaussian_pmf_numpy(np.arange(-5, 6), 1.3)
    table = ans_coder.make_table(pmf, -5)
    assert table.freqs.dtype == np.int64
    assert table.freqs.sum() == 2**ans_coder.PRECISION
    assert table.freqs.min() >= 1 and table.escape == 11
    # The integer table follows the probabilities closely (24-bit precision).
    np.testing.assert_allclose(table.freqs[:-1] / 2**ans_coder.PRECISION, pmf, atol=1e-6)


def test_latent_tables_cover_the_scale_table():
    latent = tables.latent_tables()
    assert len(latent) == entropy_models.NUM_SCALES
    sizes = [t.escape for t in latent]
    assert sizes == sorted(sizes) and sizes[0] >= 3  # wider tables for larger scales
    widest = latent[-1]
    tail = entropy_models.gaussian_pmf_numpy(np.array([widest.offset - 1]), entropy_models.SCALE_MAX)
    assert tail[0] < tables.TAIL_MASS


def test_coder_round_trip_with_escapes_and_rate_close_to_ideal():
    rng = np.random.default_rng(0)
    latent = tables.latent_tables()
    ids = rng.integers(0, len(latent), 20000)
    scales = entropy_models.scale_table()[ids]
    values = np.round(rng.normal(size=ids.size) * scales).astype(np.int64)
    values[[3, 50, 999]] = [10**6, -(10**9), ans_coder.MAX_ABS_SYMBOL]  # far outside every table
    data, escapes = ans_coder.encode([(values, ids, latent)])
    assert escapes == [10**6, -(10**9), ans_coder.MAX_ABS_SYMBOL]
    stream = ans_coder.StreamDecoder(data, ans_coder.write_varints(escapes))
    np.testing.assert_array_equal(stream.decode(ids, latent), values)
    stream.finish()

    inside = np.ones(values.size, bool)
    inside[[3, 50, 999]] = False
    ideal = -sum(
        math.log2(entropy_models.gaussian_pmf_numpy(np.array([v]), s)[0])
        for v, s in zip(values[inside], scales[inside])
    )
    assert len(data) * 8 < ideal * 1.005 + 3 * 32 + 64  # escapes cost ~24 bits each


def test_segments_share_one_stream_and_decode_in_order():
    latent = tables.latent_tables()
    first = (np.array([0, 1, -2, 40]), np.array([5, 5, 20, 1]), latent)
    second = (np.array([7, -7, 3]), np.array([30, 30, 63]), latent)
    data, escapes = ans_coder.encode([first, second])
    assert escapes == [40]  # 40 is far outside the table of scale index 1
    stream = ans_coder.StreamDecoder(data, ans_coder.write_varints(escapes))
    np.testing.assert_array_equal(stream.decode(first[1], latent), first[0])
    np.testing.assert_array_equal(stream.decode(second[1], latent), second[0])
    stream.finish()


def test_varints_round_trip_and_reject_damage():
    values = [0, -1, 1, 63, -64, 2**31 - 1, -(2**31 - 1)]
    encoded = ans_coder.write_varints(values)
    np.testing.assert_array_equal(ans_coder.EscapeReader(encoded).read(len(values)), values)
    with pytest.raises(container.CorruptFileError, match="ends in the middle"):
        ans_coder.EscapeReader(encoded[:-1]).read(len(values))
    with pytest.raises(container.CorruptFileError, match="malformed"):
        ans_coder.EscapeReader(b"\xff" * 20).read(1)
    reader = ans_coder.EscapeReader(encoded + b"\x00")
    reader.read(len(values))
    with pytest.raises(container.CorruptFileError, match="unused bytes"):
        reader.check_consumed()


def test_stream_decoder_rejects_leftover_ragged_and_invalid_streams():
    latent = tables.latent_tables()
    ids = np.full(100, 30)
    data, _ = ans_coder.encode([(np.arange(100) % 5, ids, latent)])
    with pytest.raises(container.CorruptFileError, match="32-bit words"):
        ans_coder.StreamDecoder(data[:-1], b"")
    stream = ans_coder.StreamDecoder(data, b"")
    stream.decode(ids[:50], latent)
    with pytest.raises(container.CorruptFileError, match="left over"):
        stream.finish()
    with pytest.raises(container.CorruptFileError, match="invalid"):  # ANS never ends in a 0 word
        ans_coder.StreamDecoder(data + bytes(4), b"")
    stream = ans_coder.StreamDecoder(data, b"\x01")
    stream.decode(ids, latent)
    with pytest.raises(container.CorruptFileError, match="unused bytes"):
        stream.finish()


# ------------------------------------------------------------------------ entropy models
def test_gaussian_likelihood_matches_float64_pmf():
    values = np.arange(-40, 41).astype(np.float32)
    for scale in (0.11, 0.7, 5.0, 256.0):
        keras_p = np.asarray(entropy_models.gaussian_likelihood(values, np.float32(scale)))
        numpy_p = np.maximum(entropy_models.gaussian_pmf_numpy(values, scale), entropy_models.LIKELIHOOD_BOUND)
        np.testing.assert_allclose(keras_p, numpy_p, rtol=2e-4, atol=1e-9)


def _random_density(channels=5):
    density = entropy_models.DeepFactorizedDensity(channels)
    density.build()
    rng = np.random.default_rng(3)
    for weight in density.weights:  # move away from the symmetric initialization
        weight.assign(np.asarray(weight) + rng.normal(scale=0.5, size=weight.shape).astype(np.float32))
    return density


def test_deep_factorized_numpy_matches_keras_and_is_a_distribution():
    density = _random_density()
    z = np.linspace(-30, 30, 241, dtype=np.float32)
    keras_p = np.asarray(density(np.tile(z[None, :, None, None], (1, 1, 1, 5))))[0, :, 0, :].T
    numpy_p = tables._box_mass(density.numpy_parameters(), np.tile(z.astype(np.float64), (5, 1)))
    np.testing.assert_allclose(keras_p, np.maximum(numpy_p, 1e-9), rtol=1e-3, atol=1e-7)
    # Unit boxes at the integers tile the line: the masses sum to ~1 per channel.
    grid = np.arange(-2000, 2001, dtype=np.float64)
    total = tables._box_mass(density.numpy_parameters(), np.tile(grid, (5, 1))).sum(axis=1)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_hyperprior_tables_center_on_medians_and_keep_the_tail_small():
    density = _random_density()
    result = tables.hyperprior_tables(density)
    logits = entropy_models.factorized_cumulative_logits_numpy(
        density.numpy_parameters(), result.medians[:, None]
    )
    np.testing.assert_allclose(logits[:, 0], 0.0, atol=1e-6)  # CDF(median) = 1/2
    for table in result.tables:
        assert table.offset <= 0 < table.offset + table.escape
        assert table.freqs[-1] / 2**ans_coder.PRECISION < 10 * tables.TAIL_MASS


def test_bound_scale_index_passes_gradients_only_towards_the_range():
    import tensorflow as tf

    x = tf.Variable([-3.0, 10.0, 80.0, -3.0, 80.0])
    weights = tf.constant([-1.0, 1.0, 1.0, 1.0, -1.0])  # d(loss)/d(bounded)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(weights * entropy_models.bound_scale_index(x))
    grad = tape.gradient(loss, x).numpy()
    # below: passes only when descent raises x; inside: passes; above: only when it lowers x.
    np.testing.assert_array_equal(grad, [-1.0, 1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        np.asarray(entropy_models.bound_scale_index(ops.convert_to_tensor([-3.0, 10.0, 80.0]))),
        [0.0, 10.0, 63.0],
    )


def test_coding_scale_indices_round_and_clip():
    raw = np.array([-5.0, 0.49, 0.51, 17.5000001, 62.6, 1e9])
    np.testing.assert_array_equal(entropy_models.coding_scale_indices(raw), [0, 0, 1, 18, 63, 63])


def test_density_serializes():
    density = _random_density(3)
    clone = keras.layers.deserialize(keras.layers.serialize(density))
    assert clone.channels == 3 and clone.filters == density.filters
    clone.set_weights(density.get_weights())
    z = np.random.default_rng(0).normal(size=(2, 3, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(clone(z)), np.asarray(density(z)))


# ------------------------------------------------------------------------ container
def _sample_container():
    return container.CompressedImage(
        fingerprint=b"12345678", lam=np.array([0.01, 1.0], np.float32), height=17, width=33,
        payloads=(b"abcd" * 3, b"", b"\x01\x02"),
    )


def test_container_round_trip_and_header_size():
    image = _sample_container()
    data = container.pack(image)
    assert len(data) == container.header_size(2, 3) + 14
    parsed = container.unpack(data)
    assert parsed.fingerprint == image.fingerprint and parsed.payloads == image.payloads
    assert (parsed.height, parsed.width) == (17, 33)
    np.testing.assert_array_equal(parsed.lam, image.lam)


def test_container_rejects_every_truncation_and_every_bit_flip():
    data = container.pack(_sample_container())
    for length in range(len(data)):
        with pytest.raises(container.CorruptFileError):
            container.unpack(data[:length])
    for bit in range(8 * len(data)):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(container.CorruptFileError):
            container.unpack(bytes(damaged))
    with pytest.raises(container.CorruptFileError, match="trailing"):
        container.unpack(data + b"\x00")


def test_container_names_foreign_files_and_versions():
    with pytest.raises(container.CorruptFileError, match="not a yoto_tf compressed image"):
        container.unpack(b"\x89PNG\r\n\x1a\n" + bytes(100))
    data = bytearray(container.pack(_sample_container()))
    data[4] = max(container.READABLE_VERSIONS) + 1
    with pytest.raises(container.CorruptFileError, match="unsupported format version"):
        container.unpack(bytes(data))
    huge = struct.pack("<4sBB8s", container.MAGIC, container.FORMAT_VERSION, 1, b"x" * 8)
    huge += struct.pack("<f", 0.01) + struct.pack("<IIB", 1, 1, 1) + struct.pack("<I", 2**32 - 1)
    with pytest.raises(container.CorruptFileError, match="truncated"):
        container.unpack(huge)  # a lying length field must not make the parser read or wait
