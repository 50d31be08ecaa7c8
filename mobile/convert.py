r"""Exports a yoto_tf style-transfer model to .tflite with lambda as a live input.

    python -m mobile.convert --model painters4 --out exported/      # a shipped model, by name
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
command exit with status 1. Every variant is also checked against the GPU delegate's op
rules (mobile/gpu_delegate.py); the result goes to the sidecar.

A compression model (yoto_tf.compression.CompressionModel .keras) gets its analysis and
synthesis transforms exported instead (mobile/compression.py: ``<model>_analysis_*`` and
``<model>_synthesis_*``, signatures ``analysis`` and ``synthesis``).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

import keras
from absl import app, flags, logging

from mobile import compression, parity, pipeline, quantization, samples
from mobile.export import input_specs
from mobile.model_io import IMAGE, ModelFileError, load_model, read_inputs
from yoto_tf import pretrained

SIGNATURE_KEY = "stylize"
OUTPUT_NAME = "stylized"
def style_target(
    model: keras.Model,
    *,
    name: str,
    image_size: int = 384,
    dynamic_size: bool = False,
    images: str = "builtin",
    num_parity_images: int = 2,
    num_lambdas: int = parity.MIN_LAMBDA_SETTINGS,
    calibration_samples: int = 64,
    num_styles: int | None = None,
) -> pipeline.ExportTarget:
    """The export target of a style network: signature ``stylize``, output ``stylized``.

    Raises:
      ModelFileError: ``model`` is not an exportable yoto_tf model with an image input.
    """
    inputs = read_inputs(model, num_styles)
    if IMAGE not in inputs.data_inputs:
        raise ModelFileError(
            f"Model {model.name!r} has no {IMAGE!r} input (inputs: {list(inputs.names)})."
        )
    sizes = samples.parity_sizes(image_size, dynamic_size)
    parity_images = samples.load_images(images, sizes, num_parity_images)
    calibration_images = samples.load_images(images, sizes[:1], max_images=16)
    image_notes = {"range": [0.0, 1.0]}
    if dynamic_size:  # an app must round H and W to a multiple the network accepts
        image_notes["size_multiple"] = samples.SIZE_MULTIPLE
    return pipeline.ExportTarget(
        model=model,
        file_stem=name,
        signature_key=SIGNATURE_KEY,
        output_name=OUTPUT_NAME,
        specs=input_specs(inputs, None if dynamic_size else image_size),
        loss_space=inputs.loss_space,
        num_styles=inputs.num_styles,
        parity_cases=parity.parity_cases(
            [{IMAGE: x} for x in parity_images], inputs.loss_space, inputs.num_styles,
            num_lambdas,
        ),
        selection_cases=samples.selection_cases(
            calibration_images, inputs.loss_space, inputs.num_styles, num_parity_images
        ),
        calibration=samples.calibration_data(
            calibration_images, inputs.loss_space, calibration_samples, inputs.num_styles
        ),
        tensor_notes={IMAGE: image_notes, OUTPUT_NAME: {"range": [0.0, 1.0]}},
    )


def convert_model(
    model: keras.Model,
    out_dir: str,
    *,
    name: str,
    variants: Sequence[str] = ("none",),
    tolerances: dict[str, float] | None = None,
    source_model: str | None = None,
    require_parity: bool = True,
    log: Callable[[str], None] = print,
    **target_options,
) -> list[pipeline.ConvertedVariant]:
    """Converts a style network to every variant, gates each on parity, writes the
    passing ones (``target_options``: see :func:`style_target`).

    Returns:
      One ConvertedVariant per requested variant, in order.

    Raises:
      ModelFileError: ``model`` is not an exportable yoto_tf model.
      parity.ParityError: after all variants were tried, if any failed its tolerance
        (the passing ones are written) and ``require_parity``.
    """
    pipeline.check_variants(variants)  # before the (slow) calibration data is built
    target = style_target(model, name=name, **target_options)
    return pipeline.convert_targets(
        [target], out_dir, variants, tolerances, source_model, require_parity, log
    )


FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing this
    module next to other absl programs defines no flags)."""
    flags.DEFINE_string("model", None, "A shipped model's name (python -m trainers.stylize "
                        "--list_models) or the .keras file of a yoto_tf style-transfer network "
                        "(or of a compression model: its transforms are exported).")
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
        path = pretrained.resolve_model_path(FLAGS.model)
        model = load_model(path)
        options = dict(
            name=os.path.splitext(os.path.basename(path))[0],
            variants=FLAGS.quantize, image_size=FLAGS.image_size,
            dynamic_size=FLAGS.dynamic_size, images=FLAGS.images,
            num_parity_images=FLAGS.num_parity_images, num_lambdas=FLAGS.num_lambdas,
            calibration_samples=FLAGS.calibration_samples,
            tolerances=_parse_tolerances(FLAGS.tolerance),
            source_model=os.path.basename(path),
        )
        if compression.is_compression_model(model):
            results = compression.convert_compression(model, FLAGS.out, **options)
        else:
            results = convert_model(model, FLAGS.out, num_styles=FLAGS.num_styles, **options)
    except (ValueError, parity.ParityError) as error:
        print(f"mobile.convert: error: {error}", file=sys.stderr)
        sys.exit(1)
    for r in results:
        print(f"{r.variant:>12}: {r.path} {r.size_bytes / 1024:.1f} KiB, ops {', '.join(r.ops)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
