r"""Exports a yoto_tf style-transfer model to .tflite with lambda as a live input.

    python -m mobile.convert --model style.keras --out exported/ \
        [--image_size 384 | --dynamic_size] [--quantize none,float16,dynamic_int8,int8]

For every variant it writes ``<model>_<variant>.tflite`` (``float32`` for ``none``) and the
sidecar ``<model>_<variant>.json`` (mobile/metadata.py). The file has one signature,
``stylize``: inputs ``image`` float32 [1, H, W, 3] in [0, 1], ``loss_weights`` float32
[1, k] (raw lambda, LossSpace order), ``style_index`` int32 [1] for multi-style models;
output ``stylized`` float32 [1, H, W, 3] in [0, 1]. TFLite builtin ops only.

Parity gate: Keras and the .tflite run on sample images at >= 5 lambda settings (and the
styles); the max / mean abs error of every variant is printed and a variant past its
tolerance (mobile/parity.py TOLERANCES, or --tolerance) is NOT written and makes the
command exit with status 1.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from typing import Callable, Sequence

import keras
import numpy as np
from absl import app, flags, logging

from mobile import gpu_delegate, metadata, parity, quantization, samples, tflite_graph
from mobile.export import export_saved_model, input_specs
from mobile.model_io import (
    IMAGE,
    LOSS_WEIGHTS,
    STYLE_INDEX,
    ModelFileError,
    load_model,
    read_inputs,
)

SIGNATURE_KEY = "stylize"
OUTPUT_NAME = "stylized"
VARIANT_FILE_NAMES = {"none": "float32"}
INT8_SELECTION_MARGIN = 0.8
"""The int8 layer selection aims at this fraction of the int8 tolerance, leaving margin
for the parity gate's other inputs."""
SIZE_MULTIPLE = 16
"""Dynamic-size parity also runs at a second, non-square size that is a multiple of this
(every downsampling factor of the yoto_tf networks divides it)."""


@dataclasses.dataclass(frozen=True)
class ConvertedVariant:
    """One written (or, when its parity failed, rejected) variant."""

    variant: str
    path: str | None
    size_bytes: int
    ops: tuple[str, ...]
    parity: parity.ParityReport
    gpu: gpu_delegate.GpuReport


def _selection_cases(images, inputs, skip: int, seed: int = 1):
    """Inputs the int8 layer selection measures errors on: the calibration images after
    the first ``skip`` (the parity gate's; all of them when there are no others), each at the default lambda, at all
    coefficients low and at all high (the extremes where errors peak), plus a random
    draw; styles cycle. Not the parity gate's own cases."""
    space = inputs.loss_space
    images = images[skip:] or images
    lams = [space.default(), space.low, space.high, space.sample_numpy(1, seed)[0]]
    cases = []
    for i, lam in enumerate(lams):
        case = {IMAGE: images[i % len(images)], LOSS_WEIGHTS: np.asarray(lam, np.float32)[None]}
        if inputs.num_styles:
            case[STYLE_INDEX] = np.array([i % inputs.num_styles], np.int32)
        cases.append(case)
    return cases


def tflite_path(out_dir: str, name: str, variant: str) -> str:
    return os.path.join(out_dir, f"{name}_{VARIANT_FILE_NAMES.get(variant, variant)}.tflite")


