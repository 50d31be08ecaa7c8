"""The learned model against WebP at the same file size, image by image.

For each image and target rate, the model compresses with rate control
(:func:`yoto_tf.compression.rate_control.compress_to_target`, a real file) and WebP's PSNR is
read off that image's own WebP rate-PSNR curve at the very bpp the model's file reached.
The table behind ``python -m trainers.evaluate_compression --target_bpps`` (``matched_rate.csv``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from yoto_tf.compression.baselines import encode_decode
from yoto_tf.compression.evaluation import LearnedCodec, format_or_dash, mean_or_none
from yoto_tf.compression.image_coding import decompress_image
from yoto_tf.compression.metrics import psnr
from yoto_tf.compression.rate_control import compress_to_target, target_bytes_for_bpp

MATCHED_FIELDS = ("image", "target_bpp", "lambda", "bpp", "psnr", "webp_psnr", "psnr_gain_db", "target_met")
WEBP_CURVE_QUALITIES = tuple(range(0, 101, 2))


def webp_curve(image: np.ndarray, qualities: Sequence[int] = WEBP_CURVE_QUALITIES):
    """WebP's (Pillow) rate-PSNR curve of ``image``: (bpp, PSNR) float arrays [Q], sorted by
    rate, PSNR made non-decreasing (the best quality reachable at or below each rate)."""
    points = sorted((encode.bpp, psnr(image, encode.reconstruction))
                    for encode in (encode_decode(image, "webp", q) for q in qualities))
    rates, quality = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    return rates, np.maximum.accumulate(quality)


def psnr_on_curve(curve, bpp: float) -> float | None:
    """PSNR at ``bpp`` interpolated linearly on a :func:`webp_curve`; None outside its rates."""
    rates, quality = curve
    if not rates[0] <= bpp <= rates[-1]:
        return None
    return float(np.interp(bpp, rates, quality))


def webp_psnr_at(image: np.ndarray, bpp: float, qualities: Sequence[int] = WEBP_CURVE_QUALITIES) -> float | None:
    """WebP's PSNR on ``image`` at ``bpp`` bits per pixel, interpolated linearly on that
    image's own WebP rate-PSNR curve (Pillow, the given qualities); None if ``bpp`` lies
    outside the rates WebP reaches on this image."""
    return psnr_on_curve(webp_curve(image, qualities), bpp)


def matched_rate_comparison(codec: LearnedCodec, images, target_bpps: Sequence[float],
                            log: Callable[[str], None] = print) -> list[dict]:
    """One row per (image, target bpp): the model compressed with rate control to the target
    (``rate_control.compress_to_target``, real file), decoded, and WebP's PSNR at the very
    bpp the model's file reached (:func:`webp_psnr_at`). ``psnr_gain_db`` > 0: the model wins.
    Each image's WebP curve is encoded once, for all targets."""
    webp_curves = {name: webp_curve(image) for name, image in images}
    rows = []
    for target in target_bpps:
        for name, image in images:
            height, width = image.shape[:2]
            result = compress_to_target(codec.model, image, target_bytes_for_bpp(target, height, width),
                                        refine_steps=codec.refine_steps)
            bpp = len(result.data) * 8.0 / (height * width)
            quality = psnr(image, decompress_image(codec.model, result.data))
            webp = psnr_on_curve(webp_curves[name], bpp)
            rows.append({
                "image": name, "target_bpp": float(target), "lambda": result.lam, "bpp": bpp,
                "psnr": quality, "webp_psnr": webp,
                "psnr_gain_db": None if webp is None else quality - webp, "target_met": result.met,
            })
        log("  " + matched_rate_text(codec.label, matched_rate_summary(rows[-len(images):])))
    return rows


def matched_rate_summary(rows: Sequence[dict]) -> list[dict]:
    """Per target bpp: mean bpp, mean PSNR of the model and of WebP, mean gain, images won."""
    summary = []
    for target in sorted({r["target_bpp"] for r in rows}):
        group = [r for r in rows if r["target_bpp"] == target]
        compared = [r for r in group if r["psnr_gain_db"] is not None]
        summary.append({
            "target_bpp": target, "num_images": len(group), "bpp": mean_or_none(r["bpp"] for r in group),
            "psnr": mean_or_none(r["psnr"] for r in compared), "webp_psnr": mean_or_none(r["webp_psnr"] for r in compared),
            "psnr_gain_db": mean_or_none(r["psnr_gain_db"] for r in compared),
            "images_won": sum(r["psnr_gain_db"] > 0 for r in compared), "images_compared": len(compared),
        })
    return summary


def matched_rate_text(label: str, summary: Sequence[dict]) -> str:
    """One line per target of :func:`matched_rate_summary`."""
    return "\n".join(
        f"{label} at {row['target_bpp']:g} bpp (real {format_or_dash(row['bpp'], '.3f')}): {format_or_dash(row['psnr'], '.2f')} dB "
        f"vs WebP {format_or_dash(row['webp_psnr'], '.2f')} dB at the same sizes ({format_or_dash(row['psnr_gain_db'], '+.2f')} dB); "
        f"better on {row['images_won']}/{row['images_compared']} images"
        for row in summary
    )
