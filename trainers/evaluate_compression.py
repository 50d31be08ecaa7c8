r"""Rate-distortion evaluation of learned compression models against JPEG and WebP.

Every image is really compressed to a file's bytes and decoded back, for each model at
each lambda, each fixed-lambda model at its trained lambda, and JPEG / WebP (Pillow) at
each quality. Written to ``--out_dir``:

* ``per_image.csv``: one row per (codec, setting, image): real bpp (file bytes * 8 /
  pixels), the model's estimated bpp, PSNR, MS-SSIM, encode / decode seconds;
* ``mean.csv``: the same averaged over images, one row per (codec, setting);
* ``bd_rate.csv``: Bjontegaard deltas of each model (and of the fixed-lambda models as
  one curve) against JPEG, WebP and the fixed-lambda models;
* ``results.json``: all of the above plus the configuration;
* ``rd_curves.png``: PSNR and MS-SSIM (dB) against bpp.

Usage::

    python -m trainers.evaluate_compression --models runs/vbr/model.keras \
        --fixed_models runs/q1/model.keras,runs/q3/model.keras,runs/q5/model.keras \
        --images ../shared/data/kodak --lambdas 0.0018,0.0067,0.013,0.0483,0.18 \
        --out_dir runs/eval_kodak
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from typing import Callable, Iterable, Sequence

import matplotlib
import numpy as np
from absl import app, flags

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402  (after choosing the Agg backend)

from yoto_tf.compression import (
    compress_image,
    decompress_image,
    estimate_bpp,
    load_compression_model,
)
from yoto_tf.compression.baselines import check_quality, encode_decode
from yoto_tf.compression.metrics import (
    MS_SSIM_MIN_SIZE,
    bd_psnr,
    bd_rate,
    fit_degree,
    ms_ssim,
    ms_ssim_db,
    overlap_range,
    psnr,
)
from yoto_tf.data import eval_images

FLAGS = flags.FLAGS

flags.DEFINE_list(
    "models", [],
    "Variable-rate (lambda-conditioned) model.keras files (or run directories holding one), "
    "evaluated at every --lambdas.",
)
flags.DEFINE_list(
    "fixed_models", [],
    "Single-lambda model.keras files (trained with --fixed_lambda), each evaluated at its own "
    "trained lambda; together they form one RD curve.",
)
flags.DEFINE_string("images", None, "Evaluation images: a directory, or a data source spec (folder:GLOB, builtin).")
flags.DEFINE_list(
    "lambdas", [],
    "Lambdas for --models (lambda * 255^2 * MSE + bpp scale). Default: 6 values log-spaced "
    "over each model's trained range.",
)
flags.DEFINE_list("jpeg_qualities", ["5", "10", "20", "30", "40", "50", "75", "90"], "Pillow JPEG qualities ('' = no JPEG).")
flags.DEFINE_list("webp_qualities", ["0", "5", "10", "20", "40", "60", "80", "90"], "Pillow WebP qualities ('' = no WebP).")
flags.DEFINE_string("out_dir", None, "Directory for the CSV / JSON results and the RD plot.")
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images (by name).", lower_bound=1)
flags.DEFINE_bool("estimate_bpp", True, "Also report the model's estimated bpp (one more forward pass per image).")
flags.DEFINE_bool("ms_ssim", True, "Compute MS-SSIM (images must be at least 161x161).")

DEFAULT_NUM_LAMBDAS = 6
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
# Codecs under evaluation
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
    """

    label: str
    kind: str
    path: str
    model: object
    lambdas: list[float]


def model_file(path: str) -> str:
    """A model path as given, or ``DIR/model.keras`` for a run directory."""
    candidate = os.path.join(path, "model.keras")
    return candidate if os.path.isdir(path) and os.path.isfile(candidate) else path


def model_label(path: str) -> str:
    """``runs/vbr/model.keras`` -> ``vbr``; ``runs/q3.keras`` -> ``q3``."""
    path = os.path.normpath(path)
    name = os.path.basename(path)
    if name == "model.keras":
        return os.path.basename(os.path.dirname(path)) or "model"
    return os.path.splitext(name)[0]


def _unique_labels(paths: Sequence[str], taken: set[str]) -> list[str]:
    labels = []
    for path in paths:
        label, suffix = model_label(path), 2
        candidate = label
        while candidate in taken:
            candidate, suffix = f"{label}_{suffix}", suffix + 1
        taken.add(candidate)
        labels.append(candidate)
    return labels


def trained_lambda(model, path: str) -> float:
    """The lambda a single-lambda (``--fixed_lambda``) model was trained at."""
    low, high = model.lambda_range
    if low != high:
        raise ValueError(
            f"{path} was trained on the lambda range [{low:g}, {high:g}], not at one fixed "
            "lambda; pass it with --models instead of --fixed_models"
        )
    return float(low)


