"""The lambda-conditioning network: the shared MLP on the normalized loss weights."""

from __future__ import annotations

import keras
from keras import ops

from yoto_tf.coefficients import LossSpace, as_loss_space

LAMBDA_INPUT = "loss_weights"
"""The name of the raw-lambda input of every yoto_tf network (Keras input, TFLite signature)."""


@keras.saving.register_keras_serializable(package="yoto_tf")
class ConditioningNetwork(keras.layers.Layer):
    """Maps raw loss coefficients to the embedding every conditioned layer reads.

    The network owns the model's :class:`~yoto_tf.coefficients.LossSpace`, so a saved model
    carries its coefficient names and ranges (see :func:`find_loss_space`). It normalizes
    lambda with ``LossSpace.to_conditioning`` (log for log-uniform coefficients, scaled to
    about [-1, 1]) and applies ``num_layers`` Dense layers (YOTO: 2 x 256 on Shapes3D,
    2 x 512 on CIFAR-10). Each FiLM / ConditionalInstanceNormalization layer then reads
    this embedding through a small head of its own.

    Args:
      loss_space: a LossSpace (or its config dict).
      units: width of every Dense layer, i.e. of the embedding.
      num_layers: number of Dense layers (>= 1).
      activation: activation after every Dense layer.

    Call arguments:
      lam: float32 [B, k], the raw loss weights in the order of ``loss_space.names``; or a
        lambda map [B, h, w, k] (one weighting per pixel; every Dense acts per pixel).

    Returns:
      float32 [B, units] (or [B, h, w, units] for a map).
    """

    def __init__(self, loss_space, units=256, num_layers=2, activation="relu", **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        self.loss_space: LossSpace = as_loss_space(loss_space)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.activation = keras.activations.get(activation)
        self.dense_layers = [
            keras.layers.Dense(self.units, activation=self.activation, name=f"dense_{i}")
            for i in range(self.num_layers)
        ]

    def build(self, input_shape):
        k = input_shape[-1]
        if k is not None and k != self.loss_space.size:
            raise ValueError(
                f"{self.name}: lambda has {k} columns but the LossSpace has "
                f"{self.loss_space.size} ({', '.join(self.loss_space.names)})."
            )
        shape = tuple(input_shape[:-1]) + (self.loss_space.size,)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = tuple(input_shape[:-1]) + (self.units,)

    def call(self, lam):
        h = self.loss_space.to_conditioning(ops.cast(lam, "float32"))
        for layer in self.dense_layers:
            h = layer(h)
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            loss_space=self.loss_space.get_config(),
            units=self.units,
            num_layers=self.num_layers,
            activation=keras.activations.serialize(self.activation),
        )
        return config


def find_loss_space(model: keras.layers.Layer) -> LossSpace:
    """Returns the LossSpace of the (unique) ConditioningNetwork inside ``model``.

    Raises:
      ValueError: if the model has no ConditioningNetwork (it is not a yoto_tf model) or
        several with different LossSpaces.
    """
    spaces = {
        layer.loss_space
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, ConditioningNetwork)
    }
    if not spaces:
        raise ValueError(
            f"Model {model.name!r} has no yoto_tf ConditioningNetwork layer, so it is not a "
            "loss-conditioned yoto_tf model (no LossSpace to read)."
        )
    if len(spaces) > 1:
        raise ValueError(f"Model {model.name!r} holds several different LossSpaces: {spaces}.")
    return spaces.pop()
