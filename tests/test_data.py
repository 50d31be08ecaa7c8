"""Tests for yoto_tf.data: the training-patch and evaluation-image pipelines."""

import io
import logging
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from yoto_tf import data, image_sources
from tests.image_file_helpers import save_pil, random_photo, corrupt_file


# ---------------------------------------------------------------------------------------------
# Training datasets
# ---------------------------------------------------------------------------------------------


def test_builtin_dataset_shapes_dtype_and_range():
    dataset, info = data.image_dataset("builtin", 48, 4, seed=0, return_info=True)
    assert dataset.element_spec.shape == (4, 48, 48, 3)
    assert info.cached and info.num_images == len(image_sources.builtin_image_paths()) and not info.skipped
    for batch in dataset.take(3):
        batch = batch.numpy()
        assert batch.dtype == np.float32
        assert 0.0 <= batch.min() and batch.max() <= 1.0
        assert batch.std() > 0.05  # real photo content, not blank


def test_seed_makes_dataset_deterministic():
    def first_batches(seed):
        dataset = data.image_dataset("builtin", 32, 3, seed=seed)
        return np.stack([batch.numpy() for batch in dataset.take(4)])

    np.testing.assert_array_equal(first_batches(7), first_batches(7))
    assert not np.array_equal(first_batches(7), first_batches(8))


@pytest.mark.parametrize("max_cache_bytes", [data.DEFAULT_MAX_CACHE_BYTES, 0], ids=["cached", "streamed"])
def test_folder_with_a_corrupt_file_trains_on_the_rest(tmp_path, caplog, max_cache_bytes):
    save_pil(tmp_path / "one.png", random_photo(seed=1))
    save_pil(tmp_path / "two.jpg", random_photo(seed=2))
    bad = corrupt_file(tmp_path / "broken.png")
    with caplog.at_level(logging.WARNING, logger="yoto_tf.image_sources"):
        dataset, info = data.image_dataset(
            f"folder:{tmp_path}", 16, 2, seed=0, max_cache_bytes=max_cache_bytes, return_info=True
        )
    assert list(info.skipped) == [bad]
    assert info.num_images == 2 and info.cached == (max_cache_bytes > 0)
    assert "skipped 1 of 3 image files" in caplog.text and "broken.png" in caplog.text
    for batch in dataset.take(3):
        assert batch.shape == (2, 16, 16, 3)


