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

    ``refine_steps`` > 0 refines the latents at every try (``codec.compress_image``), so the
    size searched is the refined file's; the search then costs ``tries`` refinements.

    Raises:
      ValueError: non-positive or non-finite target, or a bad image.
    """
    if not (math.isfinite(target_bytes) and target_bytes > 0):
        raise ValueError(f"the target size must be a positive number of bytes, got {target_bytes}")
    codec = codec_lib.as_codec(model)
    image = codec_lib.check_image(image)
    low, high = codec.lambda_range
    tries = []  # (log_lambda, f, data)

    def attempt(log_lam):
        lam = float(np.exp(log_lam))
        data = codec_lib.compress_image(codec, image, lam, refine_steps=refine_steps)
        tries.append((lam, math.log(len(data) / target_bytes), data))
        return tries[-1][1]

    def result(reason=""):
        lam, f, data = min(tries, key=lambda t: abs(math.exp(t[1]) - 1.0))
        met = abs(len(data) / target_bytes - 1.0) <= tolerance
        return RateControlResult(data, lam, target_bytes, met, len(tries), "" if met else reason)

    def close_enough(f):
        return abs(math.exp(f) - 1.0) <= tolerance

    t_lo, t_hi = math.log(low), math.log(high)
    f_lo = attempt(t_lo)
    if close_enough(f_lo) or low == high:
        return result(f"a single-lambda model reaches only {len(tries[-1][2])} bytes")
    if f_lo > 0:
        return result(f"the smallest file this model makes (lambda {low:g}) is larger than the target")
    f_hi = attempt(t_hi)
    if close_enough(f_hi):
        return result()
    if f_hi < 0:
        return result(f"the largest file this model makes (lambda {high:g}) is smaller than the target")
    side = 0
    while len(tries) < max_tries:
        t = t_lo - f_lo * (t_hi - t_lo) / (f_hi - f_lo)
        if not t_lo < t < t_hi:
            t = 0.5 * (t_lo + t_hi)
        f = attempt(t)
        if close_enough(f):
            return result()
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
    return result(
        "no lambda gives a size within the tolerance (the size changes in steps here); "
        "this is the closest"
    )
