"""Evidence that the knobs work: loss terms at a FIXED reference weighting along a sweep, and
how much of a photo's structure survives stylization (edge correlation)."""

from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops
from scipy import ndimage

from yoto_tf.style_transfer.inference import stylize
from yoto_tf.style_transfer.lambda_maps import lambda_map, stylize_with_map
from yoto_tf.style_transfer.loss_space import CONTENT, strength_grid, style_names, with_strength
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.transformer import IMAGE_INPUT, LAMBDA_INPUT, STYLE_INPUT
from yoto_tf.layers import find_loss_space


@dataclasses.dataclass
class StrengthSweep:
    """Measured losses of one network along the style-strength knob.

    Attributes:
      strengths: [S] the strength factors (style weights = defaults x strength).
      style_loss: [S] sum over style layers of the layer's loss divided by its reference
        scale, averaged over the images (the same fixed weighting for every setting).
      content_loss: [S] content loss divided by its reference scale, averaged over images.
      output_change: [S - 1] mean absolute pixel difference between consecutive settings.
    """

    strengths: np.ndarray
    style_loss: np.ndarray
    content_loss: np.ndarray
    output_change: np.ndarray

    def table(self) -> str:
        rows = ["strength  style_loss  content_loss  mean|d output| vs previous"]
        for i, s in enumerate(self.strengths):
            change = f"{self.output_change[i - 1]:.4f}" if i else "-"
            rows.append(f"{s:8.3g}  {self.style_loss[i]:10.4f}  {self.content_loss[i]:12.4f}  {change}")
        return "\n".join(rows)


def strength_sweep(
    network,
    losses: StyleTransferLoss,
    images: np.ndarray,
    num: int = 5,
    reference_scales: dict[str, float] | None = None,
    style_index: int = 0,
) -> StrengthSweep:
    """Stylizes ``images`` at ``num`` strengths and measures every loss term.

    Args:
      network: a trained transformer.
      losses: the loss layer it was trained with (same styles, same VGG weights).
      images: float32 [N, H, W, 3] in [0, 1].
      num: number of log-spaced strengths over the allowed range.
      reference_scales: ``{term name: scale}`` the terms are divided by (e.g. a trained
        StyleTransferModel's running means, ``dict(zip(names, model.term_means))``); by
        default each term's mean over the whole sweep.
      style_index: which style of a multi-style network.
    """
    space = find_loss_space(network)
    strengths, lams = strength_grid(space, num)
    n = len(images)
    terms, outputs = [], []
    for lam in lams:
        feed = {IMAGE_INPUT: images, LAMBDA_INPUT: np.tile(lam[None], (n, 1))}
        if STYLE_INPUT in [t.name for t in network.inputs]:
            feed[STYLE_INPUT] = np.full((n,), style_index, np.int32)
        out = network(feed, training=False)
        inputs = {IMAGE_INPUT: images, STYLE_INPUT: np.full((n,), style_index, np.int32)}
        values = losses(inputs, out)
        terms.append({k: ops.convert_to_numpy(v).mean() for k, v in values.items()})
        outputs.append(ops.convert_to_numpy(out))
    if reference_scales is None:
        reference_scales = {k: np.mean([t[k] for t in terms]) for k in terms[0]}
    style = np.array([sum(t[k] / reference_scales[k] for k in style_names(space)) for t in terms])
    content = np.array([t[CONTENT] / reference_scales[CONTENT] for t in terms])
    change = np.array([np.abs(a - b).mean() for a, b in zip(outputs[1:], outputs[:-1])])
    return StrengthSweep(strengths, style, content, change)


def _edge_magnitude(image: np.ndarray) -> np.ndarray:
    grey = np.asarray(image, np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=-1)
    return np.hypot(ndimage.sobel(grey, axis=0), ndimage.sobel(grey, axis=1))


def edge_correlation(photo: np.ndarray, stylized: np.ndarray) -> float:
    """Pearson correlation of the Sobel edge magnitudes of two images of the same size.

    A measure of how much of the photo's structure the stylized image keeps: about 0.5-0.7 for
    a model trained with ImageNet VGG features, near 0 for coloured blobs.

    Args:
      photo, stylized: [H, W, 3] (or [H, W]) arrays on the same scale (uint8 or [0, 1]).
    """
    if np.shape(photo)[:2] != np.shape(stylized)[:2]:
        raise ValueError(f"Images differ in size: {np.shape(photo)} vs {np.shape(stylized)}.")
    a, b = _edge_magnitude(photo).ravel(), _edge_magnitude(stylized).ravel()
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclasses.dataclass
class StrengthRow:
    """Measurements at one strength, averaged over images.

    Attributes:
      strength: the factor on every style weight (1 = the model's defaults).
      edge_correlation: :func:`edge_correlation` of photo and output (structure kept).
      content_loss: the raw content term (VGG feature MSE at the content layer).
      style_loss: the raw style terms summed over the five style layers (Gram MSE).
    """

    strength: float
    edge_correlation: float
    content_loss: float
    style_loss: float


