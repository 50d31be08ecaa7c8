"""One export target -> every requested variant, each gated on parity, written with its
sidecar. Shared by the style-transfer and compression exports (mobile/style_transfer.py,
mobile/compression.py)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from mobile import gpu_delegate, metadata, parity, quantization, tflite_graph
from mobile.export import export_saved_model
from yoto_tf.files import write_bytes_atomically

VARIANT_FILE_NAMES = {"none": "float32"}
INT8_SELECTION_MARGIN = 0.8
"""The int8 layer selection aims at this fraction of the int8 tolerance, leaving margin
for the parity gate's other inputs."""


@dataclasses.dataclass
class ExportTarget:
    """A Keras model to export as one .tflite signature, with its sample data.

    Attributes:
      model: the Keras model (named inputs, see mobile/model_io.py).
      file_stem: output files are ``<file_stem>_<variant>.tflite`` / ``.json``.
      signature_key, output_name: the TFLite signature and its output tensor name.
      specs: ``{input name: TensorSpec}`` of the signature (batch 1).
      loss_space, num_styles: written to the sidecar.
      parity_cases: inputs of the parity gate (``{name: array [1, ...]}``).
      selection_cases: inputs the int8 layer selection measures errors on.
      calibration: the int8 representative-dataset factory.
      tensor_notes: extra sidecar fields per tensor name (e.g. ``{"range": [0, 1]}``).
      error_scale: errors are divided by this (1 for images in [0, 1]; the largest
        |output| for unbounded outputs such as a compression latent).
    """

    model: keras.Model
    file_stem: str
    signature_key: str
    output_name: str
    specs: Mapping[str, tf.TensorSpec]
    loss_space: object
    parity_cases: Sequence[Mapping[str, np.ndarray]]
    selection_cases: Sequence[Mapping[str, np.ndarray]]
    calibration: quantization.RepresentativeData
    num_styles: int = 0
    tensor_notes: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)
    error_scale: float = 1.0

    def output_shape(self) -> list[int]:
        output = self.model.compute_output_spec(
            {n: keras.KerasTensor(s.shape, s.dtype.name) for n, s in self.specs.items()}
        )
        return [-1 if d is None else int(d) for d in output.shape]


@dataclasses.dataclass(frozen=True)
class ConvertedVariant:
    """One written (or, when its parity failed, rejected: ``path`` None) variant."""

    variant: str
    path: str | None
    size_bytes: int
    ops: tuple[str, ...]
    parity: parity.ParityReport
    gpu: gpu_delegate.GpuReport


def tflite_path(out_dir: str, stem: str, variant: str) -> str:
    return os.path.join(out_dir, f"{stem}_{VARIANT_FILE_NAMES.get(variant, variant)}.tflite")


def _tensor_entries(specs: Mapping[str, tf.TensorSpec], notes: Mapping[str, Mapping]):
    return [
        {
            "name": name, "dtype": spec.dtype.name,
            "shape": [-1 if d is None else int(d) for d in spec.shape],
            **dict(notes.get(name, {})),
        }
        for name, spec in specs.items()
    ]


def check_variants(variants: Sequence[str]) -> None:
    for variant in variants:
        if variant not in quantization.VARIANTS:
            raise ValueError(
                f"Unknown --quantize variant {variant!r}; choose from {quantization.VARIANTS}."
            )


def convert_target(
    target: ExportTarget,
    out_dir: str,
    variants: Sequence[str],
    tolerances: Mapping[str, float] | None = None,
    source_model: str | None = None,
    log: Callable[[str], None] = print,
) -> list[ConvertedVariant]:
    """Exports the target once (SavedModel), converts it to every variant, checks parity
    (and GPU delegate coverage), writes each passing variant with its sidecar."""
    check_variants(variants)
    os.makedirs(out_dir, exist_ok=True)
    inputs_meta = _tensor_entries(target.specs, target.tensor_notes)
    outputs_meta = [{
        "name": target.output_name, "dtype": "float32", "shape": target.output_shape(),
        **dict(target.tensor_notes.get(target.output_name, {})),
    }]
    log(
        f"{target.file_stem} ({target.signature_key}): inputs "
        f"{', '.join(f'{n}{list(s.shape)}' for n, s in target.specs.items())} -> "
        f"{target.output_name}; coefficients {', '.join(target.loss_space.names)}; "
        f"parity on {len(target.parity_cases)} cases."
    )
    int8_error = parity.error_function(
        target.model, target.signature_key, target.output_name, target.selection_cases,
        target.error_scale,
    )
    results = []
    with tempfile.TemporaryDirectory() as saved_model_dir:
        export_saved_model(
            target.model, saved_model_dir, target.specs, target.signature_key,
            target.output_name,
        )
        for variant in variants:
            tolerance = (tolerances or {}).get(variant, parity.TOLERANCES[variant])
            tflite = quantization.convert(
                saved_model_dir, target.signature_key, variant,
                target.calibration if variant in ("int8", "full_int8") else None,
                int8_error=int8_error,
                int8_target=INT8_SELECTION_MARGIN * tolerance,
                log=log,
            )
            report = parity.check_parity(
                target.model, tflite, target.signature_key, target.output_name,
                target.parity_cases, variant, tolerance, target.error_scale,
            )
            log(report.line())
            gpu = gpu_delegate.check(tflite)
            log(f"  {gpu.summary()}")
            path = None
            if report.passed:
                path = tflite_path(out_dir, target.file_stem, variant)
                write_bytes_atomically(path, tflite)
                metadata.write(path, metadata.build(
                    tflite=tflite, model_file=path, variant=variant,
                    signature_key=target.signature_key, inputs=inputs_meta,
                    outputs=outputs_meta, loss_space=target.loss_space,
                    num_styles=target.num_styles, parity=report.to_json(),
                    source_model=source_model, gpu_delegate=gpu.to_json(),
                ))
                log(f"  wrote {path} ({len(tflite) / 1024:.1f} KiB) and its .json sidecar")
            results.append(ConvertedVariant(
                variant, path, len(tflite), tuple(tflite_graph.op_names(tflite)), report, gpu
            ))
    return results


def convert_targets(
    targets: Sequence[ExportTarget],
    out_dir: str,
    variants: Sequence[str],
    tolerances: Mapping[str, float] | None = None,
    source_model: str | None = None,
    require_parity: bool = True,
    log: Callable[[str], None] = print,
) -> list[ConvertedVariant]:
    """:func:`convert_target` for every target; then, with ``require_parity``, one
    ParityError naming every variant (of any target) that failed its tolerance."""
    results = []
    for target in targets:
        results += convert_target(target, out_dir, variants, tolerances, source_model, log)
    if require_parity:
        raise_failures(results)
    return results


def raise_failures(results: Sequence[ConvertedVariant]) -> None:
    """Raises one ParityError naming every variant that failed its tolerance."""
    messages = []
    for result in results:
        try:
            parity.require(result.parity)
        except parity.ParityError as error:
            messages.append(str(error))
    if messages:
        raise parity.ParityError(" ".join(messages))
