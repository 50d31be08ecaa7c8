"""The lambda-conditioned scale-hyperprior compression model (Balle et al. 2018 + YOTO).

Transforms (``transforms.py``; every conv is followed by FiLM on the shared lambda
embedding, YOTO's "FiLM after each conv block, before the nonlinearity"):

* analysis ``g_a``: 4 x (conv 5x5 stride 2), GDN after the first three: x [B, H, W, 3]
  in [0, 1] -> y [B, H/16, W/16, M];
* synthesis ``g_s``: the mirror with transposed convs and inverse GDN: y -> x_hat;
* hyper-analysis ``h_a`` on |y|: conv 3x3 s1 ReLU, 5x5 s2 ReLU, 5x5 s2 -> z [B, H/64, W/64, N];
* hyper-synthesis ``h_s``: transposed 5x5 s2 ReLU, 5x5 s2 ReLU, 3x3 s1 -> the continuous
  scale index of every element of y (see ``entropy_models``).

Four options (all off in the original scale hyperprior, whose files keep loading):

* ``mean_scale`` (Minnen et al. 2018 without the autoregressive context): h_a sees y
  itself (not |y|) and h_s (widths N, 3N/2, 2M) predicts a mean mu and a scale for every
  element of y; the codec codes the integers round(y - mu) and decodes y_hat = symbols + mu.
* ``mixed_quantization`` (training only): the rate term sees y + uniform noise, the
  synthesis sees round(y - mu) + mu with a straight-through gradient, so the decoder is
  trained on the values it will decode (Minnen & Singh 2020).
* ``channel_slices`` (S > 0, needs ``mean_scale``; Minnen & Singh 2020's channel-wise
  context; their latent residual prediction is the next option): y's M channels are coded in S slices, and
  a small network per slice (:class:`SliceContextTransform`) refines the hyper-synthesis's
  mean and scale of its slice from the decoded slices before it, so the entropy model also
  uses what y's channels say about each other. Its last conv starts at zero: added to a
  trained model (``widening.add_channel_context``) it first predicts exactly what the
  hyperprior does.
* ``residual_prediction`` (needs ``channel_slices``; Minnen & Singh 2020's latent residual
  prediction): after each slice is decoded, a small network per slice
  (:class:`ResidualPredictionTransform`) predicts the slice's rounding error from its
  decoded values, its entropy parameters and the slices before it, and adds it (bounded
  to +-0.5) to y_hat; the synthesis and the later slices' context see the corrected
  values. It costs no bits; it starts at zero (``widening.add_residual_prediction``).

lambda: the loss is ``lambda_distortion * 255^2 * MSE + lambda_rate * bpp`` (CompressAI's
scale; ``rate`` is fixed at 1), so a larger ``distortion`` weight means higher quality and
more bits. The network sees lambda through one :class:`~yoto_tf.layers.ConditioningNetwork`
that normalizes it (log for the log-uniform distortion weight).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from yoto_tf.coefficients import Coefficient, LossSpace, as_loss_space
from yoto_tf.compression import entropy_models
from yoto_tf.compression.transforms import (
    AnalysisTransform,
    HyperAnalysisTransform,
    HyperSynthesisTransform,
    MeanScaleHyperSynthesisTransform,
    ResidualPredictionTransform,
    SliceContextTransform,
    SynthesisTransform,
)
from yoto_tf.layers import ConditioningNetwork

DEFAULT_LAMBDA_RANGE = (0.0018, 0.18)
"""CompressAI's qualities 1..8 (lambda on 255^2 * MSE)."""
DISTORTION_SCALE = 255.0**2
LATENT_STRIDE = 16  # y is H/16 x W/16
PAD_MULTIPLE = 64  # z is H/64 x W/64: inputs are padded to a multiple of this


def compression_loss_space(lambda_range=DEFAULT_LAMBDA_RANGE, fixed_lambda=None) -> LossSpace:
    """The rate-distortion LossSpace: ``distortion`` (log-uniform over ``lambda_range``,
    or fixed at ``fixed_lambda`` for an ordinary single-rate model) and ``rate`` (fixed 1)."""
    if fixed_lambda is not None:
        distortion = Coefficient.fixed("distortion", float(fixed_lambda))
    else:
        low, high = (float(v) for v in lambda_range)
        distortion = Coefficient("distortion", low, high, "log_uniform")
    return LossSpace([distortion, Coefficient.fixed("rate", 1.0)])


