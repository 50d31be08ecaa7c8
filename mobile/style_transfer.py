"""The TFLite export target of a style-transfer network (signature ``stylize``); the CLI is
``python -m mobile.convert``, the compression transforms' target is ``mobile/compression.py``."""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from mobile import lambda_maps, parity, pipeline, samples
from mobile.export import input_specs
from mobile.model_io import IMAGE, LOSS_WEIGHTS, ModelFileError, read_inputs

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
    lambda_map: bool = False,
) -> pipeline.ExportTarget:
    """The export target of a style network: signature ``stylize``, output ``stylized``.

    With ``lambda_map`` the network's per-pixel twin is exported
    (``yoto_tf.style_transfer.transformer.lambda_map_network``; ``model`` may be either):
    its ``loss_weights`` is a map [1, H/4, W/4, k] (mobile/lambda_maps.py) and the files are
    named ``<name>_lambda_map_<variant>``.

    Raises:
      ModelFileError: ``model`` is not an exportable yoto_tf model with an image input.
    """
    if lambda_map and not read_inputs(model, num_styles).lambda_map:
        from yoto_tf.style_transfer.transformer import lambda_map_network  # pylint: disable=import-outside-toplevel

        try:
            model = lambda_map_network(model)
        except ValueError as error:
            raise ModelFileError(f"--lambda_map: {error}") from None
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
    space = inputs.loss_space
    parity_cases = parity.parity_cases(
        [{IMAGE: x} for x in parity_images], space, inputs.num_styles, num_lambdas)
    selection = samples.selection_cases(calibration_images, space, inputs.num_styles, num_parity_images)
    calibration = samples.calibration_data(calibration_images, space, calibration_samples, inputs.num_styles)
    notes = {IMAGE: image_notes, OUTPUT_NAME: {"range": [0.0, 1.0]}}
    stride = lambda_maps.STYLE_MAP_STRIDE
    if inputs.lambda_map:
        parity_cases = lambda_maps.map_cases(parity_cases, space, IMAGE, stride)
        selection = lambda_maps.map_cases(selection, space, IMAGE, stride, seed=100)
        calibration = lambda_maps.map_calibration(calibration, space, IMAGE, stride)
        notes[LOSS_WEIGHTS] = lambda_maps.sidecar_note(stride, IMAGE)
        name += lambda_maps.FILE_SUFFIX
    return pipeline.ExportTarget(
        model=model,
        file_stem=name,
        signature_key=SIGNATURE_KEY,
        output_name=OUTPUT_NAME,
        specs=input_specs(inputs, None if dynamic_size else image_size, map_stride=stride),
        loss_space=space,
        num_styles=inputs.num_styles,
        parity_cases=parity_cases,
        selection_cases=selection,
        calibration=calibration,
        tensor_notes=notes,
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
