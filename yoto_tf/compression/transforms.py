"""The conditioned transforms of the compression network (``model.CompressionNetwork``).

Every conv is followed by FiLM on the shared lambda embedding (YOTO's "FiLM after each conv
block, before the nonlinearity"); each transform is called on a pair
``(x [B, H, W, C_in], embedding [B, d])``:

* :class:`AnalysisTransform` ``g_a``: 4 x (conv 5x5 stride 2), GDN after the first three:
  x [B, H, W, 3] in [0, 1] -> y [B, H/16, W/16, M];
* :class:`SynthesisTransform` ``g_s``: the mirror with transposed convs and inverse GDN;
* :class:`HyperAnalysisTransform` ``h_a`` and :class:`HyperSynthesisTransform` ``h_s`` (or
  :class:`MeanScaleHyperSynthesisTransform`, which predicts a mean too);
* per slice of y, :class:`SliceContextTransform` (channel context) and
  :class:`ResidualPredictionTransform` (latent residual prediction).

Their registered names are those they had in ``model.py``, so saved files load.
"""

from __future__ import annotations

import keras
from keras import ops

from yoto_tf.layers import GDN, FiLM


class _ConditionedStack(keras.layers.Layer):
    """Convs, each followed by FiLM on the embedding, then an optional nonlinearity.

    Subclasses set ``self.convs`` and ``self.activations`` (a layer or None per conv).
    Call arguments: a pair ``(x [B, H, W, C_in], embedding [B, d])``.
    """

    def _make_films(self):
        self.films = [FiLM(name=f"film_{i}", dtype=self.dtype_policy) for i in range(len(self.convs))]

    def build(self, input_shape):
        x_shape, emb_shape = input_shape
        for conv, film, act in zip(self.convs, self.films, self.activations):
            conv.build(x_shape)
            x_shape = conv.compute_output_shape(x_shape)
            film.build((x_shape, emb_shape))
            if act is not None and not act.built:
                act.build(x_shape)

    def call(self, inputs):
        x, emb = inputs
        for conv, film, act in zip(self.convs, self.films, self.activations):
            x = film((conv(x), emb))
            if act is not None:
                x = act(x)
        return x

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        for conv in self.convs:
            x_shape = conv.compute_output_shape(x_shape)
        return x_shape


def _conv(filters, kernel, strides, name, dtype, transpose=False):
    cls = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return cls(filters, kernel, strides=strides, padding="same", name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="yoto_tf")
class AnalysisTransform(_ConditionedStack):
    """g_a: (x [B, H, W, 3] in [0, 1], embedding) -> y [B, H/16, W/16, num_latent]."""

    def __init__(self, num_filters=128, num_latent=192, **kwargs):
        super().__init__(**kwargs)
        self.num_filters, self.num_latent = int(num_filters), int(num_latent)
        widths = [self.num_filters] * 3 + [self.num_latent]
        self.convs = [_conv(w, 5, 2, f"conv_{i}", self.dtype_policy) for i, w in enumerate(widths)]
        self.activations = [GDN(name=f"gdn_{i}", dtype=self.dtype_policy) for i in range(3)] + [None]
        self._make_films()

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "num_latent": self.num_latent}


@keras.saving.register_keras_serializable(package="yoto_tf")
class SynthesisTransform(_ConditionedStack):
    """g_s: (y_hat [B, h, w, M], embedding) -> x_hat [B, 16 h, 16 w, 3] (about [0, 1])."""

    def __init__(self, num_filters=128, **kwargs):
        super().__init__(**kwargs)
        self.num_filters = int(num_filters)
        widths = [self.num_filters] * 3 + [3]
        self.convs = [
            _conv(w, 5, 2, f"deconv_{i}", self.dtype_policy, transpose=True)
            for i, w in enumerate(widths)
        ]
        self.activations = [
            GDN(inverse=True, name=f"igdn_{i}", dtype=self.dtype_policy) for i in range(3)
        ] + [None]
        self._make_films()

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters}


@keras.saving.register_keras_serializable(package="yoto_tf")
class HyperAnalysisTransform(_ConditionedStack):
    """h_a: (|y| [B, h, w, M], embedding) -> z [B, h/4, w/4, num_filters]."""

    def __init__(self, num_filters=128, **kwargs):
        super().__init__(**kwargs)
        self.num_filters = int(num_filters)
        n = self.num_filters
        self.convs = [
            _conv(n, 3, 1, "conv_0", self.dtype_policy),
            _conv(n, 5, 2, "conv_1", self.dtype_policy),
            _conv(n, 5, 2, "conv_2", self.dtype_policy),
        ]
        self.activations = [keras.layers.ReLU(dtype=self.dtype_policy) for _ in range(2)] + [None]
        self._make_films()

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters}


