"""On-device transforms of the lambda-conditioned compression model.

An app runs the analysis transform (picture -> latent) before encoding and the synthesis
transform (decoded latent -> picture) after decoding; the entropy coding (hyperprior,
scale table, ANS coder) stays in host code (yoto_tf/compression/codec.py), where the
scale indices are computed identically on both sides. Both transforms take the SAME
``loss_weights`` input as the codec (the rate-distortion trade-off, e.g. ``distortion``
log-uniform and ``rate`` fixed), so one pair of files serves every quality.

Files (``<name>_analysis_<variant>.tflite`` and ``<name>_synthesis_<variant>.tflite``):

* signature ``analysis``: ``image`` float32 [1, H, W, 3] in [0, 1] (H, W multiples of 16)
  and ``loss_weights`` float32 [1, k] -> ``latent`` float32 [1, H/16, W/16, M], to be
  rounded to integers by the host before entropy coding;
* signature ``synthesis``: ``latent`` float32 [1, h, w, M] (the decoded latent y_hat that
  the host computes, ``CompressionCodec.decoded_latents``: the integers, plus the predicted
  means of a mean-scale model, plus the residual prediction's correction where it has one) and
  ``loss_weights`` -> ``reconstruction`` float32 [1, 16 h, 16 w, 3] (clip to [0, 1]).

With ``lambda_map`` (``python -m mobile.convert --lambda_map``; files
``<name>_analysis_lambda_map_<variant>`` and ``<name>_synthesis_lambda_map_<variant>``)
``loss_weights`` is a map [1, H/16, W/16, k] in both signatures: one weighting per latent
position, exactly the conditioning map the codec builds from a file's quality map
(``CompressionCodec.map_conditioning`` with the default 16-pixel cells, over the image
padded to a multiple of 64).

The parity gate measures the latent's error relative to its largest magnitude; the
synthesis gate runs on latents the Keras analysis produced (and rounded) at each lambda.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np

from mobile import lambda_maps, parity, pipeline, samples
from mobile.export import input_specs
from mobile.model_io import IMAGE, LOSS_WEIGHTS, read_inputs

LATENT = "latent"
RECONSTRUCTION = "reconstruction"
LATENT_STRIDE = 16


def is_compression_model(model: keras.Model) -> bool:
    """True for a yoto_tf CompressionNetwork (it has analysis and synthesis transforms)."""
    return all(hasattr(model, attr) for attr in ("analysis", "synthesis", "conditioning"))


def transforms(model: keras.Model, lambda_map: bool = False) -> tuple[keras.Model, keras.Model]:
    """Functional (analysis, synthesis) models sharing ``model``'s layers and weights:
    ``[image, loss_weights] -> latent`` and ``[latent, loss_weights] -> reconstruction``
    (``loss_weights`` [B, k], or with ``lambda_map`` a map [B, h, w, k])."""
    k = model.loss_space.size
    lam_shape = (None, None, k) if lambda_map else (k,)
    image = keras.Input((None, None, 3), name=IMAGE)
    lam = keras.Input(lam_shape, name=LOSS_WEIGHTS)
    latent = model.analysis((image, model.conditioning(lam)))
    analysis = keras.Model([image, lam], latent, name="analysis")
    latent_in = keras.Input((None, None, model.num_latent), name=LATENT)
    lam_s = keras.Input(lam_shape, name=LOSS_WEIGHTS)
    reconstruction = model.synthesis((latent_in, model.conditioning(lam_s)))
    synthesis = keras.Model([latent_in, lam_s], reconstruction, name="synthesis")
    return analysis, synthesis


def _latent_cases(analysis, image_cases):
    """The synthesis inputs matching analysis inputs: round(analysis(image, lambda))."""
    cases = []
    for case in image_cases:
        latent = np.round(keras.ops.convert_to_numpy(analysis(dict(case), training=False)))
        cases.append({LATENT: latent.astype(np.float32), LOSS_WEIGHTS: case[LOSS_WEIGHTS]})
    return cases


def compression_targets(
    model: keras.Model,
    *,
    name: str,
    image_size: int = 256,
    dynamic_size: bool = False,
    images: str = "builtin",
    num_parity_images: int = 2,
    num_lambdas: int = parity.MIN_LAMBDA_SETTINGS,
    calibration_samples: int = 32,
    lambda_map: bool = False,
) -> list[pipeline.ExportTarget]:
    """The two export targets (analysis, synthesis) of a CompressionNetwork (with
    ``lambda_map``: their lambda-map variants, see the module docstring)."""
    if image_size % LATENT_STRIDE:
        raise ValueError(f"--image_size must be a multiple of {LATENT_STRIDE}, got {image_size}.")
    analysis, synthesis = transforms(model, lambda_map)
    space = read_inputs(analysis).loss_space
    sizes = samples.parity_sizes(image_size, dynamic_size)
    size = None if dynamic_size else image_size
    image_cases = parity.parity_cases(
        [{IMAGE: x} for x in samples.load_images(images, sizes, num_parity_images)],
        space, 0, num_lambdas,
    )
    calibration_images = samples.load_images(images, sizes[:1], max_images=16)
    image_selection = samples.selection_cases(calibration_images, space, 0, num_parity_images)
    image_calibration = samples.calibration_data(calibration_images, space, calibration_samples)
    range_notes = {IMAGE: {"range": [0.0, 1.0]}, RECONSTRUCTION: {"range": [0.0, 1.0]}}
    stride, suffix = lambda_maps.COMPRESSION_MAP_STRIDE, ""
    analysis_notes = synthesis_notes = range_notes
    if lambda_map:
        image_cases = lambda_maps.map_cases(image_cases, space, IMAGE, stride)
        image_selection = lambda_maps.map_cases(image_selection, space, IMAGE, stride, seed=100)
        image_calibration = lambda_maps.map_calibration(image_calibration, space, IMAGE, stride)
        analysis_notes = {**range_notes, LOSS_WEIGHTS: lambda_maps.sidecar_note(stride, IMAGE)}
        synthesis_notes = {**range_notes, LOSS_WEIGHTS: lambda_maps.sidecar_note(stride, RECONSTRUCTION)}
        suffix = lambda_maps.FILE_SUFFIX

    def latent_calibration():
        for case in _latent_cases(analysis, list(image_calibration())):
            yield case

    latent_cases = _latent_cases(analysis, image_cases)
    if dynamic_size:
        range_notes[IMAGE]["size_multiple"] = LATENT_STRIDE
    return [
        pipeline.ExportTarget(
            model=analysis, file_stem=f"{name}_analysis{suffix}", signature_key="analysis",
            output_name=LATENT, specs=input_specs(read_inputs(analysis), size, map_stride=stride),
            loss_space=space, parity_cases=image_cases, selection_cases=image_selection,
            calibration=image_calibration, tensor_notes=analysis_notes,
            error_scale=parity.output_scale(analysis, image_cases),
        ),
        pipeline.ExportTarget(
            model=synthesis, file_stem=f"{name}_synthesis{suffix}", signature_key="synthesis",
            output_name=RECONSTRUCTION,
            specs=input_specs(read_inputs(synthesis), size, downsampling=LATENT_STRIDE,
                              map_stride=stride),
            loss_space=space, parity_cases=latent_cases,
            selection_cases=_latent_cases(analysis, image_selection),
            calibration=latent_calibration, tensor_notes=synthesis_notes,
        ),
    ]


def convert_compression(
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
    """Exports both transforms in every variant (see the module docstring); raises
    ParityError at the end if any variant of either failed (unless not
    ``require_parity``)."""
    pipeline.check_variants(variants)  # before the (slow) calibration data is built
    targets = compression_targets(model, name=name, **target_options)
    return pipeline.convert_targets(
        targets, out_dir, variants, tolerances, source_model, require_parity, log
    )
