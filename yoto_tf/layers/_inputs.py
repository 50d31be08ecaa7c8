"""Input checks and the lambda-map resize shared by the conditioned layers."""

import keras
import numpy as np
from keras import ops


def split_conditioned_inputs(layer_name, inputs):
    """Unpacks ``(x, conditioning)`` and explains the mistake when it is not a pair."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            f"Layer {layer_name!r} is conditioned: call it on a pair (x, conditioning), "
            f"e.g. layer([x, embedding]); got {type(inputs).__name__} "
            f"{getattr(inputs, 'shape', '')}."
        )
    return inputs[0], inputs[1]


def check_conditioning_shape(layer_name, x_shape, cond_shape, x_ranks):
    """Per-example conditioning [B, d] for any allowed x; a map [B, h, w, d] for x [B, H, W, C]."""
    if len(x_shape) not in x_ranks:
        raise ValueError(
            f"Layer {layer_name!r}: x must have rank {' or '.join(map(str, x_ranks))}, "
            f"got shape {tuple(x_shape)}."
        )
    ranks = (2, 4) if len(x_shape) == 4 else (2,)
    if len(cond_shape) not in ranks or cond_shape[-1] is None:
        allowed = "[batch, d] or a map [batch, h, w, d]" if len(ranks) == 2 else "[batch, d]"
        raise ValueError(
            f"Layer {layer_name!r}: conditioning must be {allowed} with known d, "
            f"got shape {tuple(cond_shape)}."
        )
    if x_shape[-1] is None:
        raise ValueError(f"Layer {layer_name!r}: the channel axis of x must be known.")


def conditioning_at(cond, x):
    """Broadcastable modulation input for ``x`` [B, H, W, C]: a per-example ``cond`` [B, d]
    becomes [B, 1, 1, d]; a map [B, h, w, d] is resized (bilinear) to [B, H, W, d]."""
    if len(cond.shape) == 2:
        return cond[:, None, None, :]
    height, width = x.shape[1], x.shape[2]
    static = None not in (height, width, cond.shape[1], cond.shape[2])
    if static and keras.backend.standardize_dtype(cond.dtype) == "float64":
        # tf.image.resize computes in float32 whatever the input; the compression codec's
        # float64 entropy-parameter pass must stay float64 end to end.
        return _bilinear_float64(cond, height, width)
    if height is not None and width is not None:  # static (always so under JAX's jit)
        return ops.image.resize(cond, (height, width), interpolation="bilinear")
    # Dynamic H, W (a TensorFlow graph of any image size): keras.ops.image.resize needs
    # Python ints, tf.image.resize takes the runtime shape. Imported here so the layers
    # still import in a process without TensorFlow (JAX backend).
    import tensorflow as tf

    return tf.image.resize(cond, tf.shape(x)[1:3], method="bilinear")


def modulation_at(cond, x, project):
    """``project`` (a per-pixel affine map d -> m, e.g. ``c @ kernel + bias``) of ``cond``,
    broadcastable to ``x`` [B, H, W, C]: [B, 1, 1, m] for a per-example ``cond`` [B, d];
    [B, H, W, m] for a map [B, h, w, d].

    For a map, a bilinear resize is a convex combination of source pixels (its weights sum
    to 1), so it commutes with an affine map: ``project(resize(cond)) == resize(project(cond))``
    up to float rounding. Projecting at the coarser of the two grids computes the same
    function at a fraction of the cost (a 16-pixel-cell map under a 128 x 128 layer:
    64 times fewer matmul rows).
    """
    if len(cond.shape) == 2:
        return project(cond)[:, None, None, :]
    map_pixels = _pixels(cond.shape)
    x_pixels = _pixels(x.shape)
    if map_pixels is not None and x_pixels is not None and map_pixels > x_pixels:
        return project(conditioning_at(cond, x))
    return conditioning_at(project(cond), x)


def _pixels(shape):
    """h * w of a [B, h, w, d] shape, or None if either is unknown."""
    return None if None in (shape[1], shape[2]) else shape[1] * shape[2]


def _axis_weights(size_in: int, size_out: int):
    """Source indices and weights of a half-pixel-centre bilinear resize along one axis
    (TensorFlow's ``resize_bilinear(half_pixel_centers=True)``)."""
    centres = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    centres = np.clip(centres, 0.0, size_in - 1)
    low = np.floor(centres).astype(np.int32)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, centres - low


def _bilinear_float64(cond, height: int, width: int):
    """Bilinear resize of a float64 map [B, h, w, d] to [B, height, width, d], in float64."""
    if (cond.shape[1], cond.shape[2]) == (height, width):
        return cond
    for axis, size in ((1, height), (2, width)):
        low, high, weight = _axis_weights(cond.shape[axis], size)
        shape = [1, 1, 1, 1]
        shape[axis] = size
        weight = ops.convert_to_tensor(weight.reshape(shape), "float64")
        lower = ops.take(cond, low, axis=axis)
        cond = lower + (ops.take(cond, high, axis=axis) - lower) * weight
    return cond