def test_file_failing_only_at_decode_time_is_skipped_while_streaming(tmp_path, caplog):
    save_pil(tmp_path / "good.png", random_photo())
    jpeg = io.BytesIO()
    random_photo((64, 64)).save(jpeg, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(jpeg.getvalue()[:-200])  # header intact, data truncated
    dataset = data.image_dataset(f"folder:{tmp_path}", 8, 4, repeat=False, max_cache_bytes=0)
    with caplog.at_level(logging.WARNING, logger="yoto_tf.data"):
        batches = [batch.numpy() for batch in dataset]
    assert [len(batch) for batch in batches] == [1]
    assert "cut.jpg" in caplog.text


def test_all_corrupt_folder_errors(tmp_path):
    corrupt_file(tmp_path / "a.png")
    corrupt_file(tmp_path / "b.jpg")
    with pytest.raises(ValueError, match="none of the 2 image files .* can be read: a.png"):
        data.image_dataset(f"folder:{tmp_path}", 16, 2)


def test_empty_glob_errors(tmp_path):
    with pytest.raises(ValueError, match=f"no images matched '{tmp_path}/\\*\\*/\\*.png'"):
        data.image_dataset(f"folder:{tmp_path}/**/*.png", 16, 2)


def test_small_image_is_scaled_up_to_the_patch(tmp_path):
    save_pil(tmp_path / "tiny.png", Image.new("RGB", (10, 6), (200, 100, 50)))
    batch = next(iter(data.image_dataset(f"folder:{tmp_path}", 16, 2, seed=0))).numpy()
    assert batch.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(batch, np.broadcast_to([200 / 255, 100 / 255, 50 / 255], batch.shape), atol=1e-6)


def test_upscaling_keeps_aspect_ratio(tmp_path):
    stripes = np.zeros((8, 32, 3), np.uint8)  # vertical stripes: 2 px black, 2 px white
    stripes[:, np.arange(32) % 4 >= 2] = 255
    save_pil(tmp_path / "stripes.png", Image.fromarray(stripes))
    batch = next(iter(data.image_dataset(f"folder:{tmp_path}", 16, 4, seed=0))).numpy()
    # Short side 8 -> 16 doubles both axes: stripes become 4 px wide, so a 16 px row crosses
    # the 0.5 level at most 4 times (squashing the width would give many more crossings).
    crossings = np.abs(np.diff(batch[:, 8, :, 0] > 0.5, axis=-1)).sum(axis=-1)
    assert (crossings >= 3).all() and (crossings <= 4).all()
    np.testing.assert_array_equal(batch, batch[:, :1].repeat(16, axis=1))  # columns uniform


def test_one_pass_without_repeat(tmp_path):
    for index in range(3):
        save_pil(tmp_path / f"{index}.png", random_photo(seed=index))
    dataset = data.image_dataset(f"folder:{tmp_path}", 8, 2, repeat=False, shuffle=False)
    assert [batch.shape[0] for batch in dataset] == [2, 1]


def test_invalid_sizes(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        data.image_dataset("builtin", 0, 2)


# ---------------------------------------------------------------------------------------------
# TFDS (offline: a tiny locally generated dataset; nothing is downloaded)
# ---------------------------------------------------------------------------------------------


class YotoTestTinyGrey(tfds.core.GeneratorBasedBuilder):
    """Three 12x20 single-channel images with values 40, 80, 120 (registered by name)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 1))})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for index in range(3):
            yield index, {"image": np.full((12, 20, 1), 40 * (index + 1), np.uint8)}


def test_tfds_unknown_name_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(ValueError, match="unknown TFDS dataset 'no_such_dataset_xyz'"):
        data.image_dataset("tfds:no_such_dataset_xyz", 16, 2, tfds_data_dir=str(tmp_path))
    assert time.monotonic() - start < 10


def test_tfds_missing_data_offline_says_how_to_download(tmp_path):
    start = time.monotonic()
    with pytest.raises(ValueError, match="'mnist' is not downloaded.*--tfds_download"):
        data.image_dataset("tfds:mnist", 16, 2, tfds_data_dir=str(tmp_path))
    assert time.monotonic() - start < 10


def test_tfds_local_dataset(tmp_path):
    spec = "tfds:yoto_test_tiny_grey"
    dataset, info = data.image_dataset(
        spec, 16, 3, seed=0, tfds_data_dir=str(tmp_path), tfds_download=True, return_info=True
    )
    assert info.num_images == 3
    batch = next(iter(dataset)).numpy()
    assert batch.shape == (3, 16, 16, 3)  # grey -> RGB, 12 px short side scaled up to 16
    np.testing.assert_allclose(sorted(batch[:, 0, 0, 0]), [40 / 255, 80 / 255, 120 / 255], atol=1e-6)

    names, arrays = zip(*data.eval_images(spec, tfds_data_dir=str(tmp_path)))
    assert names == ("train_000000", "train_000001", "train_000002")
    assert arrays[1].shape == (12, 20, 3) and arrays[1].dtype == np.uint8 and (arrays[1] == 80).all()

    with pytest.raises(ValueError, match="no split 'test' \\(splits: train\\)"):
        data.image_dataset(f"{spec}:test", 16, 3, tfds_data_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Evaluation images
# ---------------------------------------------------------------------------------------------


def test_eval_images_are_full_size_and_sorted(tmp_path, caplog):
    (tmp_path / "b").mkdir()
    save_pil(tmp_path / "c.png", random_photo((30, 20), seed=3))
    save_pil(tmp_path / "b" / "x.png", Image.new("L", (7, 5), 9))
    corrupt_file(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="yoto_tf.image_sources"):
        images = data.eval_images(f"folder:{tmp_path}/**/*.png")
    assert [name for name, _ in images] == ["b/x", "c"]
    assert images[0][1].shape == (5, 7, 3) and (images[0][1] == 9).all()
    assert images[1][1].shape == (20, 30, 3) and images[1][1].dtype == np.uint8
    assert "a.png" in caplog.text

    assert [name for name, _ in data.eval_images(str(tmp_path))] == ["c"]  # plain directory


def test_eval_images_builtin_and_limit():
    names = [name for name, _ in data.eval_images("builtin", max_images=2)]
    assert names == ["astronaut", "chelsea"]


def test_eval_images_limit_counts_readable_images_only(tmp_path, caplog):
    corrupt_file(tmp_path / "a.png")
    for index, name in enumerate(("b.png", "c.png", "d.png")):
        save_pil(tmp_path / name, random_photo((20, 24), seed=index))
    with caplog.at_level(logging.WARNING, logger="yoto_tf.image_sources"):
        names = [name for name, _ in data.eval_images(str(tmp_path), max_images=2)]
    assert names == ["b", "c"]  # a.png skipped, still two images; d.png never decoded
    assert "skipped 1 of 3 image files" in caplog.text and "a.png" in caplog.text


def test_eval_images_rejects_duplicate_names(tmp_path):
    save_pil(tmp_path / "same.png", random_photo())
    save_pil(tmp_path / "same.jpg", random_photo())
    with pytest.raises(ValueError, match="several files named same"):
        data.eval_images(str(tmp_path))
