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
"""

from __future__ import annotations

from yoto_tf.compression.model import build_network, rate_distortion_terms
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
      **kwargs: passed to LossConditionalModel (``seed``, ``ema_decay``, ...).
    """

    def __init__(self, network, loss_space=None, geometric_mean_weights=True, **kwargs):
        super().__init__(
            network, rate_distortion_terms, loss_space=loss_space,
            weight_normalization="geometric_mean" if geometric_mean_weights else "none", **kwargs,
        )


def build_model(
    loss_space=None,
    num_filters: int = 128,
    num_latent: int = 192,
    conditioning_units: int = 256,
    seed: int | None = None,
    geometric_mean_weights: bool = True,
    mean_scale: bool = False,
    mixed_quantization: bool = False,
) -> CompressionTrainingModel:
    """The uncompiled training model of a new :class:`CompressionNetwork` (the network is its
    ``.network``): what ``trainers.compression`` trains and ``benchmarks.yoto_vs_fixed``
    compares, with the same weighting (geometric-mean normalization on by default).

    Pass ``compression_loss_space(fixed_lambda=lam)`` for a model trained at one lambda;
    ``mean_scale`` and ``mixed_quantization`` are the CompressionNetwork options.
    """
    network = build_network(loss_space, num_filters, num_latent, conditioning_units, seed=seed,
                            mean_scale=mean_scale, mixed_quantization=mixed_quantization)
    return CompressionTrainingModel(network, loss_space=loss_space, seed=seed,
                                    geometric_mean_weights=geometric_mean_weights)
