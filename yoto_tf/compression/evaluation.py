"""Rate-distortion evaluation of learned compression models against JPEG and WebP.

The library side of ``python -m trainers.evaluate_compression``:

* measuring: :class:`Measurer` turns an image, its decoded version and the file size into
  one result row (real bpp, estimated bpp, PSNR, MS-SSIM, timings);
  :func:`evaluate_baseline` (JPEG / WebP via Pillow) and :func:`evaluate_learned` (a model
  at each of its lambdas, real bitstreams) produce those rows;
* aggregation: :func:`mean_rows` averages rows over images (rates and qualities are means
  of the per-image values, CompressAI's convention), :func:`curves` turns the means into
  one :class:`Curve` per codec (all fixed-lambda models as one curve);
* Bjontegaard deltas: :func:`bjontegaard_row` / :func:`bjontegaard_table` (BD-rate on PSNR
  and MS-SSIM, BD-PSNR), :func:`fixed_point_comparison` (the variable model's rate at each
  fixed-lambda model's PSNR); :func:`read_mean_curve` reads a curve back from the
  ``mean.csv`` of an earlier run (``python -m trainers.compare_rd_curves``);
* reporting: :func:`summary_text` and :func:`plot_rd_curves`.

PSNR, MS-SSIM and the Bjontegaard functions themselves are in :mod:`yoto_tf.compression.metrics`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from typing import Callable, Iterable, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the Agg backend)

from yoto_tf.compression.baselines import encode_decode
from yoto_tf.compression.image_coding import compress_image, decompress_image, estimate_bpp
from yoto_tf.compression.metrics import (
    MS_SSIM_MIN_SIZE,
    bd_psnr,
    bd_rate,
    ms_ssim,
    ms_ssim_db,
    overlap_range,
    psnr,
)
from yoto_tf.files import save_figure_atomically

RESULT_FIELDS = (
    "codec", "kind", "setting", "value", "image", "width", "height", "bytes", "bpp",
    "estimated_bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_seconds", "decode_seconds",
)
MEAN_FIELDS = ("codec", "kind", "setting", "value", "num_images") + RESULT_FIELDS[7:]
BD_FIELDS = (
    "test", "anchor", "bd_rate_psnr_percent", "bd_psnr_db", "bd_rate_ms_ssim_percent",
    "psnr_overlap_low", "psnr_overlap_high", "anchor_points", "test_points", "note",
)
FIXED_CURVE = "fixed-lambda models"


# --------------------------------------------------------------------------------------------
# A codec under evaluation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LearnedCodec:
    """A loaded compression model and the lambdas to evaluate it at.

    Attributes:
      label: short name used in tables and plots (the run directory's name).
      kind: "variable" (evaluated at each lambda) or "fixed" (at its trained lambda).
      path: the model file.
      model: the loaded codec (``load_compression_model``).
      lambdas: rate-distortion weights to evaluate (lambda * 255^2 * MSE + bpp).
      refine_steps: encode-time latent refinement steps (``compress_image``); 0 = off.
    """

    label: str
    kind: str
    path: str
    model: object
    lambdas: list[float]
    refine_steps: int = 0



# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


class Measurer:
    """Turns (image, decoded image, file bytes, timings) into one result row.

    Args:
      with_ms_ssim: compute MS-SSIM; images smaller than 161x161 get ``None`` (reported once).
      log: where notes go.
    """

    def __init__(self, with_ms_ssim: bool = True, log: Callable[[str], None] = print):
        self.with_ms_ssim = with_ms_ssim
        self.log = log
        self._too_small: set[str] = set()

    def row(self, *, codec, kind, setting, value, name, image, reconstruction, num_bytes,
            encode_seconds, decode_seconds, estimated_bpp=None) -> dict:
        if reconstruction.shape != image.shape:
            raise ValueError(
                f"{codec} ({setting} {value:g}) decoded {name} to shape {reconstruction.shape}, "
                f"expected {image.shape}"
            )
        height, width = image.shape[:2]
        quality = None
        if self.with_ms_ssim:
            if min(height, width) >= MS_SSIM_MIN_SIZE:
                quality = ms_ssim(image, reconstruction)
            elif name not in self._too_small:
                self._too_small.add(name)
                self.log(f"note: {name} is {width}x{height}, below {MS_SSIM_MIN_SIZE}px: no MS-SSIM")
        return {
            "codec": codec, "kind": kind, "setting": setting, "value": float(value), "image": name,
            "width": width, "height": height, "bytes": num_bytes,
            "bpp": num_bytes * 8.0 / (height * width),
            "estimated_bpp": None if estimated_bpp is None else float(estimated_bpp),
            "psnr": psnr(image, reconstruction),
            "ms_ssim": quality, "ms_ssim_db": None if quality is None else ms_ssim_db(quality),
            "encode_seconds": encode_seconds, "decode_seconds": decode_seconds,
        }


def evaluate_baseline(images, codec: str, qualities: Sequence[int], measurer: Measurer) -> list[dict]:
    """Rows for JPEG or WebP at each quality on each image."""
    rows = []
    for quality in qualities:
        for name, image in images:
            encoded = encode_decode(image, codec, quality)
            rows.append(measurer.row(
                codec=codec, kind="baseline", setting="quality", value=quality, name=name,
                image=image, reconstruction=encoded.reconstruction, num_bytes=len(encoded.data),
                encode_seconds=encoded.encode_seconds, decode_seconds=encoded.decode_seconds,
            ))
    return rows


def _warm_up(codec: LearnedCodec, images) -> None:
    """One untimed round trip per distinct image shape, so timings exclude graph tracing."""
    seen = set()
    for _, image in images:
        if image.shape not in seen:
            seen.add(image.shape)
            decompress_image(codec.model, compress_image(codec.model, image, codec.lambdas[0],
                                                         refine_steps=min(codec.refine_steps, 1)))


def evaluate_learned(codec: LearnedCodec, images, measurer: Measurer, estimate: bool = True,
                     log: Callable[[str], None] = print) -> list[dict]:
    """Rows for one model at each of its lambdas on each image (real bitstreams)."""
    _warm_up(codec, images)
    rows = []
    for lam in codec.lambdas:
        start = time.perf_counter()
        for name, image in images:
            try:
                t0 = time.perf_counter()
                data = compress_image(codec.model, image, lam, refine_steps=codec.refine_steps)
                t1 = time.perf_counter()
                reconstruction = decompress_image(codec.model, data)
                t2 = time.perf_counter()
                # A refined codec's estimate would refine a second time: left out.
                estimated = estimate_bpp(codec.model, image, lam) if estimate and not codec.refine_steps else None
            except ValueError as error:
                raise ValueError(f"{codec.label} at lambda {lam:g} on image {name}: {error}") from error
            rows.append(measurer.row(
                codec=codec.label, kind=codec.kind, setting="lambda", value=lam, name=name,
                image=image, reconstruction=np.asarray(reconstruction), num_bytes=len(data),
                encode_seconds=t1 - t0, decode_seconds=t2 - t1, estimated_bpp=estimated,
            ))
        mean = mean_rows(rows[-len(images):])[0]
        log(f"  {codec.label} lambda={lam:g}: {mean['bpp']:.4f} bpp, {mean['psnr']:.2f} dB "
            f"({time.perf_counter() - start:.1f} s)")
    return rows


# --------------------------------------------------------------------------------------------
# Aggregation and Bjontegaard deltas
# --------------------------------------------------------------------------------------------


def mean_or_none(values: Iterable) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def mean_rows(rows: Sequence[dict]) -> list[dict]:
    """Averages per-image rows over images, one row per (codec, kind, setting, value), in
    first-seen order. Rates and qualities are means of the per-image values (CompressAI's
    convention); PSNR is the mean of per-image PSNRs."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["codec"], row["kind"], row["setting"], row["value"]), []).append(row)
    means = []
    for (codec, kind, setting, value), group in groups.items():
        mean = {"codec": codec, "kind": kind, "setting": setting, "value": value, "num_images": len(group)}
        for field in MEAN_FIELDS[5:]:
            mean[field] = mean_or_none(row[field] for row in group)
        means.append(mean)
    return means


@dataclasses.dataclass
class Curve:
    """Mean RD points of one codec, sorted by rate."""

    name: str
    bpp: np.ndarray
    psnr: np.ndarray
    ms_ssim_db: np.ndarray | None  # None when any point lacks MS-SSIM

    @classmethod
    def from_means(cls, name: str, means: Sequence[dict]) -> "Curve":
        means = sorted(means, key=lambda m: m["bpp"])
        quality = [m["ms_ssim_db"] for m in means]
        return cls(
            name,
            np.array([m["bpp"] for m in means]),
            np.array([m["psnr"] for m in means]),
            None if any(q is None for q in quality) else np.array(quality),
        )


def curves(means: Sequence[dict]) -> dict[str, Curve]:
    """One curve per variable model and baseline; all fixed-lambda models as one curve."""
    grouped: dict[str, list[dict]] = {}
    for mean in means:
        grouped.setdefault(FIXED_CURVE if mean["kind"] == "fixed" else mean["codec"], []).append(mean)
    return {name: Curve.from_means(name, group) for name, group in grouped.items()}


def read_mean_curve(path: str, codec: str, values: tuple[float, float] | None = None) -> Curve:
    """The RD curve of ``codec`` from a ``mean.csv`` written by ``python -m
    trainers.evaluate_compression``, so that runs made apart (another session, another model)
    can be compared with :func:`bjontegaard_row`. The curves are those of :func:`curves`.

    Args:
      path: the ``mean.csv``.
      codec: a model's label (its name or run directory, as in the file), ``jpeg``, ``webp``,
        or ``FIXED_CURVE`` for all the file's fixed-lambda models as one curve.
      values: ``(low, high)``: keep only the points whose setting value (lambda for models,
        quality for JPEG / WebP) lies in this closed range; None keeps them all.

    Raises:
      ValueError: naming the file: unreadable or not a ``mean.csv``, no such codec (the
        message lists those present), or fewer than 2 points (in ``values``).
    """
    means = _read_means(path)
    present = curves(means)
    if codec not in present:
        raise ValueError(f"{path} has no codec {codec!r} (it has: {', '.join(sorted(present))})")
    if values is not None:
        low, high = values
        means = [m for m in means if low * (1 - 1e-9) <= m["value"] <= high * (1 + 1e-9)]
    curve = curves(means).get(codec)
    points = 0 if curve is None else len(curve.bpp)
    if points < 2:
        where = f" with a setting value in [{values[0]:g}, {values[1]:g}]" if values else ""
        raise ValueError(f"{path}: {codec!r} has {points} point(s){where}; a curve needs at least 2")
    return curve


def _read_means(path: str) -> list[dict]:
    """The rows of a ``mean.csv`` with the fields :func:`curves` uses (numbers as floats).

    Raises:
      ValueError: naming the file: unreadable, missing columns, or a field that is not a number.
    """
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    missing = {"codec", "kind", "value", "bpp", "psnr", "ms_ssim_db"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path} is not a mean.csv of trainers.evaluate_compression "
                         f"(missing columns: {', '.join(sorted(missing))})")
    try:
        return [{"codec": row["codec"], "kind": row["kind"], "value": float(row["value"]),
                 "bpp": float(row["bpp"]), "psnr": float(row["psnr"]),
                 "ms_ssim_db": float(row["ms_ssim_db"]) if row["ms_ssim_db"] else None} for row in rows]
    except ValueError as error:
        raise ValueError(f"{path}: a row is not numeric ({error})") from None


