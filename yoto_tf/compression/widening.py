"""Function-preserving growth of a trained network: a wider synthesis transform
(:func:`widen_synthesis`), a channel context for its entropy model
(:func:`add_channel_context`) and latent residual prediction (:func:`add_residual_prediction`);
:func:`grow` applies any of them, as the trainers' flags ask, after :func:`check_growth` has
refused what cannot be done. :func:`drop_residual_prediction` is the one step back (not
function-preserving: for a prediction that training left near zero).

Why: the shipped models' diagnosis (``pretrained_models/mean_scale_64.md``, ``probe_compression``)
found the synthesis transform, not the encoder, the entropy model or quantization, to be
what limits quality at the top of the lambda range, and each further 6,000 steps of
training raise the top PSNR less (+0.31 dB from 24k to 30k steps). More synthesis channels
give the decoder capacity, but a wider network trained from scratch would throw away the
steps the narrow one has had. :func:`widen_synthesis` returns a network that computes what
the given one computes (the same reconstruction up to float rounding, the same encoder and
entropy model), with extra hidden channels in the synthesis for training to use (Net2Net's
"wider" operation, Chen et al. 2016, in its zero-output form):

* a new channel of hidden layer i gets the fresh layer's random incoming weights (the
  kernel entries of ``deconv_i`` that produce it) and a zero bias;
* its outgoing weights into the old channels (the entries of ``deconv_{i+1}`` that read it)
  are zero, so the old channels, and the image, are unchanged; their gradient is the new
  channel's activation times the upstream gradient, so the first training step makes them
  non-zero;
* FiLM: zero scale and shift for the new channels (the identity, as a new FiLM layer starts);
* inverse GDN: a new layer's beta and gamma diagonal for the new channels and zero coupling
  between old and new channels, so the old channels are normalized exactly as before.

Every other weight (conditioning MLP, analysis, hyper transforms, hyperprior) is copied.
"""

from __future__ import annotations

import numpy as np

from yoto_tf.compression.model import CompressionNetwork, check_channel_slices, check_residual_prediction


def grow(network: CompressionNetwork, synthesis_filters: int | None = None,
         channel_slices: int | None = None, residual_prediction: bool = False) -> CompressionNetwork:
    """``network`` with its synthesis widened to ``synthesis_filters`` (:func:`widen_synthesis`),
    then a channel context of ``channel_slices`` added (:func:`add_channel_context`), then
    latent residual prediction (:func:`add_residual_prediction`) when ``residual_prediction``;
    each step is skipped when its value is None (or 0, or False) or what ``network`` has already.

    Raises:
      ValueError: :func:`check_growth`'s, before anything is built.
    """
    check_growth(network, synthesis_filters, channel_slices, residual_prediction)
    if synthesis_filters is not None and synthesis_filters != network.synthesis_filters:
        network = widen_synthesis(network, synthesis_filters)
    if channel_slices and channel_slices != network.channel_slices:
        network = add_channel_context(network, channel_slices)
    if residual_prediction and not network.residual_prediction:
        network = add_residual_prediction(network)
    return network


def check_growth(network: CompressionNetwork, synthesis_filters: int | None = None,
                 channel_slices: int | None = None, residual_prediction: bool = False) -> None:
    """Raises ValueError naming why :func:`grow` cannot give ``network`` these values: a
    narrower synthesis, another number of context slices than it has, slices its latent
    cannot be coded in (``model.check_channel_slices``), or residual prediction without a
    channel context (``model.check_residual_prediction``)."""
    old_width = network.synthesis_filters
    if synthesis_filters is not None and (int(synthesis_filters) != synthesis_filters
                                          or synthesis_filters < old_width):
        raise ValueError(f"the synthesis can only be widened: it has {old_width} channels, "
                         f"asked for {synthesis_filters}")
    if channel_slices and channel_slices != network.channel_slices:
        if network.channel_slices:
            raise _existing_context_error(network)
        check_channel_slices(int(channel_slices), network.mean_scale, network.num_latent)
    check_residual_prediction(residual_prediction, channel_slices or network.channel_slices)


def _existing_context_error(network: CompressionNetwork) -> ValueError:
    return ValueError(f"the network codes its latent in {network.channel_slices} slices already; "
                      f"a channel context cannot be changed, only added")


def widen_synthesis(network: CompressionNetwork, synthesis_filters: int) -> CompressionNetwork:
    """A new, built CompressionNetwork equal to ``network`` but with ``synthesis_filters``
    hidden channels in its synthesis transform (see the module docstring).

    Args:
      network: a built CompressionNetwork (float32).
      synthesis_filters: the new width, at least the current one.

    Returns:
      The widened network (``get_config()["synthesis_filters"] == synthesis_filters``).

    Raises:
      ValueError: a width smaller than the current one.
    """
    check_growth(network, synthesis_filters=synthesis_filters)
    wide = CompressionNetwork.from_config({**network.get_config(), "synthesis_filters": int(synthesis_filters)})
    wide.build()
    _copy_layers(network, wide, exclude=("synthesis",))
    old, new = network.synthesis, wide.synthesis
    for i, (old_conv, new_conv) in enumerate(zip(old.convs, new.convs)):
        _embed_transposed_conv(old_conv, new_conv)
        _embed_columns(old.films[i], new.films[i])
        if old.activations[i] is not None:
            _embed_gdn(old.activations[i], new.activations[i])
    return wide


