"""Small mean-scale compression networks for the entropy-model tests (channel context,
residual prediction): built the same way every time, and "trained" by giving the zero-started
last conv of each slice network random weights."""

from __future__ import annotations

import keras
import numpy as np

from yoto_tf.compression import CompressionNetwork, compression_loss_space


def small_mean_scale_network(**options) -> CompressionNetwork:
    """A built N/M 16/24 mean-scale network (synthesis 16, lambda 1e-4..1e-2, mixed
    quantization), seeded so that every call gives the same weights; ``options`` go to
    CompressionNetwork (e.g. ``channel_slices=3``)."""
    keras.utils.set_random_seed(0)
    network = CompressionNetwork(compression_loss_space((1e-4, 1e-2)), 16, 24, 16, seed=0,
                                 mean_scale=True, mixed_quantization=True, **options)
    network.build()
    return network


def randomize_slice_outputs(network: CompressionNetwork) -> CompressionNetwork:
    """``network`` with the last conv of every channel-context and residual-prediction slice
    network set to random values, as training would (they start at zero); returns it."""
    rng = np.random.default_rng(1)
    for layer in network.channel_context + network.residual_predictors:
        for weight, spread in ((layer.convs[-1].kernel, 0.05), (layer.convs[-1].bias, 1.0)):
            weight.assign(rng.normal(0.0, spread, weight.shape).astype(np.float32))
    return network