def check_residual_prediction(residual_prediction: bool, channel_slices: int) -> None:
    """Raises ValueError when ``residual_prediction`` is asked of a network without a
    channel context (the prediction works slice by slice, from the context's features)."""
    if residual_prediction and not channel_slices:
        raise ValueError("latent residual prediction (residual_prediction=True) needs a channel "
                         "context (channel_slices > 0)")


def check_channel_slices(channel_slices: int, mean_scale: bool, num_latent: int) -> None:
    """Raises ValueError unless ``channel_slices`` is 0 (no channel context) or a slice count
    a network with ``num_latent`` latent channels can code in: at least 2, dividing
    ``num_latent``, with ``mean_scale`` (the context refines the hyperprior's means)."""
    if not channel_slices:
        return
    if channel_slices < 2 or num_latent % channel_slices:
        raise ValueError(f"channel_slices must be 0 (no channel context) or at least 2 and dividing "
                         f"num_latent={num_latent}, got {channel_slices}")
    if not mean_scale:
        raise ValueError(f"a channel context (channel_slices={channel_slices}) needs a mean-scale "
                         f"model (mean_scale=True)")


# Registered under its former class name, so model files saved before the rename load.
@keras.saving.register_keras_serializable(package="yoto_tf", name="CompressionModel")
class CompressionNetwork(keras.Model):
    """Lambda-conditioned scale hyperprior: the network a LossConditionalModel trains.

    Args:
      loss_space: the rate-distortion LossSpace (see :func:`compression_loss_space`).
      num_filters: N, channels of the hidden layers and of z.
      num_latent: M, channels of y.
      synthesis_filters: channels of the synthesis transform's hidden layers (default N): the
        decoder can be wider than the rest (see ``widening.py``).
      conditioning_units, conditioning_layers: the ConditioningNetwork MLP.
      seed: seed of the training noise.
      mean_scale: predict a mean as well as a scale for every latent (see the module
        docstring); False is the scale hyperprior.
      mixed_quantization: in training, the synthesis sees rounded latents (straight-through
        gradient) while the rate term sees noisy ones; False: noisy latents for both.
      channel_slices: S > 0 codes y in S slices of M / S channels with a channel context
        (see the module docstring; needs ``mean_scale`` and M divisible by S); 0: one slice,
        no context.
      residual_prediction: latent residual prediction after each slice (see the module
        docstring; needs ``channel_slices``).

    Call arguments:
      inputs: a pair ``(x, lam)``: x float32 [B, H, W, 3] in [0, 1] with H, W multiples of
        64, lam float32 [B, k] raw loss weights (columns ``loss_space.names``).
      training: additive uniform noise instead of rounding.

    Returns:
      dict with ``x_hat`` [B, H, W, 3] (unclipped), ``y_bits`` [B] and ``z_bits`` [B]
      (-log2 likelihood summed per example). In inference mode z is rounded to integers;
      the codec rounds around the learned medians instead (see ``codec.py``).
    """

    def __init__(
        self,
        loss_space=None,
        num_filters=128,
        num_latent=192,
        conditioning_units=256,
        conditioning_layers=2,
        seed=None,
        mean_scale=False,
        mixed_quantization=False,
        synthesis_filters=None,
        channel_slices=0,
        residual_prediction=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channel_slices, self.residual_prediction = int(channel_slices), bool(residual_prediction)
        check_channel_slices(self.channel_slices, mean_scale, int(num_latent))
        check_residual_prediction(self.residual_prediction, self.channel_slices)
        self.loss_space = as_loss_space(loss_space or compression_loss_space())
        self.num_filters, self.num_latent = int(num_filters), int(num_latent)
        self.synthesis_filters = int(synthesis_filters or num_filters)
        self.conditioning_units, self.conditioning_layers = int(conditioning_units), int(conditioning_layers)
        self.seed = seed
        self.mean_scale, self.mixed_quantization = bool(mean_scale), bool(mixed_quantization)
        dtype = self.dtype_policy
        self.conditioning = ConditioningNetwork(
            self.loss_space, self.conditioning_units, self.conditioning_layers,
            name="conditioning", dtype=dtype,
        )
        self.analysis = AnalysisTransform(num_filters, num_latent, name="analysis", dtype=dtype)
        self.synthesis = SynthesisTransform(self.synthesis_filters, name="synthesis", dtype=dtype)
        self.hyper_analysis = HyperAnalysisTransform(num_filters, name="hyper_analysis", dtype=dtype)
        hyper_synthesis = MeanScaleHyperSynthesisTransform if self.mean_scale else HyperSynthesisTransform
        self.hyper_synthesis = hyper_synthesis(num_filters, num_latent, name="hyper_synthesis", dtype=dtype)
        self.hyperprior = entropy_models.DeepFactorizedDensity(
            num_filters, name="hyperprior", dtype=dtype
        )
        slice_channels = self.num_latent // max(self.channel_slices, 1)
        self.channel_context = [
            SliceContextTransform(num_filters, slice_channels, name=f"channel_context_{i}", dtype=dtype)
            for i in range(self.channel_slices)
        ]
        self.residual_predictors = [
            ResidualPredictionTransform(num_filters, slice_channels, name=f"residual_prediction_{i}", dtype=dtype)
            for i in range(self.channel_slices if self.residual_prediction else 0)
        ]
        self.noise_seed = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        # Run the forward pass once on a 64x64 dummy so every weight exists (also when
        # Keras rebuilds the model while loading a .keras file).
        k = self.loss_space.size
        self.call((ops.zeros((1, PAD_MULTIPLE, PAD_MULTIPLE, 3)), ops.ones((1, k))))

    def embed(self, lam):
        """lam [B, k] -> the shared conditioning embedding [B, conditioning_units]; a loss-weight
        map [B, h, w, k] -> an embedding map [B, h, w, units] (every FiLM layer resizes it to
        its own resolution: the transforms are conditioned per position)."""
        return self.conditioning(lam)

    def hyper_input(self, y):
        """What h_a sees: y for the mean-scale model, |y| for the scale hyperprior."""
        return y if self.mean_scale else ops.abs(y)

    def entropy_parameters(self, z_hat, emb):
        """z_hat [B, h, w, N] -> (mean [B, 4h, 4w, M] or None for the scale hyperprior,
        bounded continuous scale index [B, 4h, 4w, M])."""
        if self.mean_scale:
            mean, raw_index = self.hyper_synthesis((z_hat, emb))
        else:
            mean, raw_index = None, self.hyper_synthesis((z_hat, emb))
        return mean, entropy_models.bound_scale_index(raw_index)

    def latent_slices(self) -> list[tuple[int, int]]:
        """The (start, stop) channel ranges of y in coding order: S equal slices, or one
        range [0, M) without a channel context."""
        size = self.num_latent // max(self.channel_slices, 1)
        return [(start, start + size) for start in range(0, self.num_latent, size)]

    def latent_slice(self, y, start, stop):
        """Channels [start, stop) of y [B, h, w, M]; y itself for the single slice of a model
        without a channel context (no slicing op: such a model trains bit for bit as it did
        before slices existed, the gradients summed in the same order)."""
        return y if (start, stop) == (0, self.num_latent) else y[..., start:stop]

    def code_slices(self, hyper_mean, hyper_raw_index, emb, code_slice):
        """Walks y's slices in coding order, as encoder and decoder must.

        Args:
          hyper_mean: the hyper-synthesis means [B, h, w, M] (None for the scale hyperprior).
          hyper_raw_index: its unbounded scale indices [B, h, w, M].
          emb: the conditioning embedding (or embedding map).
          code_slice: ``code_slice(start, stop, mean, raw_index) -> y_hat`` of channels
            [start, stop): whatever the caller does with the slice (add noise, round and
            code it, decode it), given its mean and unbounded scale index [B, h, w, S] (the
            hyperprior's, refined by the channel context from the y_hat of the slices before).

        Returns:
          y_hat [B, h, w, M]: the slices' results, concatenated (each corrected by its
          residual prediction, with ``residual_prediction``).
        """
        decoded = []
        for i, (start, stop) in enumerate(self.latent_slices()):
            mean = None if hyper_mean is None else hyper_mean[..., start:stop]
            raw_index = hyper_raw_index[..., start:stop]
            if self.channel_context:
                features = _slice_features(mean, raw_index, decoded)
                offsets = self.channel_context[i]((features, emb))
                size = stop - start
                mean, raw_index = mean + offsets[..., :size], raw_index + offsets[..., size:]
            y_hat = code_slice(start, stop, mean, raw_index)
            if self.residual_predictors:
                features = _slice_features(mean, raw_index, decoded + [y_hat])
                y_hat = y_hat + self.residual_predictors[i]((features, emb))
            decoded.append(y_hat)
        return decoded[0] if len(decoded) == 1 else ops.concatenate(decoded, axis=-1)

    def call(self, inputs, training=False):
        x, lam = inputs
        emb = self.embed(lam)
        y = self.analysis((x, emb))
        z = self.hyper_analysis((self.hyper_input(y), emb))
        z_hat = entropy_models.quantize(z, training, self.noise_seed)
        hyper_out = self.hyper_synthesis((z_hat, emb))
        hyper_mean, hyper_raw_index = hyper_out if self.mean_scale else (None, hyper_out)
        y_bits = []

        def code_slice(start, stop, mean, raw_index):
            part = self.latent_slice(y, start, stop)
            centered = part if mean is None else part - mean
            centered_hat = entropy_models.quantize(centered, training, self.noise_seed)
            y_bits.append(bits_per_example(entropy_models.index_likelihood(centered_hat, raw_index)))
            if training and self.mixed_quantization:
                centered_hat = entropy_models.straight_through_round(centered)
            return centered_hat if mean is None else centered_hat + mean

        y_hat = self.code_slices(hyper_mean, hyper_raw_index, emb, code_slice)
        z_likelihood = self.hyperprior(z_hat)
        return {
            "x_hat": self.synthesis((y_hat, emb)),
            "y_bits": y_bits[0] if len(y_bits) == 1 else ops.sum(ops.stack(y_bits), axis=0),
            "z_bits": bits_per_example(z_likelihood),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "loss_space": self.loss_space.get_config(),
            "num_filters": self.num_filters,
            "num_latent": self.num_latent,
            "conditioning_units": self.conditioning_units,
            "conditioning_layers": self.conditioning_layers,
            "seed": self.seed,
            "mean_scale": self.mean_scale,
            "mixed_quantization": self.mixed_quantization,
            "synthesis_filters": self.synthesis_filters,
            "channel_slices": self.channel_slices,
            "residual_prediction": self.residual_prediction,
        }


def _slice_features(mean, raw_index, decoded):
    """The input of a slice's networks [B, h, w, C]: its mean, its unbounded scale index
    clipped to the table and scaled to [0, 1), and the y_hat slices in ``decoded``."""
    index = ops.clip(raw_index, 0.0, entropy_models.NUM_SCALES - 1.0) / float(entropy_models.NUM_SCALES)
    return ops.concatenate([mean, index] + decoded, axis=-1)


def build_network(
    loss_space=None,
    num_filters: int = 128,
    num_latent: int = 192,
    conditioning_units: int = 256,
    seed: int | None = None,
    mean_scale: bool = False,
    mixed_quantization: bool = False,
    synthesis_filters: int | None = None,
    channel_slices: int = 0,
    residual_prediction: bool = False,
) -> CompressionNetwork:
    """A new, built :class:`CompressionNetwork` (the conditioned network; see
    ``training.build_model`` for the training wrapper). Arguments as the class's."""
    network = CompressionNetwork(loss_space, num_filters, num_latent, conditioning_units, seed=seed,
                                 mean_scale=mean_scale, mixed_quantization=mixed_quantization,
                                 synthesis_filters=synthesis_filters, channel_slices=channel_slices,
                                 residual_prediction=residual_prediction)
    network.build()
    return network


def bits_per_example(likelihood):
    """likelihood [B, ...] -> -sum log2(likelihood) per example [B]."""
    flat = ops.reshape(likelihood, (ops.shape(likelihood)[0], -1))
    return ops.sum(-ops.log(flat), axis=-1) / math.log(2.0)


def rate_distortion_terms(inputs, outputs):
    """Per-example loss terms for :class:`~yoto_tf.LossConditionalModel`.

    Args:
      inputs: x float32 [B, H, W, 3] in [0, 1].
      outputs: the CompressionNetwork's dict.

    Returns:
      ``{"distortion": 255^2 * MSE [B], "rate": bits per pixel [B]}``.
    """
    x_hat = outputs["x_hat"]
    mse = ops.mean(ops.square(inputs - x_hat), axis=(1, 2, 3))
    shape = ops.shape(inputs)
    pixels = ops.cast(shape[1] * shape[2], "float32")
    return {
        "distortion": DISTORTION_SCALE * mse,
        "rate": (outputs["y_bits"] + outputs["z_bits"]) / pixels,
    }
