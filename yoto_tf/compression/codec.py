"""The codec of a trained :class:`CompressionNetwork`: images to symbols to bytes and back.

:class:`CompressionCodec` holds the network, its float64 entropy copy and its coding tables,
and does each step (analysis, refinement, quantization, entropy parameters, ANS coding,
synthesis); ``image_coding.py`` puts the steps together into one call per image
(``compress_image``, ``decompress_image``, ...) and loads codecs from files. Also here: the
model fingerprint that files name their model by, and the image checks and padding.

``lam`` is the weight of the distortion term (``lam * 255^2 * MSE + bpp``): larger means
higher quality and more bits; it must lie in the model's trained range. A quality map
(``lambda_map``, one lambda per pixel, see ``quality_map.py``) conditions every transform
per position instead; it is stored in the file (version 2 of the container), quantized
per cell, and both sides condition on the map rebuilt from the stored integers.

Wherever a method takes ``lam_vec``, it is the conditioning: float32 [k] (one weighting
for the image) or a loss-weight map float32 [gh, gw, k] covering the padded image (one
weighting per cell; see :meth:`CompressionCodec.map_conditioning`).

Where float non-determinism could break decoding, and what this module does about it:
the decoder recomputes the scale of every latent from the decoded hyper-latents with the
hyper-synthesis transform; any difference from the encoder's value (thread count, CPU,
library version) could pick a different coding table and desynchronize the ANS stream.
So the scale-table **indices** are computed from the integer hyper-latents by a float64
copy of the conditioning network and hyper-synthesis transform and then rounded
(``entropy_models.coding_scale_indices``): the two sides would have to differ by ~1e-13 at
a rounding boundary to disagree, where float32 would disagree every few thousand latents.
The coding tables themselves are integers built once from the weights in float64.
The mean-scale model's means come from the same float64 pass: they shift the rounding of
y (the symbols coded are round(y - mean)) and are added back before synthesis, so they
never choose a table. With a channel context (``channel_slices``), y is coded slice after
slice, and the float64 pass refines each slice's means and indices from the decoded slices
before it (symbols + means, the same float64 values on both sides); the stream holds the
slices in that order. With latent residual prediction (``residual_prediction``) the same
pass adds each slice's predicted correction to its decoded values, for the synthesis and
for the slices after it.
"""

from __future__ import annotations

import hashlib
import json
import weakref

import keras
import numpy as np

from yoto_tf.compression import ans_coder, container, entropy_models, latent_refinement, quality_map, tables
from yoto_tf.compression.model import PAD_MULTIPLE, CompressionNetwork

MAX_PIXELS = 1 << 24
"""Largest image (pixels) the codec accepts (~16.8 MP, e.g. 4096 x 4096); the transforms
hold several float32 activations of 128 channels at half resolution in memory."""

_CODEC_CONSTANTS = {
    "format_version": container.FORMAT_VERSION,
    "precision": ans_coder.PRECISION,
    "tail_mass": tables.TAIL_MASS,
    "scales": [entropy_models.SCALE_MIN, entropy_models.SCALE_MAX, entropy_models.NUM_SCALES],
}


class ModelMismatchError(ValueError):
    """The file was written by a different model (or a different codec version)."""


