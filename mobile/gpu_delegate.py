"""Static check: does the TFLite GPU delegate's op set cover an exported graph?

No GPU delegate can run here, so this reads the op list of the .tflite and applies the
delegate's documented per-op rules (TensorFlow's
``tensorflow/lite/tools/versioning/gpu_compatibility.cc``, the checker the delegate
itself uses, as of TF 2.21), restricted to what matters for yoto_tf graphs: the op set,
MIRROR_PAD mode, STRIDED_SLICE masks, constant reduction axes, broadcasting of
ADD / MUL, constant vs runtime operand counts, and static shapes (the delegate cannot
run dynamic-size tensors or int32 shape arithmetic). An op that fails a rule stays on
the CPU: the delegate still runs, but the graph is split into several GPU partitions
with CPU round trips between them.

``tf.lite.experimental.Analyzer(gpu_compatibility=True)`` is not used: on this stack it
reports "compatible" even for ops the delegate does not have (e.g. ARG_MAX).
"""

from __future__ import annotations

import collections
import dataclasses

from ai_edge_litert import schema_py_generated as schema

from mobile.tflite_graph import OpInfo, operators

UNARY = {
    "ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT",
    "SIGN", "SIN", "SQRT", "SQUARE", "TANH",
}
BINARY = {
    "ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL",
    "LOGICAL_AND", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW",
    "SQUARED_DIFFERENCE", "SUB",
}
OTHER_SUPPORTED = {
    "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION", "CONV_2D",
    "CUMSUM", "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "DYNAMIC_UPDATE_SLICE", "EMBEDDING_LOOKUP", "FULLY_CONNECTED", "GATHER", "HARD_SWISH",
    "LEAKY_RELU", "LSTM", "MAX_POOL_2D", "MEAN", "MIRROR_PAD", "MUL", "ONE_HOT", "PACK",
    "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "SELECT", "SELECT_V2", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V",
    "STRIDED_SLICE", "SUM", "TILE", "TRANSPOSE", "TRANSPOSE_CONV",
}
SUPPORTED_OPS = frozenset(UNARY | BINARY | OTHER_SUPPORTED)
"""Builtin ops the GPU delegate has a kernel for (each with further per-op rules)."""


@dataclasses.dataclass(frozen=True)
class GpuReport:
    """``problems``: one line per op the delegate would leave on the CPU (and why)."""

    num_ops: int
    problems: tuple[str, ...]

    @property
    def covered(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.covered:
            return f"GPU delegate: all {self.num_ops} ops covered"
        reasons = collections.Counter(p.split(" [")[0] for p in self.problems)
        return (
            f"GPU delegate: {len(self.problems)} of {self.num_ops} ops not covered: "
            + "; ".join(f"{reason} (x{count})" for reason, count in reasons.items())
        )

    def to_json(self) -> dict:
        return {"covered": self.covered, "num_ops": self.num_ops, "problems": list(self.problems)}


def _runtime(op: OpInfo):
    return [t for t in op.inputs if not t.is_constant]


def _broadcastable(a, b) -> bool:
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and y != 1:
            return False
    return True


def _op_problem(op: OpInfo) -> str | None:
    """Why the delegate would reject ``op`` (None when it takes it)."""
    name = op.name
    if op.is_custom or name not in SUPPORTED_OPS:
        return f"{name} has no GPU kernel"
    dynamic = [t.name for t in op.inputs + op.outputs if -1 in t.shape]
    if dynamic:
        return f"{name} has dynamic-size tensors (export with a fixed --image_size)"
    if name in UNARY and (len(_runtime(op)) != 1 or len(op.inputs) != 1):
        return f"{name} needs exactly one runtime input"
    if name in BINARY and not (
        len(_runtime(op)) == 2 or (len(_runtime(op)) == 1 and len(op.inputs) == 2)
    ):
        return f"{name} needs two operands, at most one constant"
    if name == "MIRROR_PAD" and op.options.mode != schema.MirrorPadMode.REFLECT:
        return "MIRROR_PAD in SYMMETRIC mode (only REFLECT is supported)"
    if name == "STRIDED_SLICE":
        o = op.options
        if o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask:
            return "STRIDED_SLICE with ellipsis / new-axis / shrink-axis masks"
        if len(op.inputs[0].shape) not in (3, 4):
            return f"STRIDED_SLICE on a rank-{len(op.inputs[0].shape)} tensor (3 or 4 only)"
    if name == "SLICE" and len(op.inputs[0].shape) not in (3, 4):
        return f"SLICE on a rank-{len(op.inputs[0].shape)} tensor (3 or 4 only)"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        axes = op.inputs[1]
        if not axes.is_constant or axes.dtype != "INT32":
            return f"{name} with non-constant or non-int32 axes"
    if name == "FULLY_CONNECTED" and (op.inputs[0].is_constant or len(_runtime(op)) > 2):
        return "FULLY_CONNECTED with a constant input or more than 2 runtime inputs"
    if name in ("ADD", "MUL"):
        if len(op.inputs) != 2:
            return f"{name} needs two inputs"
        a, b = (t.shape for t in op.inputs)
        if len(a) > 1 and len(b) > 1 and not _broadcastable(a, b):
            return f"{name} broadcasting {list(a)} with {list(b)}"
        if name == "MUL" and len(a) == len(b):
            smaller_a = any(x < y for x, y in zip(a, b))
            smaller_b = any(y < x for x, y in zip(a, b))
            if smaller_a and smaller_b:
                return f"MUL of {list(a)} and {list(b)} (neither covers the other)"
    if name == "ONE_HOT" and op.inputs[0].dtype != "INT32":
        return "ONE_HOT with non-int32 indices"
    return None


def _fold_constant_dequantize(ops: list[OpInfo]) -> list[OpInfo]:
    """float16 / int8 weights reach their op through a DEQUANTIZE of a constant; the
    delegate folds those, so their outputs count as constants (the DEQUANTIZE ops drop)."""
    folded = {
        op.outputs[0].name for op in ops
        if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0].is_constant
    }
    result = []
    for op in ops:
        if op.name == "DEQUANTIZE" and op.outputs[0].name in folded:
            continue
        inputs = tuple(
            dataclasses.replace(t, is_constant=True) if t.name in folded else t
            for t in op.inputs
        )
        result.append(dataclasses.replace(op, inputs=inputs))
    return result


def check(tflite: bytes) -> GpuReport:
    """Applies the rules to every op of the model."""
    ops = _fold_constant_dequantize(operators(tflite))
    problems = []
    for op in ops:
        problem = _op_problem(op)
        if problem:
            problems.append(f"{problem} [{op.outputs[0].name if op.outputs else op.name}]")
    return GpuReport(len(ops), tuple(problems))
