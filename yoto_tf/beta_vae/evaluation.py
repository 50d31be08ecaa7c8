"""Evaluation of (loss-conditional) beta-VAEs: per-beta terms, trade-off plot, image grids.

All numbers are per-example means in nats over a held-out image set:

* ``reconstruction``: Gaussian NLL without its constant (see ``model``), the distortion;
* ``kl``: KL(q(z|x) || N(0, I)), the rate;
* ``neg_beta_elbo``: ``reconstruction + beta * kl``, the negative beta-ELBO, i.e. the loss
  the model minimizes at that beta (lower is better).

Posterior samples use NumPy noise from a fixed seed, so two models evaluated with the same
seed see the same noise (common random numbers: their difference has less variance).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import keras
import numpy as np

from yoto_tf.beta_vae.model import kl_nats, reconstruction_nats
from yoto_tf.files import save_figure_atomically, write_csv_atomically
from yoto_tf.layers import find_loss_space

CSV_COLUMNS = ("beta", "reconstruction", "kl", "neg_beta_elbo")


@dataclasses.dataclass(frozen=True)
class BetaEvaluation:
    """Mean per-example terms (nats) of one model at one beta."""

    beta: float
    reconstruction: float
    kl: float

    @property
    def neg_beta_elbo(self) -> float:
        return self.reconstruction + self.beta * self.kl

    def as_row(self) -> dict:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


def beta_lambdas(network: keras.Model, betas: Sequence[float]) -> np.ndarray:
    """Validated lambda vectors [K, 2] for ``betas``.

    Raises:
      ValueError: a beta outside the range the network was trained on (the message names
        the range), e.g. any beta other than its own for a fixed-beta network.
    """
    space = find_loss_space(network)
    return np.stack([space.make(kl=float(beta)) for beta in betas])


def _parts(network: keras.Model):
    return (network.get_layer("conditioning"), network.get_layer("encoder"),
            network.get_layer("decoder"))


def example_terms(
    network: keras.Model, images: np.ndarray, lam: np.ndarray, seed: int = 0, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Per-example ``reconstruction`` and ``kl`` (nats) of ``network`` run at lambda ``lam`` [2].

    Args:
      network: a :func:`~yoto_tf.beta_vae.model.build_network` model (or a loaded one).
      images: float32 [N, S, S, 3] in [0, 1].
      lam: the raw lambda vector [2] (validate it first, see :func:`beta_lambdas`).
      seed: seed of the posterior noise (one draw per example and latent).

    Returns:
      ``{"reconstruction": float64 [N], "kl": float64 [N]}``.
    """
    conditioning, encoder, decoder = _parts(network)
    rng = np.random.default_rng(seed)
    parts = {"reconstruction": [], "kl": []}
    for start in range(0, len(images), batch_size):
        batch = keras.ops.convert_to_tensor(np.asarray(images[start:start + batch_size], np.float32))
        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(batch), 1))
        embedding = conditioning(lam_batch)
        z_mean, z_log_var = encoder([batch, embedding], training=False)
        eps = rng.standard_normal(tuple(z_mean.shape)).astype(np.float32)
        z = z_mean + keras.ops.exp(0.5 * z_log_var) * eps
        logits = decoder([z, embedding], training=False)
        parts["reconstruction"].append(keras.ops.convert_to_numpy(reconstruction_nats(batch, logits)))
        parts["kl"].append(keras.ops.convert_to_numpy(kl_nats(z_mean, z_log_var)))
    return {name: np.concatenate(values).astype(np.float64) for name, values in parts.items()}


def mean_terms(
    network: keras.Model, images: np.ndarray, lam: np.ndarray, seed: int = 0, batch_size: int = 256
) -> dict[str, float]:
    """Mean ``reconstruction`` and ``kl`` (nats) over ``images``: :func:`example_terms` averaged."""
    terms = example_terms(network, images, lam, seed, batch_size)
    return {name: float(np.mean(values)) for name, values in terms.items()}


