"""The beta-VAE task: a procedural shapes dataset, a loss-conditional beta-VAE, evaluation.

* ``shapes``: deterministic shapes images with known generative factors, as tf.data.
* ``model``: the FiLM-conditioned conv VAE, its LossSpaces, per-example loss terms and
  training model (optional KL warm-up).
* ``evaluation``: per-beta reconstruction / KL / negative beta-ELBO, plots, image grids.
"""

from yoto_tf.beta_vae.model import (
    DEFAULT_BETA_RANGE,
    BetaVAEModel,
    beta_loss_space,
    build_model,
    build_network,
    fixed_beta_loss_space,
    loss_terms,
)

__all__ = [
    "DEFAULT_BETA_RANGE",
    "BetaVAEModel",
    "beta_loss_space",
    "build_model",
    "build_network",
    "fixed_beta_loss_space",
    "loss_terms",
]
