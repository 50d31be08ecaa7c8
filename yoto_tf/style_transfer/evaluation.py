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
      bleed_px: how far (pixels) from the edge the change reaches: columns where the map output
        is closer to the OTHER side's uniform output than 90 % of the way to its own.
      columns_error: [W] per column, the mean |map output - own-side uniform output|.
    """

    left_error: float
    right_error: float
    uniform_difference: float
    bleed_px: int
    columns_error: np.ndarray


def split_map_evidence(network, map_network, photo, low: float, high: float,
                       style_index: int = 0, margin: int = 16) -> SplitMapResult:
    """Stylizes ``photo`` with a sharp left/right strength map and both uniform strengths."""
    space = find_loss_space(network)
    height, width = np.shape(photo)[:2]
    edge = width // 2
    strengths = np.where(np.arange(width)[None, :] < edge, low, high) * np.ones((height, 1))
    mapped = stylize_with_map(map_network, photo, lambda_map(space, strengths.astype(np.float32)),
                              style_index)
    uniform = {s: stylize(network, photo, with_strength(space, s), style_index) for s in (low, high)}
    own = np.where(np.arange(width)[None, :, None] < edge, uniform[low], uniform[high])
    other = np.where(np.arange(width)[None, :, None] < edge, uniform[high], uniform[low])
    error = np.abs(mapped - own)
    columns = error.mean(axis=(0, 2))
    between = np.abs(own - other).mean(axis=(0, 2)) + 1e-6
    bleeding = np.nonzero(columns > 0.1 * between)[0]
    bleed = int(np.max(np.abs(bleeding - edge + 0.5)) + 0.5) if len(bleeding) else 0
    return SplitMapResult(
        left_error=float(error[:, : edge - margin].mean()),
        right_error=float(error[:, edge + margin :].mean()),
        uniform_difference=float(np.abs(uniform[high] - uniform[low]).mean()),
        bleed_px=bleed,
        columns_error=columns,
    )
