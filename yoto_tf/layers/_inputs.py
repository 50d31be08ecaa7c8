"""Input checks shared by the conditioned layers."""


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
    if len(x_shape) not in x_ranks:
        raise ValueError(
            f"Layer {layer_name!r}: x must have rank {' or '.join(map(str, x_ranks))}, "
            f"got shape {tuple(x_shape)}."
        )
    if len(cond_shape) != 2 or cond_shape[-1] is None:
        raise ValueError(
            f"Layer {layer_name!r}: conditioning must be [batch, d] with known d, "
            f"got shape {tuple(cond_shape)}."
        )
    if x_shape[-1] is None:
        raise ValueError(f"Layer {layer_name!r}: the channel axis of x must be known.")
