"""SavedModel signature -> .tflite bytes, one quantization variant at a time.

Variants (all use TFLite builtin ops only; inputs and outputs stay float32, plus int32
``style_index``):

* ``none``: float32.
* ``float16``: float16 weights (dequantized at load on CPU; a GPU delegate runs fp16).
* ``dynamic_int8``: int8 weights, activations quantized on the fly per op.
* ``int8``: SELECTIVE full-integer quantization. The convolutions (and the padding /
  resizing around them) run in int8 with activation ranges calibrated on images AND
  lambda samples; everything else stays float: the lambda input and the conditioning
  MLP (lambda spans orders of magnitude, int8 would flatten the small values), and the
  instance-norm statistics and modulation (MEAN, SQUARED_DIFFERENCE, RSQRT, MUL, ADD).
  Naive full-int8 quantization of a CIN network is off by about 0.1-0.3 on a [0, 1]
  image; this keeps it within a few hundredths (see TOLERANCES in mobile/parity.py).
* ``full_int8``: every op that has an int8 kernel quantized (the naive baseline, kept for
  comparison; float32 input/output interface).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from mobile import tflite_graph

VARIANTS = ("none", "float16", "dynamic_int8", "int8", "full_int8")

INT8_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "MIRROR_PAD",
    "PAD",
    "RESIZE_NEAREST_NEIGHBOR",
)
"""Ops the selective ``int8`` variant quantizes; all other ops stay float32."""

RepresentativeData = Callable[[], Iterable[Mapping[str, np.ndarray]]]


def _converter(saved_model_dir: str, signature_key: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[signature_key]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def convert(
    saved_model_dir: str,
    signature_key: str,
    variant: str = "none",
    representative_data: RepresentativeData | None = None,
) -> bytes:
    """Converts signature ``signature_key`` of a SavedModel to a .tflite flatbuffer.

    Args:
      saved_model_dir: written by :func:`mobile.export.export_saved_model`.
      signature_key: the signature to convert (becomes the TFLite signature key).
      variant: one of VARIANTS.
      representative_data: for ``int8`` / ``full_int8``: a factory of an iterable of
        ``{input_name: array [1, ...]}`` calibration samples (inputs addressed by name).

    Returns:
      The .tflite bytes; checked to contain TFLite builtin ops only.

    Raises:
      ValueError: unknown variant, or an integer variant without representative data.
      tflite_graph.NotBuiltinOpsError: the graph needs Flex / custom ops.
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown quantization variant {variant!r}; choose from {VARIANTS}.")
    if variant in ("int8", "full_int8") and representative_data is None:
        raise ValueError(f"Variant {variant!r} needs representative (calibration) data.")
    converter = _converter(saved_model_dir, signature_key)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "full_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    if variant == "int8":
        tflite = _selective_int8(saved_model_dir, signature_key, representative_data)
    else:
        tflite = converter.convert()
    tflite_graph.check_builtin_only(tflite)
    return tflite


def _selective_int8(
    saved_model_dir: str, signature_key: str, representative_data: RepresentativeData
) -> bytes:
    """Calibrates every tensor, then quantizes only the ops in INT8_OPS
    (TFLite's QuantizationDebugger route to selective quantization: a deny list of op
    types, derived here from the float graph)."""
    float_ops = tflite_graph.op_names(_converter(saved_model_dir, signature_key).convert())
    denylisted = [name for name in float_ops if name not in INT8_OPS]
    converter = _converter(saved_model_dir, signature_key)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=denylisted)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_data, debug_options=options
    )
    return debugger.get_nondebug_quantized_model()