def bjontegaard_row(test: Curve, anchor: Curve) -> dict:
    """BD-rate (PSNR and MS-SSIM) and BD-PSNR of ``test`` vs ``anchor``; a failure (e.g. no
    overlapping quality range) is recorded in ``note`` rather than raised."""
    row = dict.fromkeys(BD_FIELDS)
    row.update(test=test.name, anchor=anchor.name, anchor_points=len(anchor.bpp), test_points=len(test.bpp))
    notes = []
    try:
        row["psnr_overlap_low"], row["psnr_overlap_high"] = overlap_range(anchor.psnr, test.psnr)
        row["bd_rate_psnr_percent"] = bd_rate(anchor.bpp, anchor.psnr, test.bpp, test.psnr)
        row["bd_psnr_db"] = bd_psnr(anchor.bpp, anchor.psnr, test.bpp, test.psnr)
    except ValueError as error:
        notes.append(f"PSNR: {error}")
    if test.ms_ssim_db is not None and anchor.ms_ssim_db is not None:
        try:
            row["bd_rate_ms_ssim_percent"] = bd_rate(anchor.bpp, anchor.ms_ssim_db, test.bpp, test.ms_ssim_db)
        except ValueError as error:
            notes.append(f"MS-SSIM: {error}")
    for curve in (test, anchor):
        order = np.argsort(curve.bpp)
        if np.any(np.diff(curve.psnr[order]) <= 0):
            notes.append(f"{curve.name}: PSNR does not rise with rate, the fit is unreliable")
    computed = row["bd_rate_psnr_percent"] is not None or row["bd_rate_ms_ssim_percent"] is not None
    if computed and min(row["anchor_points"], row["test_points"]) == 2:
        notes.append("a curve of 2 points: polynomial fit of degree 1 (a straight line)")
    row["note"] = "; ".join(notes) or None
    return row