def check_lambdas(model, path: str, lambdas: Sequence[float]) -> list[float]:
    """Validates every lambda against the model's trained range before any work is done.

    Raises:
      ValueError: naming the model file and its trained lambda range.
    """
    for lam in lambdas:
        try:
            model.lambda_vector(lam)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    return [float(lam) for lam in lambdas]


def default_lambdas(model, num: int = DEFAULT_NUM_LAMBDAS) -> list[float]:
    """``num`` lambdas log-spaced over the model's trained range (ends included)."""
    low, high = model.lambda_range
    return [float(v) for v in np.geomspace(low, high, num)]


def load_learned_codecs(
    model_paths: Sequence[str], fixed_model_paths: Sequence[str], lambdas: Sequence[float]
) -> list[LearnedCodec]:
    """Loads every model and checks its lambdas (fails before any evaluation starts).

    Raises:
      ValueError: a model file cannot be loaded, a lambda is outside a model's range, or a
        --fixed_models entry was trained on a lambda range.
    """
    taken: set[str] = {"jpeg", "webp", FIXED_CURVE}
    codecs = []
    for kind, paths in (("variable", model_paths), ("fixed", fixed_model_paths)):
        paths = [model_file(path) for path in paths]
        for label, path in zip(_unique_labels(paths, taken), paths):
            try:
                model = load_compression_model(path)
            except OSError as error:
                raise ValueError(str(error)) from None
            if kind == "fixed":
                model_lambdas = [trained_lambda(model, path)]
            elif lambdas:
                model_lambdas = check_lambdas(model, path, lambdas)
            else:
                model_lambdas = default_lambdas(model)
            codecs.append(LearnedCodec(label, kind, path, model, model_lambdas))
    return codecs


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
            decompress_image(codec.model, compress_image(codec.model, image, codec.lambdas[0]))


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
                data = compress_image(codec.model, image, lam)
                t1 = time.perf_counter()
                reconstruction = decompress_image(codec.model, data)
                t2 = time.perf_counter()
                estimated = estimate_bpp(codec.model, image, lam) if estimate else None
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


def _mean(values: Iterable) -> float | None:
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
            mean[field] = _mean(row[field] for row in group)
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
    degree = fit_degree(min(row["anchor_points"], row["test_points"]))
    computed = row["bd_rate_psnr_percent"] is not None or row["bd_rate_ms_ssim_percent"] is not None
    if computed and degree < 3:
        notes.append(f"fewer than 4 points: polynomial fit of degree {degree}")
    row["note"] = "; ".join(notes) or None
    return row


