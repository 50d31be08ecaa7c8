"""One call per image with a trained compression model, and loading the model for it.

::

    codec = load_compression_model("runs/compression/model.keras")
    data = compress_image(codec, image_uint8, lam=0.01)   # bytes (see container.py)
    data = compress_image(codec, image_uint8, lambda_map=lams)  # lams [H, W]: a quality map
    data = compress_image(codec, image_uint8, lam=0.01, refine_steps=100)  # slower, smaller
    image = decompress_image(codec, data)                 # uint8 [H, W, 3], either kind
    bpp = estimate_bpp(codec, image_uint8, lam=0.01)      # the model's own rate estimate
    codec.loss_space, codec.lambda_range, codec.default_lambda

Every function takes a :class:`~yoto_tf.compression.codec.CompressionCodec` or a Keras
``CompressionNetwork`` (``codec.as_codec``). ``lam`` is the weight of the distortion term
(``lam * 255^2 * MSE + bpp``), inside the model's trained range.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from yoto_tf.compression import container, quality_map
from yoto_tf.compression.codec import CompressionCodec, ModelMismatchError, as_codec, check_image
from yoto_tf.compression.model import CompressionNetwork


def load_compression_model(path) -> CompressionCodec:
    """Loads a ``model.keras`` written by the compression trainer and builds its tables.

    Raises:
      FileNotFoundError / ValueError: naming the file when it is missing or not a
        yoto_tf compression model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        network = keras.models.load_model(path)
    except Exception as err:  # Keras raises many types for a bad archive
        raise ValueError(f"cannot load compression model {path}: {err}") from err
    if not isinstance(network, CompressionNetwork):
        raise ValueError(
            f"{path} holds a {type(network).__name__}, not a yoto_tf CompressionNetwork"
        )
    return CompressionCodec(network)


def shipped_model_for(data: bytes):
    """``(ShippedModel, CompressionCodec)`` of the shipped compression model that wrote
    ``data``: the file names its model by fingerprint, the manifest records each shipped
    model's, so only that model is loaded (its sha256 verified, its fingerprint recomputed).
    Entries without a recorded fingerprint are loaded and compared in manifest order.

    Raises:
      CorruptFileError: ``data`` is not a readable compressed image.
      ModelMismatchError: no shipped model has the file's fingerprint (the message names
        the retired model that wrote it and how to get it back, or lists the shipped
        models' fingerprints: decode with the model that wrote the file).
    """
    from yoto_tf import pretrained  # pylint: disable=import-outside-toplevel  # pretrained imports the tasks

    wanted = container.unpack(data).fingerprint.hex()
    shipped = pretrained.list_models("compression")
    candidates = ([m for m in shipped if m.fingerprint == wanted]
                  + [m for m in shipped if not m.fingerprint])
    for model in candidates:
        codec = load_compression_model(pretrained.verify(model))
        if codec.fingerprint.hex() == wanted:
            return model, codec
    retired = pretrained.retired_model_with_fingerprint(wanted)
    if retired is not None:
        raise ModelMismatchError(f"the file was written by {retired.name}, which is retired: "
                                 f"{retired.how_to_restore()}")
    seen = ", ".join(f"{m.name} ({m.fingerprint or 'not recorded'})" for m in shipped)
    raise ModelMismatchError(
        f"the file was written by a model that is not shipped (fingerprint {wanted}; shipped: "
        f"{seen or 'none'}); decode it with --model, the model that wrote it"
    )


def shipped_codec_for(data: bytes) -> CompressionCodec:
    """The codec of :func:`shipped_model_for` (same errors)."""
    return shipped_model_for(data)[1]


def _conditioning(codec: CompressionCodec, image, lam, lambda_map, map_cell, map_bits):
    """(checked image, conditioning lam_vec or map, QuantizedMap or None)."""
    image = check_image(image)
    if (lam is None) == (lambda_map is None):
        raise ValueError("give exactly one of lam (one lambda) and lambda_map (a quality map)")
    if lambda_map is None:
        return image, codec.lambda_vector(lam), None
    qmap, lam_map = codec.quality_map(lambda_map, *image.shape[:2], map_cell, map_bits)
    return image, lam_map, qmap


def _symbols(codec: CompressionCodec, image, lam_vec, refine_steps: int):
    """(y symbols, z symbols) of a checked image: analysis, optional refinement, rounding."""
    y, z = codec.analyze(image, lam_vec)
    return codec.quantize_latents(*codec.refine_latents(image, lam_vec, y, z, refine_steps), lam_vec)


def compress_image(model, image, lam: float | None = None, *, lambda_map=None,
                   map_cell: int = quality_map.DEFAULT_CELL, map_bits: int = quality_map.DEFAULT_BITS,
                   refine_steps: int = 0) -> bytes:
    """Compresses uint8 [H, W, 3] at distortion weight ``lam``, or with a quality map
    ``lambda_map`` (float [h, w] distortion weights inside the trained range, any size:
    resized to the image; stored per ``map_cell`` pixels with ``map_bits`` bits, see
    quality_map.py); returns the file bytes. ``refine_steps`` > 0 refines the latents for
    this image first (latent_refinement.py: a smaller file at the same quality, encoding
    slower, the same decoder)."""
    codec = as_codec(model)
    image, lam_vec, qmap = _conditioning(codec, image, lam, lambda_map, map_cell, map_bits)
    y_symbols, z_symbols = _symbols(codec, image, lam_vec, refine_steps)
    return codec.encode(y_symbols, z_symbols, lam_vec, *image.shape[:2], qmap=qmap)


def decompress_image(model, data: bytes) -> np.ndarray:
    """Decodes bytes from :func:`compress_image` (with or without a quality map) to uint8
    [H, W, 3].

    Raises:
      container.CorruptFileError: damaged, truncated or foreign data.
      ModelMismatchError: the file was written by another model.
    """
    codec = as_codec(model)
    y_symbols, z_symbols, lam_vec, height, width = codec.decode(data)
    return codec.synthesize(y_symbols, z_symbols, lam_vec, height, width)


def reconstruct_image(model, image, lam: float | None = None, *, lambda_map=None,
                      map_cell: int = quality_map.DEFAULT_CELL, map_bits: int = quality_map.DEFAULT_BITS,
                      refine_steps: int = 0) -> np.ndarray:
    """The model's quantized reconstruction (what decoding the file gives), without coding;
    ``refine_steps`` as for :func:`compress_image`."""
    codec = as_codec(model)
    image, lam_vec, _ = _conditioning(codec, image, lam, lambda_map, map_cell, map_bits)
    y_symbols, z_symbols = _symbols(codec, image, lam_vec, refine_steps)
    return codec.synthesize(y_symbols, z_symbols, lam_vec, *image.shape[:2])


def estimate_bpp(model, image, lam: float | None = None, *, lambda_map=None,
                 map_cell: int = quality_map.DEFAULT_CELL, map_bits: int = quality_map.DEFAULT_BITS,
                 refine_steps: int = 0) -> float:
    """The model's estimated rate in bits per pixel of the original image (no coding; the
    quality map's own bytes are not counted); ``refine_steps`` as for :func:`compress_image`."""
    codec = as_codec(model)
    image, lam_vec, _ = _conditioning(codec, image, lam, lambda_map, map_cell, map_bits)
    y_symbols, z_symbols = _symbols(codec, image, lam_vec, refine_steps)
    return codec.estimated_bits(y_symbols, z_symbols, lam_vec) / (image.shape[0] * image.shape[1])