def bjontegaard_table(all_curves: dict[str, Curve], reference: str | None = None) -> list[dict]:
    """Each variable model vs JPEG, WebP, the fixed-lambda curve and the ``reference`` model
    (e.g. the first of several, to compare recipes); the fixed-lambda curve vs JPEG and WebP;
    WebP vs JPEG. Curves of fewer than 2 points are left out."""
    usable = {name: curve for name, curve in all_curves.items() if len(curve.bpp) >= 2}
    anchors = ("jpeg", "webp", FIXED_CURVE) + ((reference,) if reference else ())
    pairs = [("webp", "jpeg")] + [
        (test, anchor)
        for test in usable if test not in ("jpeg", "webp")
        for anchor in anchors if anchor != test and not (test == FIXED_CURVE and anchor == reference)
    ]
    return [
        bjontegaard_row(usable[test], usable[anchor])
        for test, anchor in pairs if test in usable and anchor in usable
    ]


def fixed_point_comparison(means: Sequence[dict], all_curves: dict[str, Curve]) -> list[dict]:
    """For each fixed-lambda model and each variable model: the variable model's rate at the
    fixed model's PSNR (log-rate interpolated linearly in PSNR along the variable curve) as
    a percent change; ``None`` when the PSNR is outside the variable curve."""
    variable = [c for c in all_curves.values() if c.name not in ("jpeg", "webp", FIXED_CURVE)]
    rows = []
    for mean in (m for m in means if m["kind"] == "fixed"):
        for curve in variable:
            order = np.argsort(curve.psnr)
            psnrs, log_rates = curve.psnr[order], np.log(curve.bpp[order])
            change = None
            if len(psnrs) >= 2 and psnrs[0] <= mean["psnr"] <= psnrs[-1]:
                rate = math.exp(np.interp(mean["psnr"], psnrs, log_rates))
                change = 100.0 * (rate / mean["bpp"] - 1.0)
            rows.append({
                "fixed_model": mean["codec"], "lambda": mean["value"], "fixed_bpp": mean["bpp"],
                "fixed_psnr": mean["psnr"], "variable_model": curve.name,
                "variable_rate_change_percent_at_equal_psnr": change,
            })
    return rows


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def plot_rd_curves(path: str, all_curves: dict[str, Curve], title: str) -> None:
    """PSNR and MS-SSIM (dB) against bpp; baselines dashed, fixed-lambda models as stars."""
    has_ms_ssim = any(c.ms_ssim_db is not None for c in all_curves.values())
    figure, axes = plt.subplots(1, 2 if has_ms_ssim else 1, figsize=(13 if has_ms_ssim else 7, 5), squeeze=False)
    panels = [("psnr", "PSNR (dB)")] + ([("ms_ssim_db", "MS-SSIM (dB)")] if has_ms_ssim else [])
    styles = {"jpeg": dict(ls="--", marker="s", color="0.45"), "webp": dict(ls="--", marker="^", color="0.7"),
              FIXED_CURVE: dict(ls=":", marker="*", markersize=12, color="tab:red")}
    learned = [c.bpp.max() for n, c in all_curves.items() if n not in ("jpeg", "webp")]
    # With learned codecs, zoom on their rates; baselines' high-quality points fall outside.
    max_bpp = 1.25 * max(learned) if learned else max(c.bpp.max() for c in all_curves.values())
    for axis, (field, label) in zip(axes[0], panels):
        visible = []
        for name, curve in all_curves.items():
            quality = getattr(curve, field)
            if quality is not None:
                axis.plot(curve.bpp, quality, label=name, **styles.get(name, dict(marker="o")))
                visible += list(quality[curve.bpp <= max_bpp])
        axis.set_xlim(0, max_bpp)
        if visible:
            margin = 0.05 * (max(visible) - min(visible)) + 0.1
            axis.set_ylim(min(visible) - margin, max(visible) + margin)
        axis.set_xlabel("bits per pixel (real file size)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure_atomically(figure, path, dpi=120)
    plt.close(figure)


def format_or_dash(value, spec: str) -> str:
    """``format(value, spec)``, or a dash of the same width for a missing value."""
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def _percent(value, width: int) -> str:
    return "-".rjust(width) if value is None else f"{value:+{width - 1}.2f}%"


def summary_text(means: Sequence[dict], bd_rows: Sequence[dict], fixed_rows: Sequence[dict]) -> str:
    names = [m["codec"] for m in means] + [r[k] for r in bd_rows for k in ("test", "anchor")]
    w = max([22] + [len(name) for name in names])  # the codec column fits the longest label
    lines = [f"{'codec':<{w}} {'setting':>14} {'bpp':>7} {'est.bpp':>7} {'PSNR':>6} "
             f"{'MS-SSIM':>7} {'enc s':>7} {'dec s':>7}"]
    for m in means:
        setting = f"{'lam' if m['setting'] == 'lambda' else 'q'}={m['value']:g}"
        lines.append(
            f"{m['codec']:<{w}} {setting:>14} {m['bpp']:7.4f} {format_or_dash(m['estimated_bpp'], '7.4f')} "
            f"{m['psnr']:6.2f} {format_or_dash(m['ms_ssim'], '7.4f')} {m['encode_seconds']:7.3f} "
            f"{m['decode_seconds']:7.3f}"
        )
    if bd_rows:
        lines += ["", f"{'test':<{w}} {'anchor':<{w}} {'BD-rate PSNR':>12} {'BD-PSNR':>8} {'BD-rate MS-SSIM':>15}"]
        for row in bd_rows:
            lines.append(
                f"{row['test']:<{w}} {row['anchor']:<{w}} {_percent(row['bd_rate_psnr_percent'], 12)} "
                f"{format_or_dash(row['bd_psnr_db'], '+8.3f')} {_percent(row['bd_rate_ms_ssim_percent'], 15)}"
                + (f"  ({row['note']})" if row["note"] else "")
            )
    for row in fixed_rows:
        change = row["variable_rate_change_percent_at_equal_psnr"]
        lines.append(
            f"{row['variable_model']} vs {row['fixed_model']} (lambda {row['lambda']:g}, "
            f"{row['fixed_psnr']:.2f} dB): "
            + ("its PSNR is outside the variable model's curve" if change is None
               else f"variable model's rate {change:+.2f}% at equal PSNR")
        )
    return "\n".join(lines)
