"""Error bars for the YOTO / fixed ratio, and the verdict per lambda (NumPy only).

The ratio at one lambda is ``mean(YOTO metric) / mean(fixed metric)`` over the held-out
examples, for models trained with the same seed, averaged over the seeds (the metric is a
loss: a ratio below 1 means YOTO is better). Its spread has two sources: which seeds the
models were trained with, and which examples they were measured on. The interval is a
hierarchical percentile bootstrap over both: each resample draws S seeds with replacement,
then, within each drawn seed, N examples with replacement (the same examples for YOTO and
the fixed model: they were measured on the same images), and computes the ratio above. The
RNG has a fixed seed, so a report is reproducible. With one seed the interval only covers
the examples, not training noise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
RNG_SEED = 0
VERDICTS = ("better", "within tolerance", "worse", "inconclusive", "undefined")
_CHUNK_VALUES = 4_000_000  # indices drawn per vectorized chunk (bounds the memory)


@dataclasses.dataclass(frozen=True)
class RatioInterval:
    """The YOTO / fixed ratio at one lambda and its bootstrap interval.

    Attributes:
      ratio: mean over seeds of the per-seed ratio of example means.
      low, high: the interval's ends (percentiles ``(1 -+ confidence) / 2`` of the
        bootstrap distribution).
      seeds, examples: S and N, the data it came from.
    """

    ratio: float
    low: float
    high: float
    seeds: int
    examples: int


def _check(yoto, fixed) -> tuple[np.ndarray, np.ndarray]:
    yoto, fixed = np.asarray(yoto, np.float64), np.asarray(fixed, np.float64)
    if yoto.ndim != 2 or yoto.shape != fixed.shape or 0 in yoto.shape:
        raise ValueError(f"Give per-example metrics of equal shape [seeds, examples], got "
                         f"{yoto.shape} and {fixed.shape}.")
    return yoto, fixed


def seed_mean_ratio(yoto, fixed) -> float:
    """Mean over seeds of ``mean(yoto[s]) / mean(fixed[s])``; both [S, N]."""
    yoto, fixed = _check(yoto, fixed)
    return float(np.mean(yoto.mean(axis=1) / fixed.mean(axis=1)))


def ratio_interval(yoto, fixed, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                   seed: int = RNG_SEED) -> RatioInterval:
    """The ratio and its hierarchical bootstrap interval (see the module docstring).

    Args:
      yoto, fixed: per-example metrics [S, N]: row s holds the N held-out examples' metric
        of the model trained with the s-th seed; column n is the same example in both.
      confidence: the interval's coverage (0.95: the 2.5 and 97.5 percentiles).
      resamples: bootstrap resamples.
      seed: the bootstrap RNG's seed.
    """
    yoto, fixed = _check(yoto, fixed)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    num_seeds, num_examples = yoto.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // (num_seeds * num_examples))
    ratios = np.empty(resamples)
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        seeds = rng.integers(0, num_seeds, size=(count, num_seeds, 1))
        examples = rng.integers(0, num_examples, size=(count, num_seeds, num_examples))
        per_seed = yoto[seeds, examples].mean(axis=-1) / fixed[seeds, examples].mean(axis=-1)
        ratios[start:start + count] = per_seed.mean(axis=-1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return RatioInterval(seed_mean_ratio(yoto, fixed), float(low), float(high), num_seeds, num_examples)


def verdict(low: float, high: float, tolerance: float) -> str:
    """What the interval ``[low, high]`` of the ratio YOTO / fixed (a loss ratio: below 1,
    YOTO is better) says, a non-inferiority reading with margin ``tolerance``:

    * ``"better"``: ``high < 1``, YOTO's loss is lower;
    * ``"within tolerance"``: ``1 <= high <= 1 + tolerance``, YOTO is at most
      ``tolerance`` worse (it may be anything from better to that much worse);
    * ``"worse"``: ``low > 1 + tolerance``, YOTO is more than ``tolerance`` worse;
    * ``"inconclusive"``: ``low <= 1 + tolerance < high``, the interval straddles the
      margin (more seeds or examples would narrow it);
    * ``"undefined"``: an end is NaN (a metric was not finite: a model diverged).
    """
    if np.isnan(low) or np.isnan(high):
        return "undefined"
    if not low <= high:
        raise ValueError(f"An interval needs low <= high, got [{low}, {high}].")
    if high < 1.0:
        return "better"
    if high <= 1.0 + tolerance:
        return "within tolerance"
    if low > 1.0 + tolerance:
        return "worse"
    return "inconclusive"
