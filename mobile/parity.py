"""Parity gate: the .tflite must compute what the Keras model computes.

Both run on the same sample inputs at several lambda settings (and every style, or a
spread of them); the gate reports the max and mean absolute error over all output
elements and fails past the variant's tolerance. Inputs are always fed BY NAME through
the LiteRT signature runner.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping, Sequence

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from mobile.model_io import LOSS_WEIGHTS, STYLE_INDEX
from yoto_tf.coefficients import LossSpace

TOLERANCES = {
    "none": 1e-3,
    "float16": 1e-2,
    "dynamic_int8": 0.1,
    "int8": 0.05,
    "full_int8": 0.5,
}
"""Default max-abs-error tolerances for outputs in [0, 1] (an image).

float32 must match to 1e-3 (a quarter of one 8-bit level): the shipped painters4 at 384x384
differs by up to 1.8e-4 (mean 3e-6) from Keras through float32 reduction order alone, so the
earlier 1e-4 refused a correct export; test models with small activations stay below 1e-4
(tests/test_mobile_convert.py pins that). float16 weights move a trained style network's output by a
few 1e-3. dynamic_int8 quantizes activations per op at run time, including those feeding
the instance-norm statistics (about 0.02-0.07 measured). The selective ``int8`` variant
targets 0.05. ``full_int8`` is the naive baseline, kept for comparison only (0.1-0.3).
``benchmarks/tflite_variants.py`` measures all variants side by side.
"""

MIN_LAMBDA_SETTINGS = 5
MAX_STYLES_CHECKED = 4


class ParityError(RuntimeError):
    """The .tflite output differs from the Keras output by more than the tolerance."""


def lambda_settings(space: LossSpace, count: int = MIN_LAMBDA_SETTINGS, seed: int = 0):
    """``count`` (>= 5) lambda vectors [count, k] covering the space: the default, all
    coefficients at their low / high ends, each coefficient alone at an extreme, then
    random draws from the training distribution."""
    if count < MIN_LAMBDA_SETTINGS:
        raise ValueError(f"Parity needs at least {MIN_LAMBDA_SETTINGS} lambda settings.")
    rows = [space.default(), space.low, space.high]
    for i, extreme in itertools.product(range(space.size), ("low", "high")):
        row = space.default().copy()
        row[i] = getattr(space, extreme)[i]
        rows.append(row)
    unique = []
    for row in rows:
        if not any(np.array_equal(row, u) for u in unique):
            unique.append(np.asarray(row, np.float32))
    lam = np.stack(unique)[:count]
    if len(lam) < count:
        lam = np.concatenate([lam, space.sample_numpy(count - len(lam), seed)])
    return lam.astype(np.float32)


def style_settings(num_styles: int) -> list[int]:
    """All styles, or MAX_STYLES_CHECKED spread over them (first and last included)."""
    if num_styles <= MAX_STYLES_CHECKED:
        return list(range(num_styles))
    return sorted({int(round(i)) for i in np.linspace(0, num_styles - 1, MAX_STYLES_CHECKED)})


def parity_cases(
    data_samples: Sequence[Mapping[str, np.ndarray]],
    space: LossSpace,
    num_styles: int = 0,
    num_lambdas: int = MIN_LAMBDA_SETTINGS,
) -> list[dict[str, np.ndarray]]:
    """Every combination of data sample x lambda setting (x style): ``{name: [1, ...]}``."""
    lams = lambda_settings(space, num_lambdas)
    styles = style_settings(num_styles) if num_styles else [None]
    cases = []
    for sample, lam, style in itertools.product(data_samples, lams, styles):
        case = {name: np.asarray(value, np.float32) for name, value in sample.items()}
        case[LOSS_WEIGHTS] = lam[None]
        if style is not None:
            case[STYLE_INDEX] = np.array([style], np.int32)
        cases.append(case)
    return cases


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Absolute error between Keras and TFLite outputs over all cases and elements."""

    variant: str
    max_abs_error: float
    mean_abs_error: float
    tolerance: float
    num_cases: int
    worst_case: str
    error_scale: float = 1.0

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        relative = "" if self.error_scale == 1.0 else (
            f" relative to max |output| {self.error_scale:.3g}")
        return (
            f"parity {self.variant:>12}: max abs error {self.max_abs_error:.2e}, "
            f"mean {self.mean_abs_error:.2e} over {self.num_cases} cases{relative} "
            f"(tolerance {self.tolerance:g}) {verdict}"
        )

    def to_json(self) -> dict:
        return dict(dataclasses.asdict(self), passed=self.passed)


