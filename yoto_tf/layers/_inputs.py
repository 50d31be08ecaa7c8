"""Input checks and the lambda-map resize shared by the conditioned layers."""

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
    if height is not None and width is not None:  # static (always so under JAX's jit)
        return ops.image.resize(cond, (height, width), interpolation="bilinear")
    # Dynamic H, W (a TensorFlow graph of any image size): keras.ops.image.resize needs
    # Python ints, tf.image.resize takes the runtime shape. Imported here so the layers
    # still import in a process without TensorFlow (JAX backend).
    import tensorflow as tf

    return tf.image.resize(cond, tf.shape(x)[1:3], method="bilinear")
