"""The smallest complete YOTO problem: a 2-D point pulled between two targets.

Loss ``L(y; lambda) = ||y - b||^2 + lambda * ||y - a||^2`` with lambda log-uniform on
[0.01, 100]. Its minimizer is known in closed form and is NONLINEAR in lambda:
``y*(lambda) = (b + lambda * a) / (1 + lambda)`` (a sigmoid in log lambda). A network
that sees lambda can follow y*(lambda); one that does not can only learn a single
compromise point. Used by the tests (proof the mechanism works) and by
``python -m trainers.toy`` (the trainer core's smallest client).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.layers import LAMBDA_INPUT, ConditioningNetwork, FiLM

TARGET_A = np.array([3.0, 1.0], np.float32)
TARGET_B = np.array([-1.0, 0.5], np.float32)


def loss_space(low: float = 0.01, high: float = 100.0) -> LossSpace:
    """``to_b`` fixed at 1, ``to_a`` (lambda) log-uniform on [low, high]."""
    return LossSpace([Coefficient.fixed("to_b", 1.0), Coefficient("to_a", low, high)])


def optimum(lam_a: np.ndarray) -> np.ndarray:
    """y*(lambda) [N, 2] for lambda values [N] of the ``to_a`` coefficient."""
    lam_a = np.asarray(lam_a, np.float32)[:, None]
    return (TARGET_B + lam_a * TARGET_A) / (1.0 + lam_a)


def build_network(space: LossSpace, conditioned: bool = True, units: int = 64) -> keras.Model:
    """Inputs ``(x [B, 1], lam [B, 2])`` -> y [B, 2]; ``conditioned=False`` drops the FiLM
    layers, so the output cannot depend on lambda (the baseline YOTO is compared to)."""
    x = keras.Input((1,), name="x")
    lam = keras.Input((space.size,), name=LAMBDA_INPUT)
    embedding = ConditioningNetwork(space, units=units, name="conditioning")(lam)
    h = x
    for i in range(2):
        h = keras.layers.Dense(units, name=f"dense_{i}")(h)
        if conditioned:
            h = FiLM(name=f"film_{i}")([h, embedding])
        h = keras.layers.ReLU()(h)
    y = keras.layers.Dense(2, name="y")(h)
    return keras.Model([x, lam], y, name="two_targets")


def loss_terms(inputs, y):
    """Per-example terms {name: [B]} matching :func:`loss_space`."""
    return {
        "to_b": ops.sum(ops.square(y - TARGET_B), axis=-1),
        "to_a": ops.sum(ops.square(y - TARGET_A), axis=-1),
    }
