"""Variable-rate learned image compression (lambda-conditioned scale hyperprior).

One model covers the whole rate-distortion range: ``lam`` (the weight of
``255^2 * MSE`` against bits per pixel) is a knob at encode time. See ``image_coding.py``
for the one-call API (``codec.py`` for the steps), ``model.py`` for the network and
``trainers/compression.py`` for the CLI.
"""

from yoto_tf.compression.codec import CompressionCodec, ModelMismatchError
from yoto_tf.compression.container import CorruptFileError
from yoto_tf.compression.image_coding import (
    compress_image,
    decompress_image,
    estimate_bpp,
    load_compression_model,
    reconstruct_image,
    shipped_codec_for,
    shipped_model_for,
)
from yoto_tf.compression.model import (
    CompressionNetwork,
    compression_loss_space,
    rate_distortion_terms,
)
from yoto_tf.compression.rate_control import RateControlResult, compress_to_target
from yoto_tf.compression.widening import widen_synthesis

__all__ = [
    "CompressionCodec",
    "CompressionNetwork",
    "CorruptFileError",
    "ModelMismatchError",
    "RateControlResult",
    "compress_image",
    "compress_to_target",
    "compression_loss_space",
    "decompress_image",
    "estimate_bpp",
    "load_compression_model",
    "rate_distortion_terms",
    "reconstruct_image",
    "shipped_codec_for",
    "shipped_model_for",
    "widen_synthesis",
]
