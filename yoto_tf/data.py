"""``tf.data`` pipelines of training patches and full-size evaluation images.

* ``image_dataset``: infinite (or one-pass) ``tf.data`` pipeline of random training patches.
* ``eval_images``: full-size evaluation images, sorted by name.

Sources (``builtin``, ``folder:GLOB``, ``tfds:NAME[:SPLIT]``) are parsed and listed by
:mod:`yoto_tf.image_sources`; single images are read and written by :mod:`yoto_tf.images`.

Conventions: image arrays are ``uint8 [H, W, 3]`` (RGB) unless a docstring says otherwise;
training patches are ``float32`` in ``[0, 1]``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from yoto_tf.image_sources import (
    ImageSource, TfdsSource, as_source, list_image_paths, read_each, report_unreadable, scan_images,
)
from yoto_tf.images import ImageReadError, load_image

logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHE_BYTES = 64 * 2**20
"""Folders whose files total at most this many bytes on disk are decoded once and kept in
memory; larger ones are decoded on the fly every epoch."""

_TFDS_SHUFFLE_BUFFER = 1024  # encoded (still compressed) images, so the buffer stays small


# --------------------------------------------------------------------------------------------
# Training dataset
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageDatasetInfo:
    """What ``image_dataset(..., return_info=True)`` found before building the pipeline."""

    source: ImageSource
    num_images: int
    """Usable images (files that passed the scan, or examples in the TFDS split)."""
    skipped: dict[str, str]
    """Unreadable file -> reason (files failing later, while streaming, are only logged)."""
    cached: bool
    """Whether decoded images are held in memory (vs. decoded every epoch)."""


def image_dataset(
    spec: str | ImageSource,
    patch_size: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    repeat: bool = True,
    tfds_data_dir: str | None = None,
    tfds_download: bool = False,
    max_cache_bytes: int = DEFAULT_MAX_CACHE_BYTES,
    return_info: bool = False,
):
    """Random training patches from an image source.

    Each element of an epoch is one random ``patch_size`` square crop of one image, randomly
    flipped left-right. Images whose short side is below ``patch_size`` are scaled up with
    their aspect ratio kept (bilinear) so the crop fits. Files are validated up front:
    unreadable ones are skipped with a warning (``info.skipped``); if none is readable a
    ValueError is raised. Sets of at most ``max_cache_bytes`` on disk (e.g. ``builtin``) are
    decoded once and cached in memory; larger ones are decoded on the fly in parallel.

    Args:
      spec: ``parse_source`` string or parsed source.
      patch_size: crop side in pixels.
      batch_size: patches per batch.
      shuffle: shuffle image order each epoch (crop positions are random either way).
      seed: makes the whole stream (order, crops, flips) reproducible; ``None`` = random.
      repeat: loop forever with static batch shape; if False, one pass over the images with
        a possibly smaller last batch.
      tfds_data_dir: TFDS data directory (default: TFDS's own, ``~/tensorflow_datasets``).
      tfds_download: let TFDS download and prepare a missing dataset (needs internet;
        offline, TFDS retries for minutes before failing, hence off by default).
      max_cache_bytes: file-size budget for in-memory caching of file sources.
      return_info: also return an ``ImageDatasetInfo``.

    Returns:
      ``tf.data.Dataset`` of ``float32 [batch_size, patch_size, patch_size, 3]`` in [0, 1]
      (or ``(dataset, info)``).

    Raises:
      ValueError: bad spec, no matching/readable images, unknown or undownloaded TFDS dataset.
    """
    if patch_size < 1 or batch_size < 1:
        raise ValueError(f"patch_size and batch_size must be positive, got {patch_size}, {batch_size}")
    source = as_source(spec)
    if isinstance(source, TfdsSource):
        images, info = _tfds_images(
            source, shuffle=shuffle, seed=seed, repeat=repeat,
            data_dir=tfds_data_dir, download=tfds_download,
        )
    else:
        images, info = _file_images(
            source, shuffle=shuffle, seed=seed, repeat=repeat, max_cache_bytes=max_cache_bytes
        )
    crop_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    patches = tf.data.Dataset.zip(images, crop_seeds).map(
        lambda image, crop_seed: _random_patch(image, crop_seed, patch_size),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = patches.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
    return (dataset, info) if return_info else dataset


def _ordered(items: tf.data.Dataset, count: int, shuffle: bool, seed, repeat: bool):
    """Epoch order of ``items`` (``count`` elements): full shuffle per epoch, optional repeat."""
    if shuffle:
        items = items.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return items.repeat() if repeat else items


def _file_images(source, *, shuffle, seed, repeat, max_cache_bytes):
    """Dataset of ``uint8 [H, W, 3]`` images from a builtin/folder source, plus info."""
    paths = list_image_paths(source)
    cached = sum(os.path.getsize(path) for path in paths) <= max_cache_bytes
    if cached:
        arrays, bad = _load_all(paths)
        report_unreadable(source, len(paths), bad)
        indices = _ordered(tf.data.Dataset.range(len(arrays)), len(arrays), shuffle, seed, repeat)
        images = indices.map(_cached_lookup(arrays))
        num_images = len(arrays)
    else:
        good, bad = scan_images(paths, decode=False)
        report_unreadable(source, len(paths), bad)
        ordered = _ordered(tf.data.Dataset.from_tensor_slices(good), len(good), shuffle, seed, repeat)
        images = ordered.map(_decode_path, num_parallel_calls=tf.data.AUTOTUNE).filter(
            lambda image: tf.size(image) > 0
        )
        num_images = len(good)
    return images, ImageDatasetInfo(source, num_images, bad, cached)


def _load_all(paths: list[str]) -> tuple[list[np.ndarray], dict[str, str]]:
    """Decodes every readable file; returns the arrays and unreadable path -> reason."""
    done, bad = read_each(paths)
    return [array for _, array in done], bad


def _cached_lookup(arrays: list[np.ndarray]):
    """Returns ``index -> uint8 [H, W, 3]`` over images packed into one flat in-memory buffer."""
    sizes = [array.size for array in arrays]
    flat = tf.constant(np.concatenate([array.reshape(-1) for array in arrays]))
    offsets = tf.constant(np.cumsum([0] + sizes[:-1]), tf.int64)
    shapes = tf.constant([array.shape[:2] for array in arrays], tf.int64)

    def lookup(index):
        height, width = shapes[index][0], shapes[index][1]
        start = offsets[index]
        return tf.reshape(flat[start:start + height * width * 3], tf.stack([height, width, 3]))

    return lookup


def _load_or_empty(path: bytes) -> np.ndarray:
    """``load_image`` for ``tf.numpy_function``: a ``[0, 0, 3]`` array marks a failed file."""
    try:
        return load_image(path.decode())
    except ImageReadError as error:
        logger.warning("skipping image while streaming: %s", error)
        return np.zeros((0, 0, 3), np.uint8)


def _decode_path(path):
    image = tf.numpy_function(_load_or_empty, [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, [None, None, 3])


def _random_patch(image, seed, patch_size: int):
    """Random ``float32 [patch_size, patch_size, 3]`` crop in [0, 1], randomly flipped.

    A square of side ``min(patch_size, H, W)`` is cropped and, if smaller than the patch,
    resized up: the same as scaling the whole image (aspect kept) until its short side
    reaches ``patch_size`` and cropping there, without resizing the full image.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    side = tf.minimum(patch_size, tf.minimum(shape[0], shape[1]))
    crop = tf.image.stateless_random_crop(image, tf.stack([side, side, 3]), seed=crop_seed)
    crop = tf.image.convert_image_dtype(crop, tf.float32)
    patch = tf.cond(
        side < patch_size,
        lambda: tf.clip_by_value(tf.image.resize(crop, [patch_size, patch_size]), 0.0, 1.0),
        lambda: crop,
    )
    patch = tf.image.stateless_random_flip_left_right(patch, seed=flip_seed)
    return tf.ensure_shape(patch, [patch_size, patch_size, 3])


# --------------------------------------------------------------------------------------------
# TensorFlow Datasets
# --------------------------------------------------------------------------------------------


def _tfds_split(source: TfdsSource, data_dir, download: bool):
    """Returns ``(builder, image_feature, num_examples)`` for a prepared TFDS split."""
    try:
        builder = tfds.builder(source.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"unknown TFDS dataset {source.name!r} in {source}; see "
            "https://www.tensorflow.org/datasets/catalog/overview for names"
        ) from None
    if not builder.is_prepared():
        if not download:
            raise ValueError(
                f"TFDS dataset {source.name!r} is not downloaded in {builder.data_dir}. Download "
                "it once with tfds_download=True (trainer flag --tfds_download) on a machine with "
                "internet access, or point tfds_data_dir (--tfds_data_dir) at a directory that "
                "already holds it"
            )
        builder.download_and_prepare()
    features = builder.info.features
    feature = features["image"] if "image" in features.keys() else None
    if not isinstance(feature, tfds.features.Image):
        raise ValueError(
            f"TFDS dataset {source.name!r} has no 'image' image feature "
            f"(features: {', '.join(features.keys())})"
        )
    try:
        num_examples = builder.info.splits[source.split].num_examples
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"TFDS dataset {source.name!r} has no split {source.split!r} "
            f"(splits: {', '.join(builder.info.splits)})"
        ) from error
    return builder, feature, num_examples