def parity_sizes(image_size: int, dynamic_size: bool) -> list[tuple[int, int]]:
    """(height, width) pairs the parity gate runs at: the export size, plus a smaller
    non-square one for dynamic-size exports."""
    sizes = [(image_size, image_size)]
    if dynamic_size:
        other = max(SIZE_MULTIPLE, (3 * image_size // 4) // SIZE_MULTIPLE * SIZE_MULTIPLE)
        sizes.append((other, image_size))
    return sizes


def _tensor_entries(specs, data_ranges):
    entries = []
    for name, spec in specs.items():
        entry = {
            "name": name,
            "dtype": spec.dtype.name,
            "shape": [-1 if d is None else int(d) for d in spec.shape],
        }
        if name in data_ranges:
            entry["range"] = list(data_ranges[name])
        entries.append(entry)
    return entries


def convert_model(
    model: keras.Model,
    out_dir: str,
    *,
    name: str,
    variants: Sequence[str] = ("none",),
    image_size: int = 384,
    dynamic_size: bool = False,
    images: str = "builtin",
    num_parity_images: int = 2,
    num_lambdas: int = parity.MIN_LAMBDA_SETTINGS,
    calibration_samples: int = 64,
    tolerances: dict[str, float] | None = None,
    num_styles: int | None = None,
    source_model: str | None = None,
    require_parity: bool = True,
    log: Callable[[str], None] = print,
) -> list[ConvertedVariant]:
    """Converts ``model`` to every variant, gates each on parity, writes the passing ones.

    Returns:
      One ConvertedVariant per requested variant, in order.

    Raises:
      ModelFileError: ``model`` is not an exportable yoto_tf model.
      parity.ParityError: after all variants were tried, if any failed its tolerance
        (the passing ones are written) and ``require_parity``.
    """
    for variant in variants:
        if variant not in quantization.VARIANTS:
            raise ValueError(
                f"Unknown --quantize variant {variant!r}; choose from {quantization.VARIANTS}."
            )
    inputs = read_inputs(model, num_styles)
    if IMAGE not in inputs.data_inputs:
        raise ModelFileError(
            f"Model {model.name!r} has no {IMAGE!r} input (inputs: {list(inputs.names)})."
        )
    specs = input_specs(inputs, None if dynamic_size else image_size)
    sizes = parity_sizes(image_size, dynamic_size)
    parity_images = samples.load_images(images, sizes, num_parity_images)
    cases = parity.parity_cases(
        [{IMAGE: x} for x in parity_images], inputs.loss_space, inputs.num_styles, num_lambdas
    )
    calibration_images = samples.load_images(images, sizes[:1], max_images=16)
    calibration = samples.calibration_data(
        calibration_images, inputs.loss_space, calibration_samples, inputs.num_styles,
    )
    os.makedirs(out_dir, exist_ok=True)
    tensors_in = _tensor_entries(specs, {IMAGE: (0.0, 1.0)})
    if dynamic_size:  # an app must round H and W to a multiple the network accepts
        next(t for t in tensors_in if t["name"] == IMAGE)["size_multiple"] = SIZE_MULTIPLE
    out_shape = specs[IMAGE].shape
    tensors_out = [{
        "name": OUTPUT_NAME, "dtype": "float32",
        "shape": [-1 if d is None else int(d) for d in out_shape], "range": [0.0, 1.0],
    }]
    log(
        f"{model.name}: inputs {', '.join(f'{n}{list(s.shape)}' for n, s in specs.items())}; "
        f"coefficients {', '.join(inputs.loss_space.names)}; "
        f"{inputs.num_styles or 'no'} style index; parity on {len(cases)} cases."
    )
    results = []
    with tempfile.TemporaryDirectory() as saved_model_dir:
        export_saved_model(model, saved_model_dir, specs, SIGNATURE_KEY, OUTPUT_NAME)
        for variant in variants:
            tolerance = (tolerances or {}).get(variant, parity.TOLERANCES[variant])
            tflite = quantization.convert(
                saved_model_dir, SIGNATURE_KEY, variant,
                calibration if variant in ("int8", "full_int8") else None,
                int8_error=parity.error_function(
                    model, SIGNATURE_KEY, OUTPUT_NAME,
                    _selection_cases(calibration_images, inputs, num_parity_images),
                ),
                int8_target=INT8_SELECTION_MARGIN * tolerance,
                log=log,
            )
            report = parity.check_parity(
                model, tflite, SIGNATURE_KEY, OUTPUT_NAME, cases, variant, tolerance
            )
            log(report.line())
            gpu = gpu_delegate.check(tflite)
            log(f"  {gpu.summary()}")
            path = None
            if report.passed:
                path = tflite_path(out_dir, name, variant)
                with open(path, "wb") as f:
                    f.write(tflite)
                metadata.write(path, metadata.build(
                    tflite=tflite, model_file=path, variant=variant,
                    signature_key=SIGNATURE_KEY, inputs=tensors_in, outputs=tensors_out,
                    loss_space=inputs.loss_space, num_styles=inputs.num_styles,
                    parity=report.to_json(), source_model=source_model,
                    gpu_delegate=gpu.to_json(),
                ))
                log(f"  wrote {path} ({len(tflite) / 1024:.1f} KiB) and its .json sidecar")
            results.append(ConvertedVariant(
                variant, path, len(tflite), tuple(tflite_graph.op_names(tflite)), report, gpu
            ))
    failed = [r.parity for r in results if not r.parity.passed]
    if failed and require_parity:
        messages = []
        for report in failed:
            try:
                parity.require(report)
            except parity.ParityError as error:
                messages.append(str(error))
        raise parity.ParityError(" ".join(messages))
    return results


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing this
    module next to other absl programs defines no flags)."""
    flags.DEFINE_string("model", None, "The .keras file of a yoto_tf style-transfer network.")
    flags.DEFINE_string("out", None, "Output directory for the .tflite files and sidecars.")
    flags.DEFINE_integer("image_size", 384, "Side of the square input image (and of the "
                         "parity / calibration images).")
    flags.DEFINE_bool("dynamic_size", False, "Export with dynamic H and W (resize the input "
                      "per call); parity then also runs at a second, non-square size.")
    flags.DEFINE_list("quantize", ["none"], f"Variants to write, from {quantization.VARIANTS}.")
    flags.DEFINE_string("images", "builtin", "Parity / calibration images: a yoto_tf.data source "
                        "('builtin' or folder:GLOB).")
    flags.DEFINE_integer("num_parity_images", 2, "Images the parity gate runs on.")
    flags.DEFINE_integer("num_lambdas", parity.MIN_LAMBDA_SETTINGS,
                         "Lambda settings the parity gate runs at (>= 5).")
    flags.DEFINE_integer("calibration_samples", 64, "int8 calibration samples (image, lambda).")
    flags.DEFINE_list("tolerance", [], "Overrides of the max-abs-error tolerance, e.g. "
                      f"int8=0.08. Defaults: {parity.TOLERANCES}.")
    flags.DEFINE_integer("num_styles", None, "Number of styles of a multi-style model "
                         "(read from the model when omitted).")


def _parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    tolerances = {}
    for item in items:
        variant, sep, value = item.partition("=")
        if not sep or variant not in quantization.VARIANTS:
            raise ValueError(
                f"--tolerance {item!r}: expected VARIANT=VALUE with VARIANT in "
                f"{quantization.VARIANTS}."
            )
        tolerances[variant] = float(value)
    return tolerances


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel / converter chatter
    if not FLAGS.model or not FLAGS.out:
        raise app.UsageError("--model and --out are required.")
    try:
        model = load_model(FLAGS.model)
        results = convert_model(
            model, FLAGS.out,
            name=os.path.splitext(os.path.basename(FLAGS.model))[0],
            variants=FLAGS.quantize, image_size=FLAGS.image_size,
            dynamic_size=FLAGS.dynamic_size, images=FLAGS.images,
            num_parity_images=FLAGS.num_parity_images, num_lambdas=FLAGS.num_lambdas,
            calibration_samples=FLAGS.calibration_samples,
            tolerances=_parse_tolerances(FLAGS.tolerance), num_styles=FLAGS.num_styles,
            source_model=os.path.basename(FLAGS.model),
        )
    except (ValueError, parity.ParityError) as error:
        print(f"mobile.convert: error: {error}", file=sys.stderr)
        sys.exit(1)
    for r in results:
        print(f"{r.variant:>12}: {r.path} {r.size_bytes / 1024:.1f} KiB, ops {', '.join(r.ops)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
