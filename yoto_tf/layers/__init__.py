"""Keras 3 layers for loss-conditioned networks (all registered as ``yoto_tf>Name``)."""

from yoto_tf.layers.conditioning import LAMBDA_INPUT, ConditioningNetwork, find_loss_space
from yoto_tf.layers.film import FiLM
from yoto_tf.layers.gdn import GDN
from yoto_tf.layers.normalization import ConditionalInstanceNormalization, InstanceNormalization
from yoto_tf.layers.spatial import NearestUpsampling2D, ReflectionPadding2D

__all__ = [
    "ConditionalInstanceNormalization",
    "ConditioningNetwork",
    "FiLM",
    "GDN",
    "LAMBDA_INPUT",
    "InstanceNormalization",
    "NearestUpsampling2D",
    "ReflectionPadding2D",
    "find_loss_space",
]