class CompressionCodec:
    """A trained CompressionNetwork plus everything built once for coding.

    Attributes:
      network: the Keras CompressionNetwork (float32).
      loss_space: its LossSpace; ``lambda_range`` is the range of the ``distortion`` weight.
      fingerprint: 8 bytes identifying weights, config and codec constants.
    """

    def __init__(self, network: CompressionNetwork):
        if not isinstance(network, CompressionNetwork):
            raise TypeError(
                f"expected a yoto_tf CompressionNetwork, got {type(network).__name__}; "
                "load a model.keras written by `python -m trainers.compression train`"
            )
        if not network.built:
            network.build()
        self.network = network
        self.loss_space = network.loss_space
        self.fingerprint = model_fingerprint(network)
        self._entropy_network = _float64_entropy_network(network)
        self._latent_tables = tables.latent_tables()
        self._hyperprior = tables.hyperprior_tables(network.hyperprior)
        self._z_medians32 = self._hyperprior.medians.astype(np.float32)
        self._last_entropy_parameters = (None, None)
        self._refiner = None

    # ------------------------------------------------------------------ lambda
    @property
    def lambda_range(self) -> tuple[float, float]:
        coef = self.loss_space.coefficient("distortion")
        return coef.low, coef.high

    @property
    def default_lambda(self) -> float:
        """The lambda the model was built to default to (its LossSpace default, e.g. 0.018)."""
        return float(self.loss_space.coefficient("distortion").default)

    def lambda_vector(self, lam: float) -> np.ndarray:
        """The validated float32 [k] loss-weight vector for distortion weight ``lam``.

        Raises:
          ValueError: naming the model's trained range when ``lam`` is outside it.
        """
        low, high = self.lambda_range
        try:
            lam = float(lam)
        except (TypeError, ValueError):
            raise ValueError(f"lambda must be a number, got {lam!r}") from None
        if not np.isfinite(lam) or not low * (1 - 1e-6) <= lam <= high * (1 + 1e-6):
            raise ValueError(
                f"lambda {lam:g} is outside this model's trained range [{low:g}, {high:g}]"
            )
        return self.loss_space.make(distortion=min(max(lam, low), high))

    def map_conditioning(self, qmap: quality_map.QuantizedMap, base: np.ndarray,
                         height: int, width: int) -> np.ndarray:
        """The loss-weight map float32 [padded H / cell, padded W / cell, k] of a stored
        quality map: ``base`` [k] with the distortion weight of every cell (edge-padded
        over the image's padding)."""
        ph, pw = padded_size(height, width)
        grid = qmap.padded_lambda_grid(ph // qmap.cell, pw // qmap.cell)
        lam = np.broadcast_to(np.asarray(base, np.float32), grid.shape + (self.loss_space.size,)).copy()
        lam[..., self.loss_space.index("distortion")] = grid
        return lam

    def quality_map(self, lambda_map, height: int, width: int, cell: int = quality_map.DEFAULT_CELL,
                    bits: int = quality_map.DEFAULT_BITS):
        """Per-pixel lambdas [h, w] (any size; resized to the image) -> (the QuantizedMap the
        file will hold, its conditioning map). The map is round-tripped through its bytes, so
        the encoder conditions on exactly what the decoder rebuilds.

        Raises:
          ValueError (QualityMapError): a bad map, or values outside the trained range.
        """
        qmap = quality_map.quantize_map(lambda_map, height, width, self.lambda_range, cell, bits)
        base = self.lambda_vector(qmap.low)
        low = base[self.loss_space.index("distortion")]
        qmap = quality_map.QuantizedMap.from_bytes(qmap.to_bytes(), low, height, width)
        self.lambda_vector(qmap.high)  # inside the range (raises otherwise)
        return qmap, self.map_conditioning(qmap, base, height, width)

    # ------------------------------------------------------------------ transforms
    def analyze(self, image: np.ndarray, lam_vec: np.ndarray):
        """uint8 [H, W, 3] -> (y float32 [1, h, w, M], z float32 [1, h/4, w/4, N])."""
        x = pad_image(image).astype(np.float32)[None] / np.float32(255.0)
        emb = self.network.embed(lam_vec[None])
        y = self.network.analysis((x, emb))
        z = self.network.hyper_analysis((self.network.hyper_input(y), emb))
        return np.asarray(y), np.asarray(z)

    def refine_latents(self, image: np.ndarray, lam_vec: np.ndarray, y, z, steps: int,
                       learning_rate: float = latent_refinement.DEFAULT_LEARNING_RATE, seed: int = 0):
        """Encode-time refinement of :meth:`analyze`'s (y, z) for uint8 ``image`` [H, W, 3]
        (see latent_refinement.py): float32 latents of the same shapes that code the image
        at a lower rate-distortion loss; ``steps`` 0 returns them unchanged."""
        if steps == 0:
            return y, z
        if self._refiner is None:
            self._refiner = latent_refinement.LatentRefiner(self.network, self._z_medians32)
        padded = pad_image(image).astype(np.float32)[None] / np.float32(255.0)
        return self._refiner.refine(padded, *image.shape[:2], lam_vec, y, z, steps, learning_rate, seed)

    def quantize_latents(self, y, z, lam_vec):
        """Rounds z around the hyperprior medians, and y around its predicted means (0 for
        the scale hyperprior), slice after slice for a model with a channel context.

        Returns:
          (y symbols, z symbols): int64 [1, h, w, M] and [1, h/4, w/4, N].
        """
        for name, value in (("y", y), ("z", z)):
            if not np.all(np.isfinite(value)):
                raise ValueError(f"the analysis transform produced non-finite {name}; the model is broken")
        z_symbols = _round_symbols(z - self._z_medians32)
        y = np.asarray(y, np.float32)
        y_symbols = self._code_slices(
            z_symbols, lam_vec,
            lambda start, stop, means, _: _round_symbols(y[..., start:stop] - means.astype(np.float32)))
        return y_symbols, z_symbols

    def entropy_parameters(self, z_symbols: np.ndarray, lam_vec: np.ndarray, y_symbols: np.ndarray | None = None):
        """int64 z symbols [1, h, w, N] -> (means float64 [1, 4h, 4w, M] (zeros for the scale
        hyperprior), int32 scale-table indices [1, 4h, 4w, M]), both computed in float64.

        ``y_symbols`` int64 [1, 4h, 4w, M]: needed by a model with a channel context, whose
        parameters of each slice depend on the slices before it.

        The last result is kept: encoding and decoding each ask more than once for the same symbols.
        """
        return self._entropy_walk(z_symbols, lam_vec, y_symbols)[:2]

    def decoded_latents(self, y_symbols: np.ndarray, z_symbols: np.ndarray, lam_vec: np.ndarray) -> np.ndarray:
        """y_hat float32 [1, h, w, M], what the synthesis decodes: the symbols plus their
        means (float32 sums, as the codec always computed them), or, for a model with latent
        residual prediction, the float64 walk's corrected values."""
        y_hat = y_symbols.astype(np.float32)
        if self.network.residual_prediction:
            return self._entropy_walk(z_symbols, lam_vec, y_symbols)[2].astype(np.float32)
        if self.network.mean_scale:
            y_hat = y_hat + self.entropy_parameters(z_symbols, lam_vec, y_symbols)[0].astype(np.float32)
        return y_hat

    def _entropy_walk(self, z_symbols, lam_vec, y_symbols):
        """(means, indices, y_hat float64) of :meth:`_code_slices` for these symbols (the
        last walk's, when it was for the same ones)."""
        if y_symbols is None and self.network.channel_slices:
            raise ValueError("a model with a channel context needs the y symbols for its entropy parameters")
        key = self._parameters_key(z_symbols, lam_vec, y_symbols)
        if self._last_entropy_parameters[0] != key:
            self._code_slices(z_symbols, lam_vec, lambda start, stop, means, _: (
                np.zeros(means.shape, np.int64) if y_symbols is None else y_symbols[..., start:stop]))
        return self._last_entropy_parameters[1]

    def _parameters_key(self, z_symbols, lam_vec, y_symbols):
        lam_vec = np.asarray(lam_vec)
        y_key = y_symbols.tobytes() if self.network.channel_slices else None
        return (z_symbols.shape, z_symbols.tobytes(), lam_vec.shape, lam_vec.tobytes(), y_key)

    def _code_slices(self, z_symbols, lam_vec, slice_symbols) -> np.ndarray:
        """The float64 walk over y's slices (``CompressionNetwork.code_slices``), as encoder
        and decoder both do it.

        Args:
          slice_symbols: ``slice_symbols(start, stop, means, indices) -> int64 symbols``
            [1, h, w, S] of channels [start, stop), given their float64 means and int32
            scale-table indices (round y around the means; or decode the stream).

        Returns:
          the y symbols int64 [1, h, w, M]; the means, indices and decoded y_hat are kept
          for :meth:`entropy_parameters` and :meth:`decoded_latents`.
        """
        net = self._entropy_network
        emb = net.embed(np.asarray(lam_vec)[None])
        out = net.hyper_synthesis((z_symbols.astype(np.float64) + self._hyperprior.medians, emb))
        hyper_mean, hyper_raw_index = out if net.mean_scale else (None, out)
        symbols, means, indices = [], [], []

        def code_slice(start, stop, mean, raw_index):
            raw_index = np.asarray(raw_index)
            mean = np.zeros(raw_index.shape) if mean is None else np.asarray(mean, np.float64)
            index = entropy_models.coding_scale_indices(raw_index)
            symbols.append(np.asarray(slice_symbols(start, stop, mean, index), np.int64))
            means.append(mean)
            indices.append(index)
            return symbols[-1].astype(np.float64) + mean

        y_hat = np.asarray(net.code_slices(hyper_mean, hyper_raw_index, emb, code_slice), np.float64)
        y_symbols, mean, index = (np.concatenate(parts, axis=-1) for parts in (symbols, means, indices))
        self._last_entropy_parameters = (self._parameters_key(z_symbols, lam_vec, y_symbols), (mean, index, y_hat))
        return y_symbols

    def synthesize(self, y_symbols, z_symbols, lam_vec, height: int, width: int) -> np.ndarray:
        """int64 y and z symbols -> the uint8 [height, width, 3] reconstruction (of
        :meth:`decoded_latents`)."""
        emb = self.network.embed(lam_vec[None])
        y_hat = self.decoded_latents(y_symbols, z_symbols, lam_vec)
        x_hat = np.asarray(self.network.synthesis((y_hat, emb)))[0]
        x_hat = x_hat[:height, :width]
        return np.round(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.uint8)

    def estimated_bits(self, y_symbols, z_symbols, lam_vec) -> float:
        """The model's rate for these symbols: -sum log2 likelihood (float32 model)."""
        network = self.network
        emb = network.embed(lam_vec[None])
        z_hat = z_symbols.astype(np.float32) + self._z_medians32
        out = network.hyper_synthesis((z_hat, emb))
        hyper_mean, hyper_raw_index = out if network.mean_scale else (None, out)
        symbols = y_symbols.astype(np.float32)
        bits = [-np.log2(np.asarray(network.hyperprior(z_hat), np.float64)).sum()]

        def code_slice(start, stop, mean, raw_index):
            likelihood = entropy_models.index_likelihood(symbols[..., start:stop], raw_index)
            bits.append(-np.log2(np.asarray(likelihood, np.float64)).sum())
            return symbols[..., start:stop] if mean is None else symbols[..., start:stop] + mean

        network.code_slices(hyper_mean, hyper_raw_index, emb, code_slice)
        return float(sum(bits))

    # ------------------------------------------------------------------ coding
    def encode(self, y_symbols, z_symbols, lam_vec, height, width, qmap=None) -> bytes:
        """Entropy-codes the symbols; with a quality map ``qmap`` (and ``lam_vec`` its
        conditioning map) the file is a version-2 container whose third payload is the map
        and whose header lambda is the map's lowest."""
        z_ids = np.broadcast_to(np.arange(z_symbols.shape[-1]), z_symbols.shape)
        _, y_ids = self.entropy_parameters(z_symbols, lam_vec, y_symbols)
        stream, escapes = ans_coder.encode([(z_symbols, z_ids, self._hyperprior.tables)] + [
            (y_symbols[..., start:stop], y_ids[..., start:stop], self._latent_tables)
            for start, stop in self.network.latent_slices()  # the order the decoder needs them in
        ])
        payloads, header_lam, version = (stream, ans_coder.write_varints(escapes)), lam_vec, container.FORMAT_VERSION
        if qmap is not None:
            payloads += (qmap.to_bytes(),)
            header_lam, version = self.lambda_vector(qmap.low), container.QUALITY_MAP_VERSION
        return container.pack(container.CompressedImage(
            self.fingerprint, header_lam, int(height), int(width), payloads, version
        ))

    def decode(self, data: bytes):
        """bytes -> (y symbols, z symbols, lam_vec, height, width); ``lam_vec`` is the
        conditioning map [gh, gw, k] of a file with a quality map. Raises CorruptFileError /
        ModelMismatchError."""
        parsed = container.unpack(data)
        if parsed.fingerprint != self.fingerprint:
            raise ModelMismatchError(
                f"the file was written by a different model (fingerprint {parsed.fingerprint.hex()}, "
                f"this model is {self.fingerprint.hex()}); decode it with the model that wrote it"
            )
        expected = 3 if parsed.version == container.QUALITY_MAP_VERSION else 2
        if len(parsed.payloads) != expected:
            raise container.CorruptFileError(
                f"expected {expected} payloads, the file has {len(parsed.payloads)}")
        try:
            lam_vec = self.loss_space.validate(parsed.lam)
        except ValueError as err:
            raise container.CorruptFileError(f"the stored lambda is invalid for this model: {err}") from None
        height, width = parsed.height, parsed.width
        check_size(height, width)
        if expected == 3:
            try:
                qmap = quality_map.QuantizedMap.from_bytes(
                    parsed.payloads[2], lam_vec[self.loss_space.index("distortion")], height, width)
                self.lambda_vector(qmap.high)
            except ValueError as err:
                raise container.CorruptFileError(f"the stored quality map is invalid: {err}") from None
            lam_vec = self.map_conditioning(qmap, lam_vec, height, width)
        ph, pw = padded_size(height, width)
        n = self.network.num_filters
        z_shape = (1, ph // PAD_MULTIPLE, pw // PAD_MULTIPLE, n)
        stream = ans_coder.StreamDecoder(*parsed.payloads[:2])
        z_symbols = stream.decode(np.broadcast_to(np.arange(n), z_shape), self._hyperprior.tables)
        y_symbols = self._code_slices(
            z_symbols, lam_vec, lambda start, stop, means, indices: stream.decode(indices, self._latent_tables))
        stream.finish()
        return y_symbols, z_symbols, lam_vec, height, width


# ---------------------------------------------------------------------- helpers
def _round_symbols(values) -> np.ndarray:
    """float -> int64 symbols, clipped to what the coder accepts."""
    return np.clip(np.round(values), -ans_coder.MAX_ABS_SYMBOL, ans_coder.MAX_ABS_SYMBOL).astype(np.int64)


def pad_image(image: np.ndarray) -> np.ndarray:
    """Edge-pads [H, W, 3] to the next multiples of 64 (the model's total stride)."""
    ph, pw = padded_size(*image.shape[:2])
    return np.pad(image, ((0, ph - image.shape[0]), (0, pw - image.shape[1]), (0, 0)), mode="edge")


def padded_size(height: int, width: int) -> tuple[int, int]:
    up = lambda v: -(-v // PAD_MULTIPLE) * PAD_MULTIPLE  # noqa: E731
    return up(height), up(width)


def check_size(height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"image of {width}x{height} pixels is larger than this codec handles "
            f"({MAX_PIXELS} pixels, e.g. 4096x4096); downscale or tile it"
        )


def check_image(image) -> np.ndarray:
    """Checks an image is uint8 [H, W, 3] (use yoto_tf.images.load_image to convert files)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an RGB image of shape [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype} (convert with yoto_tf.images.load_image)")
    check_size(*image.shape[:2])
    return image


_NOT_FINGERPRINTED = ("name", "seed", "trainable", "dtype", "mixed_quantization")
"""Config entries that do not change what the codec computes (mixed_quantization is training-only)."""


def model_fingerprint(network: CompressionNetwork) -> bytes:
    """8 bytes of SHA-256 over the config, the codec constants and every weight."""
    digest = hashlib.sha256()
    config = {k: v for k, v in network.get_config().items() if k not in _NOT_FINGERPRINTED}
    if not config.get("mean_scale"):  # the scale hyperprior keeps the fingerprint it had before the option
        config.pop("mean_scale", None)
    if config.get("synthesis_filters") == config.get("num_filters"):  # likewise for an unwidened synthesis
        config.pop("synthesis_filters", None)
    if not config.get("channel_slices"):  # and for a model without a channel context
        config.pop("channel_slices", None)
    if not config.get("residual_prediction"):  # or without latent residual prediction
        config.pop("residual_prediction", None)
    digest.update(json.dumps([config, _CODEC_CONSTANTS], sort_keys=True, default=str).encode())
    for weight in _model_weights(network):
        value = np.ascontiguousarray(np.asarray(weight), dtype="<f4")
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.digest()[: container.FINGERPRINT_BYTES]


def _model_weights(network):
    """The float weights (not the training-noise seed state)."""
    return [w for w in network.weights if "float" in str(w.dtype)]


def _float64_entropy_network(network: CompressionNetwork) -> CompressionNetwork:
    """A float64 clone of ``network`` for the entropy parameters (means and scale indices):
    its conditioning MLP, hyper-synthesis, channel context and residual prediction are built and hold ``network``'s
    weights; the other transforms, never called on it, stay unbuilt (building them cost
    more than half of a codec's set-up)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        clone = CompressionNetwork.from_config({**network.get_config(), "dtype": "float64"})
        emb = clone.embed(np.ones((1, clone.loss_space.size)))
        out = clone.hyper_synthesis((np.zeros((1, 1, 1, clone.num_filters)), emb))
        mean, raw_index = out if clone.mean_scale else (None, out)
        clone.code_slices(mean, raw_index, emb, lambda start, stop, slice_mean, slice_index: slice_index * 0.0)
    finally:
        keras.config.set_dtype_policy(previous)
    for target, source in _entropy_layer_pairs(clone, network):
        for target_weight, source_weight in zip(_model_weights(target), _model_weights(source), strict=True):
            target_weight.assign(np.asarray(source_weight, np.float64))
    return clone


def _entropy_layer_pairs(target: CompressionNetwork, source: CompressionNetwork):
    names = ("conditioning", "hyper_synthesis")
    return [(getattr(target, n), getattr(source, n)) for n in names] + list(
        zip(target.channel_context, source.channel_context, strict=True)) + list(
        zip(target.residual_predictors, source.residual_predictors, strict=True))


_CODECS: "weakref.WeakKeyDictionary[CompressionNetwork, CompressionCodec]" = weakref.WeakKeyDictionary()


def as_codec(model) -> CompressionCodec:
    """A CompressionCodec for a codec or a Keras CompressionNetwork (cached per model and
    rebuilt if its weights changed)."""
    if isinstance(model, CompressionCodec):
        return model
    codec = _CODECS.get(model)
    if codec is None or codec.fingerprint != model_fingerprint(model):
        codec = CompressionCodec(model)
        _CODECS[model] = codec
    return codec
