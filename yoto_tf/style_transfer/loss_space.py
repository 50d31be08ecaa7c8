"""The loss space of adjustable style transfer: the knobs a user turns at inference time.

Babaeizadeh & Ghiasi ("Adjustable Real-time Style Transfer", ICLR 2020) condition the
network on one weight per content layer and per style layer. Here lambda has 7 columns:

====================  ==========================================  ===============  =======
name                  loss term it weights                        range (log-unif) default
====================  ==========================================  ===============  =======
``content``           feature reconstruction at VGG block3 conv3  [0.1, 10]        1
``style_block1``      Gram loss at VGG ``block1_conv1``           [0.01, 1]        0.1
``style_block2``      Gram loss at VGG ``block2_conv1``           [0.01, 1]        0.1
``style_block3``      Gram loss at VGG ``block3_conv1``           [0.01, 1]        0.1
``style_block4``      Gram loss at VGG ``block4_conv1``           [0.01, 1]        0.1
``style_block5``      Gram loss at VGG ``block5_conv1``           [0.01, 1]        0.1
``tv``                total variation of the output               [0.001, 0.1]     0.01
====================  ==========================================  ===============  =======

The model trains with ``normalize_terms=True``: every term is divided by its running mean,
so the knobs are RELATIVE weights (as in the paper) rather than the absolute literature
values (content 1, style 1e-4 .. 5e-4 per layer, TV 1e4 for Magenta's un-normalized
losses), whose meaning depends on the VGG weights and on how the Gram matrix is scaled.
With normalized terms, the default (content 1, five style layers at 0.1, TV 0.01) puts half
of the loss on content and half on style at the running averages, a light TV smoothing on
top; each range spans 10x either way around its default.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from yoto_tf.coefficients import Coefficient, LossSpace

CONTENT = "content"
TOTAL_VARIATION = "tv"
STYLE_NAMES = tuple(f"style_block{i}" for i in range(1, 6))
"""Names of the per-layer style weights, shallow (fine texture) to deep (large patterns)."""

DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 0.1
DEFAULT_TV_WEIGHT = 0.01
RANGE_FACTOR = 10.0
"""Every coefficient ranges over [default / RANGE_FACTOR, default * RANGE_FACTOR]."""


def _around(name: str, default: float) -> Coefficient:
    return Coefficient(
        name, default / RANGE_FACTOR, default * RANGE_FACTOR, "log_uniform", default=default
    )


def style_transfer_loss_space() -> LossSpace:
    """The 7-coefficient LossSpace of the module docstring: content, 5 style layers, tv."""
    return LossSpace(
        [_around(CONTENT, DEFAULT_CONTENT_WEIGHT)]
        + [_around(name, DEFAULT_STYLE_WEIGHT) for name in STYLE_NAMES]
        + [_around(TOTAL_VARIATION, DEFAULT_TV_WEIGHT)]
    )


def style_names(space: LossSpace) -> tuple[str, ...]:
    """The style-weight coefficient names of ``space`` (those starting with ``style``)."""
    names = tuple(name for name in space.names if name.startswith("style"))
    if not names:
        raise ValueError(f"{space!r} has no style weights (no coefficient named style*).")
    return names


def strength_range(space: LossSpace, base: np.ndarray | None = None) -> tuple[float, float]:
    """The allowed ``strength`` factors for :func:`with_strength` around ``base``.

    A strength ``s`` multiplies every style weight of ``base`` by ``s``; it is allowed when
    every product stays inside its coefficient's range.
    """
    base = space.default() if base is None else space.validate(base)
    idx = [space.index(name) for name in style_names(space)]
    weights = base[idx].astype(np.float64)
    low = float(np.max(space.low[idx] / weights))
    high = float(np.min(space.high[idx] / weights))
    return low, high


def with_strength(space: LossSpace, strength: float, base: np.ndarray | None = None) -> np.ndarray:
    """lambda [k]: ``base`` (default: the defaults) with every style weight times ``strength``.

    The single "how much style" knob: 1 keeps ``base``; 2 doubles all style weights;
    content and TV weights are unchanged.

    Raises:
      ValueError: ``strength`` would push a style weight out of its range; the message gives
        the allowed strength interval.
    """
    base = space.default() if base is None else space.validate(base)
    low, high = strength_range(space, base)
    tol = 1e-6 * high
    if not np.isfinite(strength) or not low - tol <= strength <= high + tol:
        raise ValueError(
            f"strength {strength:g} is outside its allowed range [{low:.4g}, {high:.4g}] "
            f"for these style weights ({', '.join(style_names(space))} must stay in their "
            "ranges)."
        )
    lam = np.array(base, np.float32)
    for name in style_names(space):
        lam[space.index(name)] *= strength
    return space.validate(lam, clip=True)


def strength_grid(
    space: LossSpace, num: int, base: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``num`` log-spaced strengths over the allowed range and their lambdas [num, k]."""
    low, high = strength_range(space, base)
    strengths = np.geomspace(low, high, num)
    return strengths, np.stack([with_strength(space, s, base) for s in strengths])


def lambda_from_values(
    space: LossSpace,
    content_weight: float | None = None,
    style_weights: Sequence[float] | None = None,
    tv_weight: float | None = None,
    strength: float | None = None,
) -> np.ndarray:
    """A validated lambda [k] from user-facing knob values (unset ones keep their defaults).

    ``style_weights`` gives one value per style layer, in :func:`style_names` order;
    ``strength`` is applied last and multiplies them all.

    Raises:
      ValueError: wrong number of style weights, or a value outside its range (the message
        names the coefficient and the range).
    """
    lam = space.default()
    if content_weight is not None:
        lam[space.index(CONTENT)] = content_weight
    if tv_weight is not None:
        lam[space.index(TOTAL_VARIATION)] = tv_weight
    if style_weights is not None:
        names = style_names(space)
        if len(style_weights) != len(names):
            raise ValueError(
                f"Expected {len(names)} style weights ({', '.join(names)}), got "
                f"{len(style_weights)}: {list(style_weights)}."
            )
        for name, value in zip(names, style_weights):
            lam[space.index(name)] = value
    lam = space.validate(lam)
    if strength is not None:
        lam = with_strength(space, strength, lam)
    return lam