def evaluate_betas(
    network: keras.Model, images: np.ndarray, betas: Sequence[float], seed: int = 0
) -> list[BetaEvaluation]:
    """Evaluates ``network`` conditioned on each beta of ``betas`` (validated first)."""
    lams = beta_lambdas(network, betas)
    results = []
    for beta, lam in zip(betas, lams):
        terms = mean_terms(network, images, lam, seed)
        results.append(BetaEvaluation(float(beta), terms["reconstruction"], terms["kl"]))
    return results


def write_csv(results: Sequence[BetaEvaluation], path: str) -> None:
    write_csv_atomically(path, [result.as_row() for result in results], CSV_COLUMNS)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rate_distortion(curves: Mapping[str, Sequence[BetaEvaluation]], path: str) -> None:
    """Rate (KL) vs distortion (reconstruction) of one or more models across beta (PNG).

    Args:
      curves: label -> evaluations; each curve is drawn through its betas in order and every
        point is annotated with its beta.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, results in curves.items():
        rates = [r.kl for r in results]
        distortions = [r.reconstruction for r in results]
        ax.plot(rates, distortions, marker="o", label=label)
        for r in results:
            ax.annotate(f"{r.beta:g}", (r.kl, r.reconstruction), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_xlabel("rate: KL(q(z|x) || p(z)) [nats]")
    ax.set_ylabel("distortion: reconstruction [nats]")
    ax.set_title("beta-VAE trade-off across beta (labels: beta)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure_atomically(fig, path, dpi=120)
    plt.close(fig)


def reconstructions_and_samples(
    network: keras.Model, images: np.ndarray, betas: Sequence[float], num_samples: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Images [K, N + num_samples, S, S, 3] in [0, 1]: per beta (row), the decoded posterior
    means of ``images`` [N, S, S, 3], then decodings of ``num_samples`` prior draws z ~ N(0, I)
    (the same draws in every row)."""
    lams = beta_lambdas(network, betas)
    conditioning, encoder, decoder = _parts(network)
    images = keras.ops.convert_to_tensor(np.asarray(images, np.float32))
    latent_dim = encoder.outputs[0].shape[-1]
    prior = keras.ops.convert_to_tensor(
        np.random.default_rng(seed).standard_normal((num_samples, latent_dim)).astype(np.float32))
    rows = []
    for lam in lams:
        embedding = conditioning(np.tile(lam[None], (len(images), 1)))
        z_mean, _ = encoder([images, embedding], training=False)
        recon = decoder([z_mean, embedding], training=False)
        row = [keras.ops.convert_to_numpy(keras.ops.sigmoid(recon))]
        if num_samples:
            prior_embedding = conditioning(np.tile(lam[None], (num_samples, 1)))
            row.append(keras.ops.convert_to_numpy(
                keras.ops.sigmoid(decoder([prior, prior_embedding], training=False))))
        rows.append(np.concatenate(row, axis=0))
    return np.stack(rows)


def save_grid(
    network: keras.Model, images: np.ndarray, betas: Sequence[float], path: str,
    num_samples: int = 4, seed: int = 0,
) -> None:
    """PNG grid: the input images on top, then one row per beta with their reconstructions
    and ``num_samples`` samples from the prior."""
    grid = reconstructions_and_samples(network, images, betas, num_samples, seed)
    num_inputs = len(images)
    plt = _pyplot()
    rows, cols = grid.shape[0] + 1, grid.shape[1]
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for j, image in enumerate(images):
        axes[0, j].imshow(np.clip(image, 0, 1))
    axes[0, 0].set_ylabel("input", fontsize=7)
    for i, beta in enumerate(betas):
        for j in range(cols):
            axes[i + 1, j].imshow(np.clip(grid[i, j], 0, 1))
        axes[i + 1, 0].set_ylabel(f"beta={beta:g}", fontsize=7)
    if num_samples:
        axes[0, num_inputs].set_title("prior samples ->", fontsize=7, loc="left")
    fig.tight_layout(pad=0.2)
    save_figure_atomically(fig, path, dpi=100)
    plt.close(fig)