def _tfds_images(source: TfdsSource, *, shuffle, seed, repeat, data_dir, download):
    """Dataset of ``uint8 [H, W, 3]`` images from a TFDS split, plus info."""
    builder, feature, num_examples = _tfds_split(source, data_dir, download)
    encoded = builder.as_dataset(
        split=source.split,
        shuffle_files=shuffle,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    ).map(lambda example: example["image"])
    if shuffle:  # shuffle while still encoded: cheap, whatever the image size
        encoded = encoded.shuffle(_TFDS_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        encoded = encoded.repeat()
    images = encoded.map(
        lambda data: _tfds_rgb(feature.decode_example(data)), num_parallel_calls=tf.data.AUTOTUNE
    )
    return images, ImageDatasetInfo(source, num_examples, {}, cached=False)


def _tfds_rgb(image):
    """TFDS image ``[H, W, C]`` (C = 1, 3 or 4; uint8 or uint16) -> RGB with the same dtype.

    Alpha is dropped here (TFDS images rarely carry meaningful transparency).
    """
    channels = image.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    if channels == 4:
        return image[..., :3]
    if channels != 3:
        raise ValueError(f"unsupported TFDS image shape {image.shape}; expected 1, 3 or 4 channels")
    return image


# --------------------------------------------------------------------------------------------
# Evaluation images
# --------------------------------------------------------------------------------------------


def eval_images(
    spec_or_dir: str | ImageSource,
    *,
    max_images: int | None = None,
    tfds_data_dir: str | None = None,
    tfds_download: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """Full-size evaluation images as ``[(name, uint8 [H, W, 3]), ...]`` sorted by name.

    Names: for files, the path relative to the matched files' common directory without
    extension (``"kodim01"``, ``"cats/001"``); for TFDS, ``"{split}_{index:06d}"``.
    Unreadable files are skipped with a warning, as in ``image_dataset``.

    Args:
      spec_or_dir: ``parse_source`` string, parsed source, or a directory path.
      max_images: keep only the first this many readable images (by name / split order).
      tfds_data_dir, tfds_download: as in ``image_dataset``.

    Raises:
      ValueError: bad spec, no (readable) images, two files with the same name, TFDS errors.
    """
    source = as_source(spec_or_dir)
    if isinstance(source, TfdsSource):
        builder, _, _ = _tfds_split(source, tfds_data_dir, tfds_download)
        dataset = builder.as_dataset(split=source.split, shuffle_files=False).take(
            -1 if max_images is None else max_images
        )
        return [
            (f"{source.split}_{index:06d}",
             tf.image.convert_image_dtype(_tfds_rgb(example["image"]), tf.uint8).numpy())
            for index, example in enumerate(dataset)
        ]
    paths = list_image_paths(source)
    root = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in paths])
    named = sorted((os.path.splitext(os.path.relpath(os.path.abspath(path), root))[0], path) for path in paths)
    counts = collections.Counter(name for name, _ in named)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"{source} has several files named {', '.join(duplicates)} (extensions differ)")
    name_of = {path: name for name, path in named}
    done, bad = read_each([path for _, path in named], limit=max_images)
    images = [(name_of[path], array) for path, array in done]
    report_unreadable(source, len(images) + len(bad), bad)
    return images
