"""SavedModel signature -> .tflite bytes, one quantization variant at a time.

Variants (all use TFLite builtin ops only; inputs and outputs stay float32, plus int32
``style_index``):

* ``none``: float32.
* ``float16``: float16 weights (dequantized at load on CPU; a GPU delegate runs fp16).
* ``dynamic_int8``: int8 weights, activations quantized on the fly per op.
* ``int8``: SELECTIVE full-integer quantization. The convolutions (and the padding /
  resizing around them) and the dense layers (conditioning MLP, CIN heads) run in int8
  with activation ranges calibrated on images AND lambda samples; everything else stays
  float: the raw lambda input and its normalization (LOG etc.: lambda spans orders of
  magnitude, int8 would flatten the small values), and the instance-norm statistics and
  modulation (MEAN, SQUARED_DIFFERENCE, RSQRT, MUL, ADD).
  Given an error function, the convolutions the output is most sensitive to are kept in
  float too, until a target error is met (:func:`selective_int8`). Naive full-int8
  quantization of a CIN network is off by about 0.1-0.4 on a [0, 1] image.
* ``full_int8``: every op that has an int8 kernel quantized (the naive baseline, kept for
  comparison; float32 input/output interface).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError

from mobile import tflite_graph

VARIANTS = ("none", "float16", "dynamic_int8", "int8", "full_int8")

INT8_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "MIRROR_PAD",
    "PAD",
    "RESIZE_NEAREST_NEIGHBOR",
    "FULLY_CONNECTED",
)
"""Ops the selective ``int8`` variant quantizes; all other ops stay float32."""

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")

RepresentativeData = Callable[[], Iterable[Mapping[str, np.ndarray]]]
ErrorFn = Callable[[bytes], float]


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
    int8_error: ErrorFn | None = None,
    int8_target: float = 0.04,
    log: Callable[[str], None] = print,
) -> bytes:
    """Converts signature ``signature_key`` of a SavedModel to a .tflite flatbuffer.

    Args:
      saved_model_dir: written by :func:`mobile.export.export_saved_model`.
      signature_key: the signature to convert (becomes the TFLite signature key).
      variant: one of VARIANTS.
      representative_data: for ``int8`` / ``full_int8``: a factory of an iterable of
        ``{input_name: array [1, ...]}`` calibration samples (inputs addressed by name).
      int8_error, int8_target: for ``int8``: a function measuring the max abs error of a
        candidate .tflite against the Keras model, and the error to reach; the
        convolutions the error is most sensitive to are then kept in float until the
        target is met (see :func:`selective_int8`). Without ``int8_error`` every
        convolution is quantized.
      log: progress messages.

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
        _calibrate(converter, representative_data)
    try:
        if variant == "int8":
            tflite = selective_int8(
                saved_model_dir, signature_key, representative_data, int8_error, int8_target,
                log,
            )
        else:
            tflite = converter.convert()
    except ConverterError as error:
        needs = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op",
                                      str(error))))
        if needs:
            raise tflite_graph.NotBuiltinOpsError(
                f"The graph needs TensorFlow ops without a TFLite builtin kernel: {needs}; "
                "the standard LiteRT runtime runs builtin ops only. Replace the layer that "
                "produces them (e.g. keras.ops.argmax -> tf.math.argmax, UpSampling2D -> "
                "yoto_tf.NearestUpsampling2D)."
            ) from None
        raise
    tflite_graph.check_builtin_only(tflite)
    return tflite


def _calibrate(converter: tf.lite.TFLiteConverter, representative_data) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS,
    ]


def selective_int8(
    saved_model_dir: str,
    signature_key: str,
    representative_data: RepresentativeData,
    error_fn: ErrorFn | None = None,
    target: float = 0.04,
    log: Callable[[str], None] = print,
) -> bytes:
    """Selective int8: quantizes only INT8_OPS, then, if ``error_fn`` says the error is
    above ``target``, keeps the most sensitive convolutions in float.

    Why: instance normalization divides every channel by its spatial std, so a channel
    with a small std relative to the tensor's (per-tensor) int8 step gets its rounding
    noise amplified to O(1). How much each convolution suffers depends on the weights
    (early layers of an untrained network are the worst), so the layers to keep in float
    are measured, not guessed: the sensitivity of a convolution is the error with ONLY
    it quantized; the most sensitive ones go back to float one by one until the error
    meets ``target``. Calibration (images + lambda draws) runs once; every candidate is
    a re-quantization of the calibrated model (TFLite's QuantizationDebugger deny lists).
    """
    float_model = _converter(saved_model_dir, signature_key).convert()
    operators = tflite_graph.operators(float_model)
    denylisted_ops = sorted({op.name for op in operators} - set(INT8_OPS))
    convs = [op.outputs[0].name for op in operators if op.name in CONV_OPS]
    feeders = _int8_feeders(operators)
    converter = _converter(saved_model_dir, signature_key)
    _calibrate(converter, representative_data)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_data,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=denylisted_ops),
    )

    def quantize(float_convs):
        nodes = [name for conv in float_convs for name in [conv, *feeders[conv]]]
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=denylisted_ops, denylisted_nodes=nodes)
        return debugger.get_nondebug_quantized_model()

    tflite = debugger.get_nondebug_quantized_model()
    if error_fn is None:
        return tflite
    error = error_fn(tflite)
    log(f"  int8: {len(convs)} convolutions in int8: max abs error {error:.3g} "
        f"(target {target:g})")
    if error <= target or len(convs) < 2:
        return tflite
    sensitivity = {
        conv: error_fn(quantize([other for other in convs if other != conv]))
        for conv in convs
    }
    ranked = sorted(convs, key=sensitivity.get, reverse=True)
    log("  int8: sensitivity (error with only this conv in int8): " + ", ".join(
        f"{_short(c)} {sensitivity[c]:.3g}" for c in ranked[:6]) + " ...")
    for count in range(1, len(convs)):
        candidate = quantize(ranked[:count])
        error = error_fn(candidate)
        if error <= target:
            break
    log(f"  int8: kept {count} of {len(convs)} convolutions in float "
        f"({', '.join(_short(c) for c in ranked[:count])}): max abs error {error:.3g}")
    return candidate


def _int8_feeders(operators) -> dict[str, list[str]]:
    """For each convolution's output tensor, the outputs of the INT8_OPS ops (padding,
    resizing) that feed it alone in a chain: a conv kept in float keeps them in float
    too, or its input would still be rounded to int8 on the way."""
    producer = {out.name: op for op in operators for out in op.outputs}
    feeders = {}
    for op in operators:
        if op.name not in CONV_OPS:
            continue
        chain, tensor = [], op.inputs[0].name
        while tensor in producer and producer[tensor].name in INT8_OPS \
                and producer[tensor].name not in CONV_OPS:
            chain.append(tensor)
            tensor = producer[tensor].inputs[0].name
        feeders[op.outputs[0].name] = chain
    return feeders


def _short(tensor_name: str) -> str:
    """``model_1/res1_a_1/convolution1`` -> ``res1_a``."""
    parts = tensor_name.split("/")
    layer = parts[-2] if len(parts) >= 2 else tensor_name
    return layer[:-2] if layer.endswith("_1") else layer
