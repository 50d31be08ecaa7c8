"""The lambda-conditioned style transformer network (Johnson et al. / Magenta).

Layout (channels at width multiplier 1; every conv is reflect-padded, bias-free, and followed
by a ConditionalInstanceNormalization):

  pad to a multiple of 4 (reflect)
  conv 9x9/1 (32) -> 3x3/2 (64) -> 3x3/2 (128), ReLU
  5 residual blocks: conv 3x3 -> CIN -> ReLU -> conv 3x3 -> CIN, plus the identity
  nearest upsample x2 + conv 3x3 (64), ReLU -> nearest upsample x2 + conv 3x3 (32), ReLU
  conv 9x9 (3) -> CIN -> sigmoid
  crop back to the input size

ONE ConditioningNetwork maps the raw loss weights lambda [B, k] to an embedding; every CIN
reads it through its own Dense head (Babaeizadeh & Ghiasi 2020). With ``num_styles > 1``
the model also takes a style index and concatenates ``one_hot(style_index)`` to the
embedding, which gives every CIN head a per-style gamma/beta (Dumoulin et al. 2017)
combined with the lambda conditioning.

Only ops with TFLite builtin kernels and dynamic H, W: MIRROR_PAD, CONV_2D,
RESIZE_NEAREST_NEIGHBOR, MEAN/SQUARED_DIFFERENCE (CIN), ONE_HOT, STRIDED_SLICE, LOGISTIC.
"""

from __future__ import annotations

import keras
from keras import ops

from yoto_tf.coefficients import LossSpace
from yoto_tf.layers import (
    LAMBDA_INPUT,
    ConditionalInstanceNormalization,
    ConditioningNetwork,
    InstanceNormalization,
    NearestUpsampling2D,
    ReflectionPadding2D,
)

IMAGE_INPUT = "image"
STYLE_INPUT = "style_index"
SIZE_MULTIPLE = 4
"""Two stride-2 convolutions: the network works on sizes that are multiples of 4."""

_BASE_CHANNELS = {"c1": 32, "c2": 64, "c3": 128, "up1": 64, "up2": 32}
_NUM_RESIDUAL_BLOCKS = 5


