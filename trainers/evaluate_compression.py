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
* ``rd_curves.png``: PSNR and MS-SSIM (dB) against bpp;
* with ``--target_bpps``: ``matched_rate.csv`` (per image and target: the model's real bpp
  and PSNR under rate control, WebP's PSNR at the same bpp) and its summary in
  ``results.json`` under ``matched_rate``.

The measuring, averaging, Bjontegaard tables, summary and plot are in
:mod:`yoto_tf.compression.evaluation`, the same-size comparison with WebP in
:mod:`yoto_tf.compression.matched_rate`; this module parses the flags, loads the models and
writes the files.

Usage::

    python -m trainers.evaluate_compression --models runs/vbr/model.keras \
        --fixed_models runs/q1/model.keras,runs/q3/model.keras,runs/q5/model.keras \
        --images ../shared/data/kodak --lambdas 0.0018,0.0067,0.013,0.0483,0.18 \
        --out_dir runs/eval_kodak
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Sequence

import numpy as np
from absl import app, flags

from trainers import cli
from yoto_tf.compression import load_compression_model
from yoto_tf.compression.baselines import check_quality
from yoto_tf.compression.evaluation import (
    BD_FIELDS,
    FIXED_CURVE,
    MEAN_FIELDS,
    RESULT_FIELDS,
    LearnedCodec,
    Measurer,
    bjontegaard_table,
    curves,
    evaluate_baseline,
    evaluate_learned,
    fixed_point_comparison,
    mean_rows,
    plot_rd_curves,
    summary_text,
)
from yoto_tf.compression.matched_rate import (
    MATCHED_FIELDS,
    matched_rate_comparison,
    matched_rate_summary,
    matched_rate_text,
)
from yoto_tf import pretrained
from yoto_tf.data import eval_images
from yoto_tf.files import write_csv_atomically, write_json_atomically

FLAGS = flags.FLAGS

flags.DEFINE_list(
    "models", [],
    "Variable-rate (lambda-conditioned) model.keras files, run directories holding one, or "
    "shipped model names, evaluated at every --lambdas. With several, BD-rates are also given "
    "against the first.",
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
flags.DEFINE_list(
    "compare_refine_steps", ["0"],
    "Encode-time latent refinement steps (compress --refine_steps) to evaluate --models with: "
    "every model is evaluated once per value, labelled NAME+refineN (0: plain NAME), e.g. 0,100 "
    "compares plain and refined encoding. --fixed_models are never refined.",
)
flags.DEFINE_list(
    "target_bpps", [],
    "Also compress every image with each --models model to these bpp (rate control, real files) "
    "and compare its PSNR with WebP's at the same file size (matched_rate.csv).",
)

DEFAULT_NUM_LAMBDAS = 6


# --------------------------------------------------------------------------------------------
# Codecs under evaluation
# --------------------------------------------------------------------------------------------


def model_file(path: str) -> str:
    """A model path as given, ``DIR/model.keras`` for a run directory, or the verified file
    of a shipped model named so; ValueError otherwise."""
    try:
        return pretrained.resolve_model_path(path)
    except pretrained.ShippedModelError as error:
        raise ValueError(str(error)) from None


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
    model_paths: Sequence[str], fixed_model_paths: Sequence[str], lambdas: Sequence[float],
    refine_steps: Sequence[int] = (0,),
) -> list[LearnedCodec]:
    """Loads every model and checks its lambdas (fails before any evaluation starts); each
    variable-rate model becomes one LearnedCodec per ``refine_steps`` value (labelled
    ``NAME+refineN`` for N > 0).

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
            for steps in (refine_steps if kind == "variable" else (0,)):
                codecs.append(LearnedCodec(label + (f"+refine{steps}" if steps else ""), kind, path,
                                           model, model_lambdas, steps))
    return codecs


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
    blank_nones = [{k: ("" if v is None else v) for k, v in row.items()} for row in rows]
    write_csv_atomically(path, blank_nones, fields, extrasaction="ignore")


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
    target_bpps: Sequence[float] = (),
    refine_steps: Sequence[int] = (0,),
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
    if target_bpps and not model_paths:
        raise ValueError("--target_bpps needs --models (variable-rate models under rate control)")
    if not refine_steps or any(steps < 0 for steps in refine_steps) or len(set(refine_steps)) < len(refine_steps):
        raise ValueError(f"--compare_refine_steps must be distinct whole numbers >= 0, got {list(refine_steps)}")
    if any(not (math.isfinite(t) and t > 0) for t in target_bpps):
        raise ValueError(f"--target_bpps must be positive numbers, got {list(target_bpps)}")
    for codec, qualities in (("jpeg", jpeg_qualities), ("webp", webp_qualities)):
        for quality in qualities:
            check_quality(codec, quality)
    if os.path.isdir(images_spec) and not os.listdir(images_spec):
        raise ValueError(f"--images: directory {images_spec} is empty")
    images = eval_images(images_spec, max_images=max_images)
    codecs = load_learned_codecs(model_paths, fixed_model_paths, lambdas, refine_steps)
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

    matched_rows, matched = [], {}
    for codec in codecs:
        if codec.kind == "variable" and target_bpps:
            log(f"{codec.label} against WebP at the same file sizes:")
            codec_rows = matched_rate_comparison(codec, images, target_bpps, log)
            matched_rows += [{"codec": codec.label, **row} for row in codec_rows]
            matched[codec.label] = matched_rate_summary(codec_rows)

    means = mean_rows(rows)
    all_curves = curves(means)
    variable = [codec.label for codec in codecs if codec.kind == "variable"]
    bd_rows = bjontegaard_table(all_curves, reference=variable[0] if len(variable) > 1 else None)
    fixed_rows = fixed_point_comparison(means, all_curves)
    results = {
        "config": {
            "images": images_spec, "num_images": len(images), "image_names": [n for n, _ in images],
            "models": {c.label: c.path for c in codecs if c.kind == "variable"},
            "fixed_models": {c.label: c.path for c in codecs if c.kind == "fixed"},
            "lambdas": {c.label: c.lambdas for c in codecs},
            "refine_steps": {c.label: c.refine_steps for c in codecs},
            "jpeg_qualities": list(jpeg_qualities), "webp_qualities": list(webp_qualities),
            "bpp": "real file size * 8 / pixels; means are over images",
        },
        "mean": means, "bd_rate": bd_rows, "fixed_lambda_comparison": fixed_rows, "per_image": rows,
        "matched_rate": matched,
    }
    write_json_atomically(os.path.join(out_dir, "results.json"), _json_safe(results), indent=1, allow_nan=False)
    write_csv(os.path.join(out_dir, "per_image.csv"), rows, RESULT_FIELDS)
    write_csv(os.path.join(out_dir, "mean.csv"), means, MEAN_FIELDS)
    write_csv(os.path.join(out_dir, "bd_rate.csv"), bd_rows, BD_FIELDS)
    if matched_rows:
        write_csv(os.path.join(out_dir, "matched_rate.csv"), matched_rows, ("codec",) + MATCHED_FIELDS)
    plot_rd_curves(os.path.join(out_dir, "rd_curves.png"), all_curves,
                   f"{os.path.basename(os.path.normpath(images_spec))} ({len(images)} images)")
    log(summary_text(means, bd_rows, fixed_rows))
    for label, summary in matched.items():
        log(matched_rate_text(label, summary))
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
            target_bpps=parse_numbers(FLAGS.target_bpps, "target_bpps", float),
            refine_steps=parse_numbers(FLAGS.compare_refine_steps, "compare_refine_steps", int),
        )
    except ValueError as error:
        cli.fail("evaluate_compression", error)


if __name__ == "__main__":
    app.run(main)