@keras.saving.register_keras_serializable(package="yoto_tf")
class HyperSynthesisTransform(_ConditionedStack):
    """h_s: (z_hat [B, h, w, N], embedding) -> continuous scale index [B, 4h, 4w, M]
    (unbounded; ``entropy_models.bound_scale_index`` clips it to the table)."""

    INITIAL_INDEX = 18.0  # scale ~1 at the start: far from both ends of the table

    def __init__(self, num_filters=128, num_latent=192, **kwargs):
        super().__init__(**kwargs)
        self.num_filters, self.num_latent = int(num_filters), int(num_latent)
        n, m = self.num_filters, self.num_latent
        self.convs = [
            _conv(n, 5, 2, "deconv_0", self.dtype_policy, transpose=True),
            _conv(n, 5, 2, "deconv_1", self.dtype_policy, transpose=True),
            keras.layers.Conv2DTranspose(
                m, 3, strides=1, padding="same", name="deconv_2", dtype=self.dtype_policy,
                bias_initializer=keras.initializers.Constant(self.INITIAL_INDEX),
            ),
        ]
        self.activations = [keras.layers.ReLU(dtype=self.dtype_policy) for _ in range(2)] + [None]
        self._make_films()

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "num_latent": self.num_latent}


@keras.saving.register_keras_serializable(package="yoto_tf")
class MeanScaleHyperSynthesisTransform(_ConditionedStack):
    """h_s of the mean-scale hyperprior: (z_hat [B, h, w, N], embedding) -> (mean
    [B, 4h, 4w, M], continuous scale index [B, 4h, 4w, M], unbounded).

    Widths N, 3N/2, 2M as in Minnen et al. 2018; the scale half starts at
    ``HyperSynthesisTransform.INITIAL_INDEX`` (scale ~1), the mean half at 0.
    """

    def __init__(self, num_filters=128, num_latent=192, **kwargs):
        super().__init__(**kwargs)
        self.num_filters, self.num_latent = int(num_filters), int(num_latent)
        n, m = self.num_filters, self.num_latent
        self.convs = [
            _conv(n, 5, 2, "deconv_0", self.dtype_policy, transpose=True),
            _conv(n * 3 // 2, 5, 2, "deconv_1", self.dtype_policy, transpose=True),
            _conv(2 * m, 3, 1, "deconv_2", self.dtype_policy, transpose=True),
        ]
        self.activations = [keras.layers.ReLU(dtype=self.dtype_policy) for _ in range(2)] + [None]
        self._make_films()

    def call(self, inputs):
        out = super().call(inputs)
        m = self.num_latent
        return out[..., :m], out[..., m:] + HyperSynthesisTransform.INITIAL_INDEX

    def compute_output_shape(self, input_shape):
        shape = super().compute_output_shape(input_shape)
        half = tuple(shape[:-1]) + (self.num_latent,)
        return half, half

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "num_latent": self.num_latent}


def _build_slice_stack(stack: _ConditionedStack, out_channels: int) -> None:
    """The layers of a per-slice network (:class:`SliceContextTransform`,
    :class:`ResidualPredictionTransform`): convs 3x3 stride 1 (``stack.num_filters``, ReLU;
    ``stack.num_filters``, ReLU; ``out_channels`` with kernel and bias starting at zero),
    each followed by FiLM."""
    n, dtype = stack.num_filters, stack.dtype_policy
    stack.convs = [
        _conv(n, 3, 1, "conv_0", dtype),
        _conv(n, 3, 1, "conv_1", dtype),
        keras.layers.Conv2D(out_channels, 3, padding="same", name="conv_2", dtype=dtype,
                            kernel_initializer="zeros"),
    ]
    stack.activations = [keras.layers.ReLU(dtype=dtype) for _ in range(2)] + [None]
    stack._make_films()  # pylint: disable=protected-access


@keras.saving.register_keras_serializable(package="yoto_tf")
class SliceContextTransform(_ConditionedStack):
    """The channel context of one slice of y: (features [B, h, w, C], embedding) -> offsets
    [B, h, w, 2 S] of the slice's S means (first half) and S scale indices (second half).

    ``features`` are the slice's hyper-synthesis mean and scale index and the decoded y_hat
    of every slice before it. Convs 3x3 stride 1 (num_filters, ReLU; num_filters, ReLU;
    2 S), each followed by FiLM; the last conv's kernel and bias start at zero, so a new
    context changes nothing until it is trained.
    """

    def __init__(self, num_filters=64, slice_channels=16, **kwargs):
        super().__init__(**kwargs)
        self.num_filters, self.slice_channels = int(num_filters), int(slice_channels)
        _build_slice_stack(self, 2 * self.slice_channels)

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "slice_channels": self.slice_channels}


@keras.saving.register_keras_serializable(package="yoto_tf")
class ResidualPredictionTransform(_ConditionedStack):
    """Latent residual prediction of one slice of y: (features [B, h, w, C], embedding) ->
    the correction [B, h, w, S] added to the slice's decoded y_hat, in (-0.5, 0.5)
    (``0.5 * tanh`` of the last conv, as in Minnen & Singh 2020).

    ``features`` are the slice's context features (its mean and scale index, the y_hat of
    the slices before it) and its own decoded y_hat. Convs 3x3 stride 1 (num_filters, ReLU;
    num_filters, ReLU; S), each followed by FiLM; the last conv's kernel and bias start at
    zero, so a new prediction changes nothing until it is trained.
    """

    def __init__(self, num_filters=64, slice_channels=16, **kwargs):
        super().__init__(**kwargs)
        self.num_filters, self.slice_channels = int(num_filters), int(slice_channels)
        _build_slice_stack(self, self.slice_channels)

    def call(self, inputs):
        return 0.5 * ops.tanh(super().call(inputs))

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "slice_channels": self.slice_channels}
