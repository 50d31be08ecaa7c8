"""Rate control by searching lambda on one variable-rate model (no retraining).

The real file size grows with the distortion weight lambda; :func:`compress_to_target`
searches ``log(lambda)`` over the model's trained range with a safeguarded false-position
method (Illinois) on ``log(size / target)``, compressing for real at every try, until the
file is within ``tolerance`` of the target, or reports the closest size it found (e.g.
when the target lies outside what the model can reach).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from yoto_tf.compression import codec as codec_lib
from yoto_tf.compression import image_coding

DEFAULT_TOLERANCE = 0.02
MAX_TRIES = 20


@dataclasses.dataclass(frozen=True)
class RateControlResult:
    """Attributes:
      data: the chosen file's bytes (its header stores ``lam``).
      lam: the distortion weight used.
      target_bytes: the requested size.
      met: whether ``|len(data) - target_bytes| <= tolerance * target_bytes``.
      tries: how many times the image was compressed.
      reason: why the target was missed ('' when met).
    """

    data: bytes
    lam: float
    target_bytes: float
    met: bool
    tries: int
    reason: str = ""

    @property
    def relative_error(self) -> float:
        return len(self.data) / self.target_bytes - 1.0


def target_bytes_for_bpp(bpp: float, height: int, width: int) -> float:
    """The file size (bytes) of ``bpp`` bits per pixel for an image of this size."""
    return bpp * height * width / 8.0


def compress_to_target(model, image, target_bytes: float, tolerance: float = DEFAULT_TOLERANCE,
                       max_tries: int = MAX_TRIES, refine_steps: int = 0) -> RateControlResult:
    """Compresses ``image`` (uint8 [H, W, 3]) to about ``target_bytes`` bytes.

    With ``refine_steps`` > 0 the file is a refined one (``image_coding.compress_image``): the search
    runs on plain files first (fast), then continues on refined files from the lambda it
    found (refinement moves the size by a few per cent at a given lambda), with secant steps
    on log(size) against log(lambda), starting from the slope the plain search measured,
    at most ``MAX_REFINED_TRIES`` refinements. ``tries`` counts both kinds.

    Raises:
      ValueError: non-positive or non-finite target, or a bad image.
    """
    if not (math.isfinite(target_bytes) and target_bytes > 0):
        raise ValueError(f"the target size must be a positive number of bytes, got {target_bytes}")
    codec = codec_lib.as_codec(model)
    image = codec_lib.check_image(image)
    plain = _Search(codec, image, target_bytes, tolerance, refine_steps=0)
    plain.run(max_tries)
    if not refine_steps:
        return plain.result()
    refined = _Search(codec, image, target_bytes, tolerance, refine_steps)
    refined.continue_from(plain, MAX_REFINED_TRIES)
    return refined.result(extra_tries=len(plain.tries))


MAX_REFINED_TRIES = 4
_TYPICAL_SLOPE = 0.5  # d log(size) / d log(lambda) of the shipped models, mid-range


class _Search:
    """Tries of one kind of file (plain or refined): (lambda, log(size / target), data)."""

    def __init__(self, codec, image, target_bytes, tolerance, refine_steps):
        self.codec, self.image, self.target_bytes = codec, image, target_bytes
        self.tolerance, self.refine_steps = tolerance, refine_steps
        self.low, self.high = codec.lambda_range
        self.tries: list[tuple[float, float, bytes]] = []
        self.reason = ""

    def attempt(self, log_lam: float) -> float:
        lam = float(np.exp(log_lam))
        data = image_coding.compress_image(self.codec, self.image, lam, refine_steps=self.refine_steps)
        self.tries.append((lam, math.log(len(data) / self.target_bytes), data))
        return self.tries[-1][1]

    def close_enough(self, f: float) -> bool:
        return abs(math.exp(f) - 1.0) <= self.tolerance

    def result(self, extra_tries: int = 0) -> RateControlResult:
        lam, f, data = min(self.tries, key=lambda t: abs(math.exp(t[1]) - 1.0))
        met = self.close_enough(f)
        return RateControlResult(data, lam, self.target_bytes, met, len(self.tries) + extra_tries,
                                 "" if met else self.reason)

    def run(self, max_tries: int) -> None:
        """Safeguarded false position (Illinois) over the whole trained range."""
        low, high = self.low, self.high
        t_lo, t_hi = math.log(low), math.log(high)
        f_lo = self.attempt(t_lo)
        if self.close_enough(f_lo) or low == high:
            self.reason = f"a single-lambda model reaches only {len(self.tries[-1][2])} bytes"
            return
        if f_lo > 0:
            self.reason = f"the smallest file this model makes (lambda {low:g}) is larger than the target"
            return
        f_hi = self.attempt(t_hi)
        if self.close_enough(f_hi):
            return
        if f_hi < 0:
            self.reason = f"the largest file this model makes (lambda {high:g}) is smaller than the target"
            return
        side = 0
        while len(self.tries) < max_tries:
            t = t_lo - f_lo * (t_hi - t_lo) / (f_hi - f_lo)
            if not t_lo < t < t_hi:
                t = 0.5 * (t_lo + t_hi)
            f = self.attempt(t)
            if self.close_enough(f):
                return
            if f < 0:
                t_lo, f_lo = t, f
                if side == -1:
                    f_hi *= 0.5  # Illinois: stop the same end from being kept forever
                side = -1
            else:
                t_hi, f_hi = t, f
                if side == 1:
                    f_lo *= 0.5
                side = 1
            if t_hi - t_lo < 1e-6:
                break
        self.reason = ("no lambda gives a size within the tolerance (the size changes in steps here); "
                       "this is the closest")

    def continue_from(self, plain: "_Search", max_tries: int) -> None:
        """Secant steps from the lambda ``plain`` chose (see :func:`compress_to_target`)."""
        t_min, t_max = math.log(self.low), math.log(self.high)
        t = math.log(plain.result().lam)
        slope = _slope_near(plain.tries, t)
        f = self.attempt(t)
        while not self.close_enough(f) and len(self.tries) < max_tries:
            t_next = min(max(t - f / slope, t_min), t_max)
            if t_next == t:  # at an end of the range, still too small or too large
                self.reason = plain.reason or "the target lies outside what this model reaches"
                return
            f_next = self.attempt(t_next)
            if (f_next - f) / (t_next - t) > 0:
                slope = (f_next - f) / (t_next - t)
            t, f = t_next, f_next
        if not self.close_enough(f):
            self.reason = plain.reason or f"no refined file within the tolerance after {len(self.tries)} tries"


def _slope_near(tries, t: float) -> float:
    """d log(size) / d log(lambda) between the two tries nearest ``t`` (positive), or a
    typical value when they cannot tell."""
    points = sorted((abs(math.log(lam) - t), math.log(lam), f) for lam, f, _ in tries)[:2]
    if len(points) == 2 and points[0][1] != points[1][1]:
        slope = (points[0][2] - points[1][2]) / (points[0][1] - points[1][1])
        if slope > 0:
            return slope
    return _TYPICAL_SLOPE
