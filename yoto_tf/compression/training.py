"""Training wrapper of the compression model: balanced per-example loss weights.

Why: the loss of example b is ``lam_b * 255^2 * MSE_b + bpp_b`` with ``lam_b`` drawn
log-uniformly over two decades ([0.0018, 0.18] by default). Early in training the
distortion is about the same for every lambda (255^2 * MSE ~ 600 at ~20 dB), so
``lam * D`` spans 100x across the batch and the batch mean is dominated by the top
decade: the shared weights see the objective of ONE model at about the mean lambda
(E[lam] = 0.039 for the default range), and the FiLM layers get almost no signal to make
the transforms depend on lambda. Measured on a 1000-step N/M 48/64 model trained without
this (measured in an earlier session): its FiLM scales and shifts were large (mean |s| 0.1-0.46)
but changed by only ~0.01 between lambda 0.0018 and 0.18, and it coded Kodak at
0.42-0.435 bpp for every lambda, close to the fixed-lambda 0.0483 model (0.45 bpp).

Fix (YOTO's per-example weight normalization, ``LossConditionalModel(weight_normalization=
"geometric_mean")``, as for the beta-VAE): divide example b's
weights ``(lam_b, 1)`` by their geometric mean ``sqrt(lam_b)``, i.e. minimize
``sqrt(lam) * D + bpp / sqrt(lam)``. For each lambda this rescales the objective only
(same minimizer, so lambda keeps its meaning at encode time); across lambdas it balances
the examples: a trained model's ``lam * D + bpp`` grows about 10x from q1 to q8
(CompressAI), and dividing by ``sqrt(lam)`` (10x) makes the per-example losses comparable;
at the start the spread shrinks from 100x to ~6x. A fixed-lambda model is only scaled
by a constant.

Lambda maps (``lambda_map_fraction``): a model coding with a quality map (one lambda per
16-pixel cell, ``quality_map.py``) but trained with one lambda per image never saw two
lambdas in one image; its FiLM layers blur the map's embedding across an edge, and the
analysis and synthesis have not learned to switch there (the shipped model showed a visible
band at the edge of a region of interest). With a fraction f > 0, that share of the training
examples gets a map instead: the image's cells take lambda ``a``, a random rectangle of
cells takes lambda ``b`` (both drawn from the LossSpace, as for one lambda per image), the
network is conditioned on the map [B, P/16, P/16, k], and the distortion of every pixel is
weighted by its own lambda: example b minimizes ``mean_x(lam(x) * 255^2 * se(x)) + bpp``,
divided (geometric-mean weighting) by ``exp(mean_x log sqrt(lam(x)))``, which is
``sqrt(lam)`` for a uniform map, so the other examples keep exactly the objective above.
"""

from __future__ import annotations

from keras import ops

from yoto_tf.compression.model import DISTORTION_SCALE, build_network, rate_distortion_terms
from yoto_tf.compression.quality_map import DEFAULT_CELL
from yoto_tf.training import LossConditionalModel


