"""Loss-coefficient spaces: which loss weightings a YOTO model is trained on.

A :class:`LossSpace` is an ordered set of named loss coefficients (the lambda vector).
Each coefficient has a range and a sampling distribution:

* ``log_uniform``: ``log(lambda)`` uniform on ``[log(low), log(high)]`` (the YOTO default;
  the network sees ``log(lambda)``),
* ``uniform``: ``lambda`` uniform on ``[low, high]``,
* ``fixed``: always ``default`` (a term that is weighted but never varied, e.g. the rate
  term of a rate-distortion loss).

Every tensor called ``lam`` below is a float32 array of shape ``[B, k]`` whose columns
follow ``LossSpace.names``; ``lam[b, i]`` is the weight of loss term ``names[i]`` for
example ``b``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import keras
import numpy as np
from keras import ops

DISTRIBUTIONS = ("log_uniform", "uniform", "fixed")


@dataclasses.dataclass(frozen=True)
class Coefficient:
    """One named loss coefficient.

    Attributes:
      name: the loss term this coefficient weights (e.g. ``"kl"``).
      low, high: the allowed (and, unless ``fixed``, sampled) range; ``low <= high``.
      distribution: one of ``"log_uniform"``, ``"uniform"``, ``"fixed"``.
      default: the value used when a caller does not set this coefficient; defaults to
        the geometric mean of the range for ``log_uniform``, the midpoint for ``uniform``,
        and ``low`` for ``fixed``.
    """

    name: str
    low: float
    high: float
    distribution: str = "log_uniform"
    default: float | None = None

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"Coefficient name must be a non-empty string, got {self.name!r}.")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Coefficient {self.name!r}: unknown distribution {self.distribution!r}; "
                f"expected one of {DISTRIBUTIONS}."
            )
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(
                f"Coefficient {self.name!r}: range [{self.low}, {self.high}] must be finite "
                "with low <= high."
            )
        if self.distribution == "log_uniform" and low <= 0:
            raise ValueError(
                f"Coefficient {self.name!r}: a log_uniform range must be positive, "
                f"got [{low}, {high}]."
            )
        if self.distribution == "fixed" and low != high:
            raise ValueError(
                f"Coefficient {self.name!r}: a fixed coefficient needs low == high, "
                f"got [{low}, {high}]."
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.default is None:
            if self.distribution == "log_uniform":
                default = math.sqrt(low * high)
            elif self.distribution == "uniform":
                default = 0.5 * (low + high)
            else:
                default = low
            object.__setattr__(self, "default", default)
        else:
            default = float(self.default)
            if not low <= default <= high:
                raise ValueError(
                    f"Coefficient {self.name!r}: default {default} is outside its range "
                    f"[{low}, {high}]."
                )
            object.__setattr__(self, "default", default)

    @classmethod
    def fixed(cls, name: str, value: float) -> "Coefficient":
        return cls(name, value, value, "fixed")

    def to_config(self) -> dict:
        return dataclasses.asdict(self)


class LossSpace:
    """An ordered set of named loss coefficients with ranges and sampling distributions.

    Example::

        space = LossSpace([
            Coefficient("reconstruction", 1.0, 1.0, "fixed"),
            Coefficient("kl", 0.125, 512.0, "log_uniform"),
        ])
        lam = space.sample(32)             # [32, 2] float32
        cond = space.to_conditioning(lam)  # [32, 2], about [-1, 1]; what the network sees

    Args:
      coefficients: the coefficients, in the column order of every lambda tensor.
    """

    def __init__(self, coefficients: Iterable[Coefficient | Mapping]):
        coefs = [c if isinstance(c, Coefficient) else Coefficient(**c) for c in coefficients]
        if not coefs:
            raise ValueError("A LossSpace needs at least one coefficient.")
        names = [c.name for c in coefs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Duplicate coefficient names in LossSpace: {duplicates}.")
        self.coefficients: tuple[Coefficient, ...] = tuple(coefs)

    # ----------------------------------------------------------------- description
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coefficients)

    @property
    def size(self) -> int:
        """k, the length of a lambda vector."""
        return len(self.coefficients)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{c.name}:{c.distribution}[{c.low:g},{c.high:g}]" for c in self.coefficients
        )
        return f"LossSpace({parts})"

    def __eq__(self, other) -> bool:
        return isinstance(other, LossSpace) and self.coefficients == other.coefficients

    def __hash__(self):
        return hash(self.coefficients)

    def coefficient(self, name: str) -> Coefficient:
        """The Coefficient called ``name``; KeyError listing the names when there is none."""
        return self.coefficients[self.index(name)]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"No coefficient named {name!r}; this LossSpace has {list(self.names)}."
            ) from None

    @property
    def low(self) -> np.ndarray:
        return np.array([c.low for c in self.coefficients], np.float32)

    @property
    def high(self) -> np.ndarray:
        return np.array([c.high for c in self.coefficients], np.float32)

    def default(self, batch_size: int | None = None) -> np.ndarray:
        """The default lambda: [k], or [batch_size, k] when a batch size is given."""
        vec = np.array([c.default for c in self.coefficients], np.float32)
        return vec if batch_size is None else np.tile(vec[None], (batch_size, 1))

    def make(self, batch_size: int | None = None, **values: float) -> np.ndarray:
        """A validated lambda built from the defaults with some coefficients overridden.

        ``space.make(kl=4.0)`` -> [k]; unknown names raise KeyError naming the valid ones.
        """
        vec = self.default()
        for name, value in values.items():
            vec[self.index(name)] = value
        vec = self.validate(vec)
        return vec if batch_size is None else np.tile(vec[None], (batch_size, 1))

    # ----------------------------------------------------------------- sampling
    def sample(self, batch_size, seed=None):
        """Samples one lambda per example: a float32 tensor [batch_size, k].

        Backend-agnostic (``keras.random``), so it can run inside a compiled train step.

        Args:
          batch_size: int or scalar int tensor.
          seed: None, an int, or a ``keras.random.SeedGenerator`` (use the latter inside
            a train step so every step draws fresh values).
        """
        u = keras.random.uniform((batch_size, self.size), dtype="float32", seed=seed)
        return self.from_uniform(u)

    def sample_numpy(self, batch_size: int, rng: np.random.Generator | int | None = None):
        """Like :meth:`sample`, but a NumPy array from a NumPy generator (for host code)."""
        u = np.random.default_rng(rng).random((batch_size, self.size), dtype=np.float32)
        return ops.convert_to_numpy(self.from_uniform(u)).astype(np.float32)

    def from_uniform(self, u):
        """Maps uniform noise u in [0, 1) [B, k] to lambda [B, k] (inverse CDFs)."""
        u = ops.convert_to_tensor(u, dtype="float32")
        low, high = self._sampling_bounds
        t = low + u * (high - low)
        return ops.where(self._is_log, ops.exp(t), t)

    def grid(self, name: str, num: int, base: np.ndarray | None = None) -> np.ndarray:
        """``num`` lambdas [num, k] sweeping coefficient ``name`` over its range
        (log-spaced for log_uniform), others at ``base`` (default: the defaults)."""
        coef = self.coefficient(name)
        if coef.distribution == "log_uniform":
            values = np.geomspace(coef.low, coef.high, num)
        else:
            values = np.linspace(coef.low, coef.high, num)
        base = self.default() if base is None else self.validate(base)
        lam = np.tile(np.asarray(base, np.float32)[None], (num, 1))
        lam[:, self.index(name)] = values
        return lam

    # ----------------------------------------------------------------- network input
    @property
    def _is_log(self) -> np.ndarray:
        return np.array([c.distribution == "log_uniform" for c in self.coefficients])

    @property
    def _sampling_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 (low, high) [k] in the coordinate each coefficient is uniform in:
        log(lambda) for log-uniform coefficients, lambda otherwise."""
        is_log = self._is_log
        low = np.where(is_log, np.log(np.where(is_log, self.low, 1.0)), self.low)
        high = np.where(is_log, np.log(np.where(is_log, self.high, 1.0)), self.high)
        return low.astype(np.float32), high.astype(np.float32)

    def to_conditioning(self, lam):
        """Maps lambda [B, k] to the network's conditioning input [B, k].

        ``log_uniform`` coefficients become ``log(lambda)`` scaled so the range maps to
        [-1, 1]; ``uniform`` ones are scaled linearly to [-1, 1]; ``fixed`` ones map to 0.
        Values outside the range extrapolate linearly (no clipping here: validate first).
        Backend-agnostic, differentiable, usable inside a model graph.
        """
        lam = ops.convert_to_tensor(lam, dtype="float32")
        is_log = self._is_log
        low, high = self._sampling_bounds
        span = high - low
        fixed = span == 0
        scale = np.where(fixed, 0.0, 2.0 / np.where(fixed, 1.0, span)).astype(np.float32)
        offset = np.where(fixed, 0.0, -1.0 - low * scale).astype(np.float32)
        # log() only where the coefficient is log-uniform; guard others against log(<=0).
        safe = ops.where(is_log, ops.maximum(lam, 1e-30), 1.0)
        value = ops.where(is_log, ops.log(safe), lam)
        return value * scale + offset

    # ----------------------------------------------------------------- validation
    def validate(self, lam, clip: bool = False) -> np.ndarray:
        """Checks a user-given lambda ([k] or [B, k]) and returns it as float32 NumPy.

        Raises:
          ValueError: naming the coefficient, the value and the allowed range when the
            length is wrong, a value is NaN/inf, or (unless ``clip``) out of range.
        """
        arr = np.asarray(lam, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.size:
            raise ValueError(
                f"Expected a lambda vector of length {self.size} ({', '.join(self.names)}) "
                f"or a batch [B, {self.size}], got shape {arr.shape}."
            )
        rows = arr.reshape(-1, self.size)
        for i, coef in enumerate(self.coefficients):
            column = rows[:, i]
            bad = ~np.isfinite(column)
            if bad.any():
                raise ValueError(
                    f"Coefficient {coef.name!r} is {column[bad][0]}; it must be a finite "
                    f"number in [{coef.low:g}, {coef.high:g}]."
                )
            # A relative tolerance so values printed with %g round-trip.
            tol = 1e-6 * max(abs(coef.low), abs(coef.high), 1e-12)
            out = (column < coef.low - tol) | (column > coef.high + tol)
            if out.any() and not clip:
                raise ValueError(
                    f"Coefficient {coef.name!r} = {column[out][0]:g} is outside its allowed "
                    f"range [{coef.low:g}, {coef.high:g}]."
                )
        rows = np.clip(rows, self.low.astype(np.float64), self.high.astype(np.float64))
        return rows.reshape(arr.shape).astype(np.float32)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        """A JSON-able description; ``LossSpace.from_config(space.get_config()) == space``."""
        return {"coefficients": [c.to_config() for c in self.coefficients]}

    @classmethod
    def from_config(cls, config: Mapping) -> "LossSpace":
        if isinstance(config, LossSpace):
            return config
        if "coefficients" not in config:
            raise ValueError(
                f"Not a LossSpace config (no 'coefficients' key): {dict(config)!r}."
            )
        return cls(config["coefficients"])


def as_loss_space(value: "LossSpace | Mapping | Sequence") -> LossSpace:
    """Accepts a LossSpace, its config dict, or a list of Coefficients/dicts."""
    if isinstance(value, LossSpace):
        return value
    if isinstance(value, Mapping):
        return LossSpace.from_config(value)
    return LossSpace(value)