def signature_runner(tflite: bytes, signature_key: str, num_threads: int = 2):
    """A LiteRT signature runner: ``runner(**{name: array}) -> {output_name: array}``."""
    interpreter = Interpreter(model_content=tflite, num_threads=num_threads)
    return interpreter.get_signature_runner(signature_key)


def _describe(case: Mapping[str, np.ndarray]) -> str:
    lam = np.asarray(case[LOSS_WEIGHTS])
    if lam.ndim == 4:  # a lambda map: its range, not every cell
        parts = [f"lambda map {list(lam.shape)} from {np.round(lam.min(axis=(0, 1, 2)), 4).tolist()} "
                 f"to {np.round(lam.max(axis=(0, 1, 2)), 4).tolist()}"]
    else:
        parts = [f"lambda={np.round(lam[0], 4).tolist()}"]
    if STYLE_INDEX in case:
        parts.append(f"style={int(case[STYLE_INDEX][0])}")
    shapes = [f"{n}{list(v.shape)}" for n, v in case.items() if n not in (LOSS_WEIGHTS, STYLE_INDEX)]
    return ", ".join(shapes + parts)


def check_parity(
    model: keras.Model,
    tflite: bytes,
    signature_key: str,
    output_name: str,
    cases: Sequence[Mapping[str, np.ndarray]],
    variant: str,
    tolerance: float | None = None,
    error_scale: float = 1.0,
) -> ParityReport:
    """Runs ``model`` and the .tflite on every case; returns the error report (does not
    raise: see :func:`require`). Errors are divided by ``error_scale`` (see
    :func:`output_scale` for outputs that are not images in [0, 1])."""
    tolerance = TOLERANCES[variant] if tolerance is None else float(tolerance)
    runner = signature_runner(tflite, signature_key)
    worst, worst_case, total, count = -1.0, "", 0.0, 0
    for case in cases:
        expected = keras.ops.convert_to_numpy(model(dict(case), training=False))
        actual = runner(**case)[output_name]
        if actual.shape != expected.shape:
            raise ParityError(
                f"{variant}: the .tflite output {output_name!r} has shape {actual.shape}, "
                f"Keras gives {expected.shape} ({_describe(case)})."
            )
        error = np.abs(actual.astype(np.float64) - expected) / error_scale
        total += float(error.sum())
        count += error.size
        if not np.isfinite(error).all() or error.max() > worst:
            worst = float(error.max()) if np.isfinite(error).all() else float("inf")
            worst_case = _describe(case)
    return ParityReport(
        variant, worst, total / max(count, 1), tolerance, len(cases), worst_case, error_scale
    )


def output_scale(model: keras.Model, cases: Sequence[Mapping[str, np.ndarray]]) -> float:
    """The largest |output| of ``model`` over ``cases``: the error scale of an unbounded
    output (e.g. a compression latent), so its tolerances read like those of an image."""
    return max(
        float(np.abs(keras.ops.convert_to_numpy(model(dict(c), training=False))).max())
        for c in cases
    ) or 1.0


def error_function(
    model: keras.Model, signature_key: str, output_name: str,
    cases: Sequence[Mapping[str, np.ndarray]],
    error_scale: float = 1.0,
):
    """``error(tflite) -> max abs error / error_scale`` against ``model`` on ``cases``
    (Keras outputs computed once); what the int8 layer selection minimizes."""
    expected = [keras.ops.convert_to_numpy(model(dict(c), training=False)) for c in cases]

    def error(tflite: bytes) -> float:
        runner = signature_runner(tflite, signature_key)
        return max(
            float(np.abs(runner(**case)[output_name] - want).max())
            for case, want in zip(cases, expected)
        ) / error_scale

    return error


def require(report: ParityReport) -> None:
    """Raises ParityError with a message naming the variant, error, tolerance and case."""
    if not report.passed:
        raise ParityError(
            f"Parity gate failed for variant {report.variant!r}: max abs error "
            f"{report.max_abs_error:.3g} > tolerance {report.tolerance:g} (worst case: "
            f"{report.worst_case}). The .tflite does not compute what the Keras model "
            "computes; do not ship it."
        )