@keras.saving.register_keras_serializable(package="yoto_tf")
class PadToMultiple(keras.layers.Layer):
    """Reflect-pads H and W at the bottom/right up to the next multiple of ``multiple``.

    Works with dynamic shapes (the pad amounts are computed from ``shape(x)`` in the graph).

    Call arguments:
      x: [B, H, W, C] with H, W >= multiple (reflection needs the pad to be < the size).

    Returns:
      [B, ceil(H / multiple) * multiple, ceil(W / multiple) * multiple, C].
    """

    def __init__(self, multiple=SIZE_MULTIPLE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        # Reflect-pad by the constant maximum, then slice to the rounded size: the same
        # values as padding by the exact amount, but the static channel count survives
        # (a pad with computed amounts loses every static dimension, and TFLite's
        # CONV_2D needs a known input depth).
        shape = ops.shape(x)
        height = (shape[1] + self.multiple - 1) // self.multiple * self.multiple
        width = (shape[2] + self.multiple - 1) // self.multiple * self.multiple
        most = self.multiple - 1
        padded = ops.pad(x, [[0, 0], [0, most], [0, most], [0, 0]], mode="reflect")
        return padded[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        rounded = [None if s is None else -(-s // self.multiple) * self.multiple for s in (h, w)]
        return (b, rounded[0], rounded[1], c)

    def get_config(self):
        config = super().get_config()
        config.update(multiple=self.multiple)
        return config


@keras.saving.register_keras_serializable(package="yoto_tf")
class CropToReference(keras.layers.Layer):
    """Crops x to the height and width of a reference tensor (top-left corner kept).

    Call arguments:
      inputs: a pair ``(x, reference)``: x [B, H', W', C], reference [B, H, W, ...] with
        H <= H', W <= W'.

    Returns:
      [B, H, W, C].
    """

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package="yoto_tf")
class StyleOneHot(keras.layers.Layer):
    """One-hot encodes a style index.

    Call arguments:
      style_index: int [B], values in [0, num_styles) (others give an all-zero row).

    Returns:
      float32 [B, num_styles].
    """

    def __init__(self, num_styles, **kwargs):
        super().__init__(**kwargs)
        self.num_styles = int(num_styles)

    def call(self, style_index):
        return ops.one_hot(ops.cast(style_index, "int32"), self.num_styles, dtype="float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_styles)

    def get_config(self):
        config = super().get_config()
        config.update(num_styles=self.num_styles)
        return config


@keras.saving.register_keras_serializable(package="yoto_tf")
class BroadcastToMap(keras.layers.Layer):
    """Repeats a per-example vector over the pixels of a map.

    Call arguments:
      inputs: a pair ``(vector [B, d], map [B, h, w, m])``.

    Returns:
      float32 [B, h, w, d].
    """

    def call(self, inputs):
        vector, reference = inputs
        shape = ops.shape(reference)
        ones = ops.ones((shape[0], shape[1], shape[2], 1), dtype=vector.dtype)
        return ones * vector[:, None, None, :]

    def compute_output_shape(self, input_shape):
        vector_shape, map_shape = input_shape
        return (vector_shape[0], map_shape[1], map_shape[2], vector_shape[-1])


def _channels(base: int, width_multiplier: float) -> int:
    return max(1, int(round(base * width_multiplier)))


def build_network(
    loss_space: LossSpace,
    num_styles: int = 1,
    width_multiplier: float = 1.0,
    conditioning_units: int = 256,
    conditioning_layers: int = 2,
    conditioning_activation: str = "silu",
    conditioned: bool = True,
    lambda_map: bool = False,
    name: str = "style_transformer",
) -> keras.Model:
    """Builds the style transformer as a Keras functional model.

    Args:
      loss_space: the LossSpace lambda follows (stored in the model's ConditioningNetwork).
      num_styles: number of styles held by the model; > 1 adds the ``style_index`` input.
      width_multiplier: scales every channel count (0.5 halves the widths).
      conditioning_units, conditioning_layers: size of the ConditioningNetwork MLP.
      conditioning_activation: its activation. SiLU rather than ReLU: with ReLU, many
        units die during training (measured: 66% of the second layer after 1500 steps)
        and the embedding goes flat over parts of the lambda range, so the knobs stop
        having an effect there.
      conditioned: False builds the same network with plain instance normalization and no
        lambda input (the unconditioned baseline of the speed benchmark).
      lambda_map: True takes a lambda MAP (one weighting per pixel) instead of one lambda
        per image; same weights as the per-image network (see :func:`lambda_map_network`).
      name: model name.

    Inputs (by name; a list in this order also works):
      ``image``: float32 [B, H, W, 3] in [0, 1], any H, W >= 4.
      ``loss_weights``: float32 [B, k], raw lambda in ``loss_space.names`` order (the
        network normalizes it); with ``lambda_map`` a map [B, h, w, k] covering the image
        (any h, w; every conditioned layer resizes it to its own resolution, so H/4 x W/4
        is enough); absent when ``conditioned=False``.
      ``style_index``: int32 [B] in [0, num_styles); only when ``num_styles > 1``.

    Returns:
      A model whose output is the stylized image, float32 [B, H, W, 3] in (0, 1).
    """
    if num_styles < 1:
        raise ValueError(f"num_styles must be >= 1, got {num_styles}.")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}.")
    image = keras.Input((None, None, 3), name=IMAGE_INPUT)
    inputs = [image]
    cond = None
    if conditioned:
        lam_shape = (None, None, loss_space.size) if lambda_map else (loss_space.size,)
        lam = keras.Input(lam_shape, name=LAMBDA_INPUT)
        inputs.append(lam)
        cond = ConditioningNetwork(
            loss_space, units=conditioning_units, num_layers=conditioning_layers,
            activation=conditioning_activation, name="conditioning",
        )(lam)
    if num_styles > 1:
        style = keras.Input((), dtype="int32", name=STYLE_INPUT)
        inputs.append(style)
        one_hot = StyleOneHot(num_styles, name="style_one_hot")(style)
        if lambda_map and cond is not None:
            one_hot = BroadcastToMap(name="style_over_map")([one_hot, cond])
        cond = one_hot if cond is None else keras.layers.Concatenate(name="style_and_lambda")(
            [cond, one_hot]
        )

    def norm(x, label):
        if cond is None:
            return InstanceNormalization(name=f"{label}_in")(x)
        return ConditionalInstanceNormalization(name=f"{label}_cin")([x, cond])

    def conv(x, filters, kernel, label, strides=1):
        x = ReflectionPadding2D(kernel // 2, name=f"{label}_pad")(x)
        x = keras.layers.Conv2D(
            filters, kernel, strides=strides, padding="valid", use_bias=False, name=label
        )(x)
        return norm(x, label)

    width = {key: _channels(c, width_multiplier) for key, c in _BASE_CHANNELS.items()}
    x = PadToMultiple(SIZE_MULTIPLE, name="pad_to_multiple")(image)
    x = keras.layers.ReLU(name="conv1_relu")(conv(x, width["c1"], 9, "conv1"))
    x = keras.layers.ReLU(name="conv2_relu")(conv(x, width["c2"], 3, "conv2", strides=2))
    x = keras.layers.ReLU(name="conv3_relu")(conv(x, width["c3"], 3, "conv3", strides=2))
    for i in range(1, _NUM_RESIDUAL_BLOCKS + 1):
        h = keras.layers.ReLU(name=f"res{i}_relu")(conv(x, width["c3"], 3, f"res{i}_a"))
        h = conv(h, width["c3"], 3, f"res{i}_b")
        x = keras.layers.Add(name=f"res{i}_add")([x, h])
    for label in ("up1", "up2"):
        x = NearestUpsampling2D(2, name=f"{label}_upsample")(x)
        x = keras.layers.ReLU(name=f"{label}_relu")(conv(x, width[label], 3, label))
    x = conv(x, 3, 9, "to_rgb")
    x = keras.layers.Activation("sigmoid", name="sigmoid")(x)
    output = CropToReference(name="crop_to_input")([x, image])
    return keras.Model(inputs, output, name=name)


def lambda_map_network(network: keras.Model) -> keras.Model:
    """The lambda-map twin of a (trained, per-image lambda) transformer, sharing its weights.

    The twin's ``loss_weights`` input is a map [B, h, w, k]; everything else is the same.
    A constant map gives exactly the per-image output; a map that varies across the image
    modulates every conditional instance norm per pixel.

    Raises:
      ValueError: ``network`` was not built by :func:`build_network` with conditioning.
    """
    return _rebuilt(network, lambda_map=True, name=f"{network.name}_lambda_map")


def per_image_network(map_network: keras.Model, name: str = "style_transformer") -> keras.Model:
    """The inverse of :func:`lambda_map_network`: the per-image lambda network [B, k] with
    the weights of a lambda-map transformer (what a model trained with lambda maps saves).

    Raises:
      ValueError: ``map_network`` was not built by :func:`build_network` with conditioning.
    """
    return _rebuilt(map_network, lambda_map=False, name=name)


def takes_lambda_map(network: keras.Model) -> bool:
    """Whether the transformer's ``loss_weights`` input is a map [B, h, w, k]."""
    return any(t.name == LAMBDA_INPUT and len(t.shape) == 4 for t in network.inputs)


def _rebuilt(network: keras.Model, lambda_map: bool, name: str) -> keras.Model:
    """``network``'s architecture with a per-image or a map lambda input, and its weights."""
    try:
        conditioning = network.get_layer("conditioning")
    except ValueError:
        raise ValueError(f"{network.name!r} has no lambda conditioning to turn into a map.") from None
    styles = [layer.num_styles for layer in network.layers if isinstance(layer, StyleOneHot)]
    width = network.get_layer("conv1").filters / _BASE_CHANNELS["c1"]
    twin = build_network(
        conditioning.loss_space, num_styles=styles[0] if styles else 1, width_multiplier=width,
        conditioning_units=conditioning.units, conditioning_layers=conditioning.num_layers,
        conditioning_activation=keras.activations.serialize(conditioning.activation),
        lambda_map=lambda_map, name=name,
    )
    twin.set_weights(network.get_weights())
    return twin
