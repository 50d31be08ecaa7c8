"""bfloat16 convolutions for training the compression transforms (mixed precision).

Why: nearly all of a training step's time goes into the convolutions between feature maps
(analysis convs 1-3, synthesis deconvs 0-2: 192 channels at up to 128x128 per 256x256 crop).
On CPUs with AVX512_BF16 (and on accelerators) those run about twice as fast in bfloat16;
a whole step of fine-tuning the shipped default on 2 cores ran 1.5-1.7 times as fast (see
``benchmarks/bfloat16_training.py`` and the README). Keras' ``mixed_bfloat16`` policy computes
a layer in bfloat16 and keeps its weights, and so the optimizer's updates, in float32.

What stays float32: the first analysis conv (its input is the image: bfloat16 keeps 8
significant bits, so pixels would be rounded by up to half a grey level) and the last
synthesis deconv (its output is the reconstruction, whose error at 30+ dB is about 0.01).
With those two in bfloat16, the gradients of the pixel-side weights pointed elsewhere
(cosine 0.28 for the output FiLM's shift, -0.17 for the first conv's kernel, against the
float32 gradient of the same batch and noise); without them every weight's gradient has a
cosine of 0.95-0.99 and the loss agrees to 3e-5. The FiLM and GDN layers after each conv,
the hyper transforms and the entropy model compute in float32 (their inputs are cast back).

The convs are sublayers built by their transform, not saved on their own, so a network saved
while training in bfloat16 loads (and codes) in float32: this is a training setting only.
"""

from __future__ import annotations

import contextlib

_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
COMPUTE_DTYPES = tuple(_POLICIES)  # ("float32", "bfloat16")
_BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU has bfloat16 instructions (AVX512_BF16 or AMX-BF16), from Linux's
    ``cpuinfo_path``; None where that file cannot be read (another OS). Without them
    bfloat16 is emulated, and can be slower than float32."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as cpuinfo:
            flags = {flag for line in cpuinfo if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return None
    return any(flag in flags for flag in _BFLOAT16_CPU_FLAGS)


def emulation_warning(compute_dtype: str, devices: list[str] | None = None,
                      cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """A warning for training in ``compute_dtype`` on ``devices`` (default: the current Keras
    backend's, e.g. ``["cpu:0"]``), or None: bfloat16 on CPUs only, without bfloat16
    instructions (emulated there, and possibly slower than float32)."""
    if compute_dtype != "bfloat16":
        return None
    if devices is None:
        import keras  # pylint: disable=import-outside-toplevel  # the module itself stays importable without a backend

        devices = keras.distribution.list_devices()
    if any(not device.lower().startswith("cpu") for device in devices):
        return None
    if cpu_has_bfloat16(cpuinfo_path) is not False:
        return None
    return ("conv_compute_dtype bfloat16: this CPU has no bfloat16 instructions (AVX512_BF16 / "
            "AMX-BF16), so bfloat16 is emulated and may be slower than float32; measure with "
            "python -m benchmarks.bfloat16_training.")


def feature_convs(network) -> list:
    """The convs of a ``CompressionNetwork`` whose input and output are both feature maps:
    analysis convs 1-3 and synthesis deconvs 0-2 (see the module docstring)."""
    return list(network.analysis.convs[1:]) + list(network.synthesis.convs[:-1])


def set_conv_compute_dtype(network, compute_dtype: str) -> None:
    """Computes the feature convs of ``network`` in ``compute_dtype`` ('float32' or
    'bfloat16'); the weights stay float32, and the inputs and outputs of every other layer too.

    Raises:
      ValueError: an unknown ``compute_dtype``.
    """
    if compute_dtype not in _POLICIES:
        raise ValueError(f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    for conv in feature_convs(network):
        conv.dtype_policy = _POLICIES[compute_dtype]


def conv_compute_dtype(network) -> str:
    """'float32' or 'bfloat16': what :func:`set_conv_compute_dtype` last set (float32 for a
    loaded network)."""
    return "bfloat16" if feature_convs(network)[0].compute_dtype == "bfloat16" else "float32"


@contextlib.contextmanager
def computing_in_float32(network):
    """Within the block, ``network`` computes entirely in float32 (for evaluating a network
    that trains in bfloat16); its setting is restored afterwards."""
    previous = conv_compute_dtype(network)
    set_conv_compute_dtype(network, "float32")
    try:
        yield network
    finally:
        set_conv_compute_dtype(network, previous)