def add_channel_context(network: CompressionNetwork, channel_slices: int) -> CompressionNetwork:
    """A new, built CompressionNetwork equal to the mean-scale ``network`` plus a channel
    context of ``channel_slices`` slices (``transforms.SliceContextTransform``): every weight is
    copied and each slice's context starts with a zero last conv, so the new network codes
    exactly as the old one (the same symbols, bits and reconstruction; only the order in
    which the stream holds y's channels differs) until training uses the context.

    Raises:
      ValueError: ``network`` has a channel context already, is not a mean-scale model, or
        ``channel_slices`` does not divide its latent channels.
    """
    if network.channel_slices:
        raise _existing_context_error(network)
    grown = CompressionNetwork.from_config({**network.get_config(), "channel_slices": int(channel_slices)})
    grown.build()
    _copy_layers(network, grown, exclude=("channel_context",))
    return grown


def add_residual_prediction(network: CompressionNetwork) -> CompressionNetwork:
    """A new, built CompressionNetwork equal to ``network`` (which has a channel context)
    plus latent residual prediction (``transforms.ResidualPredictionTransform`` per slice): every
    weight is copied and each prediction starts with a zero last conv, so the new network
    codes exactly as the old one (the same symbols, bits and reconstruction) until training
    uses it.

    Raises:
      ValueError: ``network`` has no channel context, or has residual prediction already.
    """
    if network.residual_prediction:
        raise ValueError("the network has latent residual prediction already")
    check_residual_prediction(True, network.channel_slices)
    grown = CompressionNetwork.from_config({**network.get_config(), "residual_prediction": True})
    grown.build()
    _copy_layers(network, grown, exclude=("residual_predictors",))
    return grown


def drop_residual_prediction(network: CompressionNetwork) -> CompressionNetwork:
    """A new, built CompressionNetwork equal to ``network`` without its latent residual
    prediction: every other weight copied. Unlike the functions above this changes what
    the network computes (by the corrections the prediction made); it is meant for a
    prediction that training left near zero, and the result must be evaluated as itself.

    Raises:
      ValueError: ``network`` has no residual prediction.
    """
    if not network.residual_prediction:
        raise ValueError("the network has no latent residual prediction to drop")
    reduced = CompressionNetwork.from_config({**network.get_config(), "residual_prediction": False})
    reduced.build()
    _copy_layers(network, reduced, exclude=("residual_predictors",))
    return reduced


def _copy_layers(source: CompressionNetwork, target: CompressionNetwork, exclude) -> None:
    """Copies every weight of ``source``'s transforms into ``target``'s, except those of the
    attributes named in ``exclude``."""
    names = ("conditioning", "analysis", "synthesis", "hyper_analysis", "hyper_synthesis", "hyperprior")
    pairs = [(getattr(target, n), getattr(source, n)) for n in names if n not in exclude]
    for name in ("channel_context", "residual_predictors"):
        if name not in exclude:
            pairs += list(zip(getattr(target, name), getattr(source, name), strict=True))
    for target_layer, source_layer in pairs:
        for target_weight, source_weight in zip(target_layer.weights, source_layer.weights, strict=True):
            target_weight.assign(np.asarray(source_weight))


def _embed_transposed_conv(old, new) -> None:
    """Kernel [k, k, out, in]: the old block copied, old outputs reading new inputs zeroed,
    the rest (new outputs) left at the fresh layer's random values; bias [out]: old copied,
    new zero."""
    old_kernel = np.asarray(old.kernel)
    kernel = np.asarray(new.kernel).copy()
    out_channels, in_channels = old_kernel.shape[2:]
    kernel[:, :, :out_channels, :] = 0.0
    kernel[:, :, :out_channels, :in_channels] = old_kernel
    new.kernel.assign(kernel)
    bias = np.zeros(new.bias.shape, np.float32)
    bias[:out_channels] = np.asarray(old.bias)
    new.bias.assign(bias)


def _embed_columns(old_film, new_film) -> None:
    """FiLM kernels [d, C] and biases [C]: old channels copied, new ones zero (identity)."""
    for attr in ("scale_kernel", "scale_bias", "shift_kernel", "shift_bias"):
        source, target = np.asarray(getattr(old_film, attr)), getattr(new_film, attr)
        value = np.zeros(target.shape, np.float32)
        value[..., : source.shape[-1]] = source
        target.assign(value)


def _embed_gdn(old_gdn, new_gdn) -> None:
    """beta [C] and gamma [C, C] parameters: the old block copied; the new channels keep the
    fresh layer's beta and gamma diagonal, and the fresh zero coupling to the old ones."""
    channels = old_gdn.beta_param.shape[0]
    beta = np.asarray(new_gdn.beta_param).copy()
    beta[:channels] = np.asarray(old_gdn.beta_param)
    new_gdn.beta_param.assign(beta)
    gamma = np.asarray(new_gdn.gamma_param).copy()
    gamma[:channels, :channels] = np.asarray(old_gdn.gamma_param)
    new_gdn.gamma_param.assign(gamma)