class CompressionTrainingModel(LossConditionalModel):
    """LossConditionalModel for a :class:`CompressionNetwork` (its rate-distortion terms),
    by default with weights normalized per example by their geometric mean.

    Args:
      network: the CompressionNetwork (called on ``(x [B, P, P, 3], lam [B, k])``).
      loss_space: its LossSpace (``distortion``, ``rate``).
      geometric_mean_weights: divide each example's raw weights [k] by their geometric
        mean (see the module docstring). The logged metrics stay the unweighted
        ``distortion`` (255^2 MSE) and ``rate`` (bpp).
      lambda_map_fraction: share of the training examples conditioned on a random
        two-level lambda map, their distortion weighted per pixel (see the module
        docstring); 0 trains with one lambda per image only.
      map_cell: pixels per map cell (the codec's quality-map cell).
      **kwargs: passed to LossConditionalModel (``seed``, ``ema_decay``, ...).
    """

    def __init__(self, network, loss_space=None, geometric_mean_weights=True,
                 lambda_map_fraction=0.0, map_cell=DEFAULT_CELL, **kwargs):
        super().__init__(
            network, rate_distortion_terms, loss_space=loss_space,
            weight_normalization="geometric_mean" if geometric_mean_weights else "none", **kwargs,
        )
        if not 0.0 <= lambda_map_fraction <= 1.0:
            raise ValueError(f"lambda_map_fraction must be in [0, 1], got {lambda_map_fraction}.")
        if lambda_map_fraction and self.normalize_terms:
            raise ValueError("lambda_map_fraction needs normalize_terms=False (the map weights the "
                             "distortion per pixel, before any batch normalization of the terms).")
        self.lambda_map_fraction = float(lambda_map_fraction)
        self.map_cell = int(map_cell)
        self._distortion, self._rate = self.loss_space.index("distortion"), self.loss_space.index("rate")

    def call(self, x, training=False):
        inputs, lam = self._split(x)
        if lam is not None or not training or not self.lambda_map_fraction:
            return super().call(x, training=training)
        lam = self.sample_lambda_map(inputs)
        return {"outputs": self.call_network(inputs, lam, training=training), "lambda": lam}

    def sample_lambda_map(self, images):
        """Training maps [B, P / cell, P / cell, k] for images [B, P, P, 3]: per example two
        lambdas ``a``, ``b`` from the LossSpace; with probability ``lambda_map_fraction``, a
        random rectangle of cells (each side 1/8 to all of the image's, anywhere) takes
        ``b`` and the rest ``a``, else every cell takes ``a``."""
        batch = ops.shape(images)[0]
        grid_h, grid_w = images.shape[1] // self.map_cell, images.shape[2] // self.map_cell
        outside, inside = self.sample_lambda(batch), self.sample_lambda(batch)  # [B, k]
        draws = ops.concatenate([self.uniform_noise(batch) for _ in range(3)], axis=-1)  # [B, 3k], k >= 2
        rows = ops.cast(ops.arange(grid_h), "float32")[None, :, None] + 0.5  # [1, h, 1], cell centres
        cols = ops.cast(ops.arange(grid_w), "float32")[None, None, :] + 0.5

        def span(size, start_draw, length_draw):
            length = (0.125 + 0.875 * length_draw) * size  # [B]
            start = start_draw * (size - length)
            return start[:, None, None], (start + length)[:, None, None]

        top, bottom = span(float(grid_h), draws[:, 0], draws[:, 1])
        left, right = span(float(grid_w), draws[:, 2], draws[:, 3])
        chosen = ops.cast(draws[:, 4] < self.lambda_map_fraction, "float32")[:, None, None]
        mask = (ops.cast((rows >= top) & (rows < bottom), "float32")
                * ops.cast((cols >= left) & (cols < right), "float32") * chosen)[..., None]
        return outside[:, None, None, :] * (1.0 - mask) + inside[:, None, None, :] * mask

    def example_losses(self, inputs, outputs, lam, terms, training):
        """As the base class for a lambda [B, k]; for a lambda map [B, h, w, k] (see
        :meth:`sample_lambda_map`), each pixel's distortion weighted by its own lambda (the
        map resized bilinearly to the image) and the result divided, with geometric-mean
        weighting, by ``exp(mean_x log sqrt(lam(x)))`` (see the module docstring)."""
        if len(lam.shape) != 4:
            return super().example_losses(inputs, outputs, lam, terms, training)
        pixel_lam = ops.image.resize(lam, (inputs.shape[1], inputs.shape[2]), interpolation="bilinear")
        squared_error = DISTORTION_SCALE * ops.mean(ops.square(inputs - outputs["x_hat"]), axis=-1)
        distortion = ops.mean(pixel_lam[..., self._distortion] * squared_error, axis=(1, 2))  # [B]
        rate = terms[:, self._rate] * ops.mean(pixel_lam[..., self._rate], axis=(1, 2))  # [B]
        losses = distortion + rate
        if self.weight_normalization == "geometric_mean":
            losses = losses / ops.exp(ops.mean(ops.log(pixel_lam), axis=(1, 2, 3)))
        return losses

def build_model(
    loss_space=None,
    num_filters: int = 128,
    num_latent: int = 192,
    conditioning_units: int = 256,
    seed: int | None = None,
    geometric_mean_weights: bool = True,
    mean_scale: bool = False,
    mixed_quantization: bool = False,
    lambda_map_fraction: float = 0.0,
    synthesis_filters: int | None = None,
    channel_slices: int = 0,
    residual_prediction: bool = False,
) -> CompressionTrainingModel:
    """The uncompiled training model of a new :class:`CompressionNetwork` (the network is its
    ``.network``): what ``trainers.compression`` trains and ``benchmarks.yoto_vs_fixed``
    compares, with the same weighting (geometric-mean normalization on by default).

    Pass ``compression_loss_space(fixed_lambda=lam)`` for a model trained at one lambda;
    ``mean_scale`` and ``mixed_quantization`` are the CompressionNetwork options;
    ``lambda_map_fraction`` the share of examples trained with a lambda map;
    ``synthesis_filters`` the synthesis transform's width (default ``num_filters``);
    ``channel_slices`` the slices of the channel context (0: none); ``residual_prediction``
    latent residual prediction (needs ``channel_slices``).
    """
    network = build_network(loss_space, num_filters, num_latent, conditioning_units, seed=seed,
                            mean_scale=mean_scale, mixed_quantization=mixed_quantization,
                            synthesis_filters=synthesis_filters, channel_slices=channel_slices,
                            residual_prediction=residual_prediction)
    return CompressionTrainingModel(network, loss_space=loss_space, seed=seed,
                                    geometric_mean_weights=geometric_mean_weights,
                                    lambda_map_fraction=lambda_map_fraction)