def bjontegaard_table(all_curves: dict[str, Curve]) -> list[dict]:
    """Each variable model vs JPEG, WebP and the fixed-lambda curve; the fixed-lambda curve vs
    JPEG and WebP; WebP vs JPEG. Curves of fewer than 2 points are left out."""
    usable = {name: curve for name, curve in all_curves.items() if len(curve.bpp) >= 2}
    pairs = [("webp", "jpeg")] + [
        (test, anchor)
        for test in usable if test not in ("jpeg", "webp")
        for anchor in ("jpeg", "webp", FIXED_CURVE) if anchor != test
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
# Output
# --------------------------------------------------------------------------------------------


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_csv(path: str, rows: Sequence[dict], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


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
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _fmt(value, spec: str) -> str:
    """``format(value, spec)``, or a dash of the same width for a missing value."""
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def _percent(value, width: int) -> str:
    return "-".rjust(width) if value is None else f"{value:+{width - 1}.2f}%"


def summary_text(means: Sequence[dict], bd_rows: Sequence[dict], fixed_rows: Sequence[dict]) -> str:
    lines = [f"{'codec':<22} {'setting':>14} {'bpp':>7} {'est.bpp':>7} {'PSNR':>6} "
             f"{'MS-SSIM':>7} {'enc s':>7} {'dec s':>7}"]
    for m in means:
        setting = f"{'lam' if m['setting'] == 'lambda' else 'q'}={m['value']:g}"
        lines.append(
            f"{m['codec']:<22} {setting:>14} {m['bpp']:7.4f} {_fmt(m['estimated_bpp'], '7.4f')} "
            f"{m['psnr']:6.2f} {_fmt(m['ms_ssim'], '7.4f')} {m['encode_seconds']:7.3f} "
            f"{m['decode_seconds']:7.3f}"
        )
    if bd_rows:
        lines += ["", f"{'test':<22} {'anchor':<22} {'BD-rate PSNR':>12} {'BD-PSNR':>8} {'BD-rate MS-SSIM':>15}"]
        for row in bd_rows:
            lines.append(
                f"{row['test']:<22} {row['anchor']:<22} {_percent(row['bd_rate_psnr_percent'], 12)} "
                f"{_fmt(row['bd_psnr_db'], '+8.3f')} {_percent(row['bd_rate_ms_ssim_percent'], 15)}"
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


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def parse_numbers(values: Sequence[str], flag: str, kind: type) -> list:
    """``["0.01", "0.1"]`` -> floats (or ints); ValueError naming the flag otherwise."""
    numbers = []
    for text in values:
        try:
            number = kind(text)
        except ValueError:
            raise ValueError(f"--{flag}: {text!r} is not a valid {kind.__name__}") from None
        if kind is float and not math.isfinite(number):
            raise ValueError(f"--{flag}: {text!r} is not a finite number")
        numbers.append(number)
    return numbers


def run_evaluation(
    images_spec: str,
    out_dir: str,
    *,
    model_paths: Sequence[str] = (),
    fixed_model_paths: Sequence[str] = (),
    lambdas: Sequence[float] = (),
    jpeg_qualities: Sequence[int] = (),
    webp_qualities: Sequence[int] = (),
    max_images: int | None = None,
    estimate: bool = True,
    with_ms_ssim: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluates everything, writes the outputs into ``out_dir`` and returns ``results.json``'s
    content. Images, models and lambdas are all checked before the first codec runs.

    Raises:
      ValueError: no images, unreadable model, lambda outside a model's range, bad quality,
        or nothing to evaluate.
    """
    if not (model_paths or fixed_model_paths or jpeg_qualities or webp_qualities):
        raise ValueError("nothing to evaluate: give --models, --fixed_models or baseline qualities")
    for codec, qualities in (("jpeg", jpeg_qualities), ("webp", webp_qualities)):
        for quality in qualities:
            check_quality(codec, quality)
    if os.path.isdir(images_spec) and not os.listdir(images_spec):
        raise ValueError(f"--images: directory {images_spec} is empty")
    images = eval_images(images_spec, max_images=max_images)
    codecs = load_learned_codecs(model_paths, fixed_model_paths, lambdas)
    os.makedirs(out_dir, exist_ok=True)
    log(f"{len(images)} images from {images_spec}")

    measurer = Measurer(with_ms_ssim, log)
    rows = []
    for codec, qualities in (("jpeg", jpeg_qualities), ("webp", webp_qualities)):
        if qualities:
            start = time.perf_counter()
            rows += evaluate_baseline(images, codec, qualities, measurer)
            log(f"{codec}: {len(qualities)} qualities ({time.perf_counter() - start:.1f} s)")
    for codec in codecs:
        log(f"{codec.label} ({codec.kind}, {codec.path}):")
        rows += evaluate_learned(codec, images, measurer, estimate, log)

    means = mean_rows(rows)
    all_curves = curves(means)
    bd_rows = bjontegaard_table(all_curves)
    fixed_rows = fixed_point_comparison(means, all_curves)
    results = {
        "config": {
            "images": images_spec, "num_images": len(images), "image_names": [n for n, _ in images],
            "models": {c.label: c.path for c in codecs if c.kind == "variable"},
            "fixed_models": {c.label: c.path for c in codecs if c.kind == "fixed"},
            "lambdas": {c.label: c.lambdas for c in codecs},
            "jpeg_qualities": list(jpeg_qualities), "webp_qualities": list(webp_qualities),
            "bpp": "real file size * 8 / pixels; means are over images",
        },
        "mean": means, "bd_rate": bd_rows, "fixed_lambda_comparison": fixed_rows, "per_image": rows,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(_json_safe(results), handle, indent=1, allow_nan=False)
    write_csv(os.path.join(out_dir, "per_image.csv"), rows, RESULT_FIELDS)
    write_csv(os.path.join(out_dir, "mean.csv"), means, MEAN_FIELDS)
    write_csv(os.path.join(out_dir, "bd_rate.csv"), bd_rows, BD_FIELDS)
    plot_rd_curves(os.path.join(out_dir, "rd_curves.png"), all_curves,
                   f"{os.path.basename(os.path.normpath(images_spec))} ({len(images)} images)")
    log(summary_text(means, bd_rows, fixed_rows))
    log(f"wrote results.json, per_image.csv, mean.csv, bd_rate.csv, rd_curves.png to {out_dir}")
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.images or not FLAGS.out_dir:
        raise app.UsageError("--images and --out_dir are required")
    try:
        run_evaluation(
            FLAGS.images, FLAGS.out_dir,
            model_paths=FLAGS.models, fixed_model_paths=FLAGS.fixed_models,
            lambdas=parse_numbers(FLAGS.lambdas, "lambdas", float),
            jpeg_qualities=parse_numbers(FLAGS.jpeg_qualities, "jpeg_qualities", int),
            webp_qualities=parse_numbers(FLAGS.webp_qualities, "webp_qualities", int),
            max_images=FLAGS.max_images, estimate=FLAGS.estimate_bpp, with_ms_ssim=FLAGS.ms_ssim,
        )
    except ValueError as error:
        raise SystemExit(f"evaluate_compression: error: {error}") from None


if __name__ == "__main__":
    app.run(main)
