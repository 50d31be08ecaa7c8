"""yoto_tf: loss-conditional training ("You Only Train Once") for TensorFlow / Keras 3.

One model is trained on a distribution of loss weightings lambda; at inference lambda is
an input, a knob along the trade-off. See README.md.
"""

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.layers import (
    ConditionalInstanceNormalization,
    ConditioningNetwork,
    FiLM,
    GDN,
    NearestUpsampling2D,
    ReflectionPadding2D,
    find_loss_space,
)
from yoto_tf.training import LossConditionalModel

__version__ = "0.1.0"

__all__ = [
    "Coefficient",
    "ConditionalInstanceNormalization",
    "ConditioningNetwork",
    "FiLM",
    "GDN",
    "LossConditionalModel",
    "LossSpace",
    "NearestUpsampling2D",
    "ReflectionPadding2D",
    "find_loss_space",
]
