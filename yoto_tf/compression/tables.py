"""Integer coding tables built once from a trained model (float64 on the host).

* :func:`latent_tables`: one table per entry of the Gaussian scale table, for y.
* :func:`hyperprior_tables`: one table per channel of z, centred on the channel's median
  (z is coded as ``round(z - median)``, so the symbols sit where the density has its mass).

Everything here is float64 NumPy on weights read from the model, followed by the integer
quantization of ``ans_coder.make_table``: the encoder and decoder processes compute identical
integers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoto_tf.compression import ans_coder, entropy_models

TAIL_MASS = 1e-6
"""Probability mass left outside each table; values there are coded with the escape."""
MAX_HYPERPRIOR_TABLE = 4096
"""Cap on the symbols of one z table (a very wide density escapes more, nothing breaks)."""
_BISECTION_STEPS = 80
_SEARCH_LIMIT = 1e6


def latent_tables(tail_mass: float = TAIL_MASS) -> list[ans_coder.CodingTable]:
    """Tables of the quantized N(0, s^2) for every s of ``entropy_models.scale_table()``."""
    tables = []
    for scale in entropy_models.scale_table():
        bound = entropy_models.gaussian_tail_bound(scale, tail_mass)
        values = np.arange(-bound, bound + 1)
        tables.append(ans_coder.make_table(entropy_models.gaussian_pmf_numpy(values, scale), -bound))
    return tables


@dataclasses.dataclass
class HyperpriorTables:
    """Attributes:
      medians: float64 [C], the median of each channel's density (z_hat = symbol + median).
      tables: C coding tables of the symbols ``round(z - median)``.
    """

    medians: np.ndarray
    tables: list[ans_coder.CodingTable]


def _solve_logit(params, target_logit: float, channels: int) -> np.ndarray:
    """x [C] with cumulative_logits(x) == target_logit, by bisection (the CDF is monotone)."""
    low = np.full(channels, -_SEARCH_LIMIT)
    high = np.full(channels, _SEARCH_LIMIT)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        above = entropy_models.factorized_cumulative_logits_numpy(params, mid[:, None])[:, 0] > target_logit
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    return 0.5 * (low + high)


def _box_mass(params, centers: np.ndarray) -> np.ndarray:
    """Mass of [x - 0.5, x + 0.5] for centers [C, n] under each channel's density."""
    lower = entropy_models.factorized_cumulative_logits_numpy(params, centers - 0.5)
    upper = entropy_models.factorized_cumulative_logits_numpy(params, centers + 0.5)
    sign = -np.sign(lower + upper)
    sigmoid = lambda v: 0.5 * (1.0 + np.tanh(0.5 * v))  # noqa: E731 (overflow-free sigmoid)
    return np.abs(sigmoid(sign * upper) - sigmoid(sign * lower))


def hyperprior_tables(density: entropy_models.DeepFactorizedDensity, tail_mass: float = TAIL_MASS) -> HyperpriorTables:
    """Tables of every channel of a trained :class:`DeepFactorizedDensity`."""
    params = density.numpy_parameters()
    channels = density.channels
    tail_logit = float(np.log(tail_mass / 2.0) - np.log1p(-tail_mass / 2.0))
    medians = _solve_logit(params, 0.0, channels)
    lower = np.floor(_solve_logit(params, tail_logit, channels) - medians).astype(np.int64)
    upper = np.ceil(_solve_logit(params, -tail_logit, channels) - medians).astype(np.int64)
    # Keep the median's symbol inside even for degenerate densities, and cap the size.
    lower = np.clip(lower, -MAX_HYPERPRIOR_TABLE // 2, 0)
    upper = np.clip(upper, 0, MAX_HYPERPRIOR_TABLE // 2)
    # One evaluation on a shared grid: row c holds symbols lower[c], lower[c] + 1, ...
    width = int((upper - lower).max()) + 1
    symbols = lower[:, None] + np.arange(width)[None, :]
    pmf = _box_mass(params, medians[:, None] + symbols)
    tables = [
        ans_coder.make_table(pmf[c, : upper[c] - lower[c] + 1], int(lower[c]))
        for c in range(channels)
    ]
    return HyperpriorTables(medians, tables)
