"""Reading a .tflite flatbuffer: operators, tensors, signatures (no interpreter needed).

The op list is read from the file itself (the interpreter's view after delegation hides
ops inside XNNPACK's DELEGATE node), using the LiteRT flatbuffer schema.
"""

from __future__ import annotations

import dataclasses

from ai_edge_litert import schema_py_generated as schema

_BUILTIN_NAMES = {
    value: name for name, value in vars(schema.BuiltinOperator).items()
    if not name.startswith("_")
}
_TYPE_NAMES = {
    value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")
}


class NotBuiltinOpsError(ValueError):
    """The converted model needs ops outside the TFLite builtin op set (e.g. Flex ops)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """A tensor of the graph: ``shape`` uses -1 for dynamic dimensions."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    is_constant: bool


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator: ``name`` is the builtin name (``"CONV_2D"``) or the custom code."""

    name: str
    is_custom: bool
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    options: object  # the flatbuffer object-API options (e.g. MirrorPadOptionsT) or None


def _op_code_name(code) -> tuple[str, bool]:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return (custom.decode() if isinstance(custom, bytes) else str(custom)), True
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), False


def _unpack(tflite: bytes):
    return schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)


def operators(tflite: bytes) -> list[OpInfo]:
    """Every operator of every subgraph, in execution order."""
    model = _unpack(tflite)
    codes = [_op_code_name(code) for code in model.operatorCodes]
    result = []
    for subgraph in model.subgraphs:
        def tensor(index):
            t = subgraph.tensors[index]
            shape = t.shapeSignature if t.shapeSignature is not None else t.shape
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
            constant = buffer is not None and buffer.data is not None and len(buffer.data) > 0
            return TensorInfo(
                name, tuple(int(d) for d in (shape if shape is not None else ())),
                _TYPE_NAMES.get(t.type, str(t.type)), bool(constant),
            )

        for op in subgraph.operators:
            name, custom = codes[op.opcodeIndex]
            result.append(OpInfo(
                name, custom,
                tuple(tensor(i) for i in op.inputs if i >= 0),
                tuple(tensor(i) for i in op.outputs if i >= 0),
                op.builtinOptions,
            ))
    return result


def op_names(tflite: bytes) -> list[str]:
    """The sorted set of operator names in the model."""
    return sorted({op.name for op in operators(tflite)})


def check_builtin_only(tflite: bytes) -> None:
    """Raises NotBuiltinOpsError naming the ops if any is a Flex (SELECT_TF_OPS) or
    other custom op: the standard LiteRT runtime would not run the file."""
    custom = sorted({op.name for op in operators(tflite) if op.is_custom})
    if custom:
        flex = [name for name in custom if name.startswith("Flex")]
        kind = "Flex (TensorFlow) ops" if flex else "custom ops"
        raise NotBuiltinOpsError(
            f"The converted model uses {kind} {custom}; the standard LiteRT runtime runs "
            "builtin ops only. Replace the layer that produces them by a TFLite-friendly one "
            "(e.g. yoto_tf.NearestUpsampling2D instead of UpSampling2D)."
        )


def signatures(tflite: bytes) -> dict[str, dict[str, list[str]]]:
    """``{signature_key: {"inputs": [names], "outputs": [names]}}`` as stored in the file."""
    model = _unpack(tflite)

    def names(items):
        return [i.name.decode() if isinstance(i.name, bytes) else i.name for i in items]

    return {
        (s.signatureKey.decode() if isinstance(s.signatureKey, bytes) else s.signatureKey): {
            "inputs": names(s.inputs or []), "outputs": names(s.outputs or []),
        }
        for s in model.signatureDefs or []
    }