def evaluate_strengths(
    network,
    losses: StyleTransferLoss,
    images: list[np.ndarray],
    strengths: list[float],
    style_index: int = 0,
) -> list[StrengthRow]:
    """Stylizes every image at every strength and measures it with ``losses`` (the judge).

    Args:
      network: a trained transformer.
      losses: the loss layer to measure with; its style ``style_index`` must be the painting
        the network's ``style_index`` was trained on.
      images: uint8 [H, W, 3] photos (sizes may differ; each is stylized whole).
      strengths: the strength factors (each validated against the model's range).
    """
    space = find_loss_space(network)
    rows = []
    for strength in strengths:
        lam = with_strength(space, strength)
        edges, content, style = [], [], []
        for photo in images:
            out = stylize(network, photo, lam, style_index)
            edges.append(edge_correlation(photo, out))
            inputs = {IMAGE_INPUT: (photo[None] / 255.0).astype(np.float32),
                      STYLE_INPUT: np.full((1,), style_index, np.int32)}
            terms = losses(inputs, out[None].astype(np.float32))
            terms = {k: float(ops.convert_to_numpy(v)[0]) for k, v in terms.items()}
            content.append(terms[CONTENT])
            style.append(sum(terms[name] for name in style_names(space)))
        rows.append(StrengthRow(strength, float(np.mean(edges)), float(np.mean(content)),
                                float(np.mean(style))))
    return rows


def strength_table(rows: list[StrengthRow]) -> str:
    """A Markdown table of :func:`evaluate_strengths` rows."""
    lines = ["| strength | edge correlation | content loss | style loss |", "|---|---|---|---|"]
    lines += [f"| {r.strength:g} | {r.edge_correlation:.3f} | {r.content_loss:.4g} | "
              f"{r.style_loss:.4g} |" for r in rows]
    return "\n".join(lines)


@dataclasses.dataclass
class SplitMapResult:
    """A left/right strength map (left = ``low``, right = ``high``) vs the two uniform outputs.

    Attributes:
      left_error, right_error: mean |map output - uniform output| of each half (pixels
        further than ``margin`` from the edge), with the uniform output of that half's strength.
      uniform_difference: mean |uniform high - uniform low| over the image (the scale the
        errors compare with).
      left_position, right_position: where each half lies between the two uniform outputs,
        0 = the low strength's, 1 = the high's (the projection of map output - uniform low
        onto uniform high - uniform low, over the half's pixels beyond ``margin``): a sharp
        map gives about 0 on the left and 1 on the right; a washed-out strong half stays
        well below 1.
      column_positions: [W] the same projection per column, smoothed over 8 columns.
      transition_px: the width of the change at the edge: from the first column left of the
        edge whose smoothed position falls below a quarter of the way from the left half's
        position to the right half's, to the first column right of it above three quarters.
      edge_band_ratio: mean error to the own side's uniform output within ``margin`` pixels
        of the edge, divided by that of the rest (1 = no seam; a dark or bright band along
        the edge raises it).
    """

    left_error: float
    right_error: float
    uniform_difference: float
    left_position: float
    right_position: float
    column_positions: np.ndarray
    transition_px: int
    edge_band_ratio: float

    def row(self) -> dict:
        """The scalars, the errors also relative to the uniform difference."""
        return {
            "left_error": self.left_error, "right_error": self.right_error,
            "uniform_difference": self.uniform_difference,
            "left_relative_error": self.left_error / self.uniform_difference,
            "right_relative_error": self.right_error / self.uniform_difference,
            "left_position": self.left_position, "right_position": self.right_position,
            "transition_px": self.transition_px, "edge_band_ratio": self.edge_band_ratio,
        }


def split_map_evidence(network, map_network, photo, low: float, high: float,
                       style_index: int = 0, margin: int = 16) -> SplitMapResult:
    """Stylizes ``photo`` (wider than ``4 * margin``) with a sharp left/right strength map in
    one pass of ``map_network`` and at both uniform strengths with ``network``."""
    space = find_loss_space(network)
    height, width = np.shape(photo)[:2]
    edge = width // 2
    strengths = np.where(np.arange(width)[None, :] < edge, low, high) * np.ones((height, 1))
    mapped = stylize_with_map(map_network, photo, lambda_map(space, strengths.astype(np.float32)),
                              style_index)
    uniform = {s: stylize(network, photo, with_strength(space, s), style_index) for s in (low, high)}
    left = np.arange(width)[None, :, None] < edge
    error = np.abs(mapped - np.where(left, uniform[low], uniform[high]))
    direction = uniform[high] - uniform[low]
    offset = mapped - uniform[low]

    def position(columns: slice) -> float:
        step = direction[:, columns]
        return float(np.sum(offset[:, columns] * step) / max(np.sum(step * step), 1e-12))

    left_position = position(slice(None, edge - margin))
    right_position = position(slice(edge + margin, None))
    per_column = np.sum(offset * direction, axis=(0, 2)) / np.maximum(np.sum(direction ** 2, axis=(0, 2)), 1e-12)
    smoothed = np.convolve(per_column, np.ones(8) / 8, mode="same")
    rise = (smoothed - left_position) / (right_position - left_position or 1e-12)
    below = np.nonzero(rise[:edge] < 0.25)[0]
    above = np.nonzero(rise[edge:] > 0.75)[0]
    transition = (edge - (below[-1] + 1) if len(below) else edge) + (above[0] if len(above) else width - edge)
    band = np.abs(np.arange(width) - edge + 0.5) < margin
    return SplitMapResult(
        left_error=float(error[:, : edge - margin].mean()),
        right_error=float(error[:, edge + margin :].mean()),
        uniform_difference=float(np.abs(direction).mean()),
        left_position=left_position,
        right_position=right_position,
        column_positions=smoothed,
        transition_px=int(transition),
        edge_band_ratio=float(error[:, band].mean() / max(error[:, ~band].mean(), 1e-12)),
    )
