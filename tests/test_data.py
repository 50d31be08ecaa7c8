"""Tests for yoto_tf.data: image loading, sources, training and evaluation pipelines."""

import io
import logging
import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from yoto_tf import data

from yoto_tf.images import ImageReadError, load_image, load_image_with_note, save_image


def _save(path, image, **options):
    image.save(path, **options)
    return str(path)


def _png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _photo(size=(40, 30), seed=0):
    """Random RGB Pillow image (width, height)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _corrupt(path):
    path.write_bytes(b"this is not an image")
    return str(path)


# ---------------------------------------------------------------------------------------------
# load_image conversions
# ---------------------------------------------------------------------------------------------


def test_grayscale_becomes_grey_rgb(tmp_path):
    path = _save(tmp_path / "grey.png", Image.new("L", (5, 4), 128))
    array, note = load_image_with_note(path)
    assert array.shape == (4, 5, 3) and array.dtype == np.uint8
    assert (array == 128).all()
    assert note == "grayscale (L) -> RGB"


@pytest.mark.parametrize("extension", ["png", "tif"])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path, extension):
    values = np.array([[0, 65535], [32896, 1000]], np.uint16)
    path = _save(tmp_path / f"deep.{extension}", Image.fromarray(values))
    array, note = load_image_with_note(path)
    np.testing.assert_array_equal(array[..., 0], [[0, 255], [128, 4]])  # round(v / 257)
    assert (array == array[..., :1]).all()
    assert "16-bit" in note


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    array, note = load_image_with_note(_save(tmp_path / "alpha.png", image))
    np.testing.assert_array_equal(array[0, 0], [255, 255, 255])  # transparent red -> white
    np.testing.assert_array_equal(array[0, 1], [0, 0, 255])
    assert np.abs(array[0, 2].astype(int) - 127).max() <= 1  # half-transparent black -> grey
    assert "composited on white" in note


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (50, 255)])
    array = load_image(_save(tmp_path / "la.png", image))
    np.testing.assert_array_equal(array[0], [[255, 255, 255], [50, 50, 50]])


def test_palette_images(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.putdata([0, 1])
    array, note = load_image_with_note(_save(tmp_path / "palette.png", image))
    np.testing.assert_array_equal(array[0], [[10, 20, 30], [200, 100, 50]])
    assert note == "palette (P) -> RGB"

    transparent = _save(tmp_path / "palette_alpha.png", image, transparency=0)
    np.testing.assert_array_equal(load_image(transparent)[0], [[255, 255, 255], [200, 100, 50]])


def test_cmyk_jpeg(tmp_path):
    path = _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    array, note = load_image_with_note(path)
    assert np.abs(array.astype(int) - [255, 0, 0]).max() <= 8  # pure red
    assert note == "CMYK -> RGB"


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((8, 16, 3), np.uint8)  # 16 wide: left half red, right half blue
    stored[:, :8, 0] = 255
    stored[:, 8:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = _save(tmp_path / "rotated.jpg", Image.fromarray(stored), exif=exif.tobytes(), quality=100)
    array, note = load_image_with_note(path)
    assert array.shape == (16, 8, 3)
    assert array[2, 2, 0] > 200 and array[2, 2, 2] < 50  # left column is now the top row
    assert array[13, 2, 2] > 200 and array[13, 2, 0] < 50
    assert "EXIF" in note


def test_rgb_file_has_no_note(tmp_path):
    image = _photo()
    array, note = load_image_with_note(_save(tmp_path / "rgb.png", image))
    np.testing.assert_array_equal(array, np.asarray(image))
    assert note is None


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageReadError, match="missing.png.*file not found"):
        load_image(missing)

    with pytest.raises(ImageReadError, match="garbage.png") as error:
        load_image(_corrupt(tmp_path / "garbage.png"))
    assert isinstance(error.value, ValueError)
    assert error.value.path == str(tmp_path / "garbage.png")

    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(_png_bytes(_photo((64, 64)))[:500])
    with pytest.raises(ImageReadError, match="truncated.png.*corrupt"):
        load_image(truncated)


# ---------------------------------------------------------------------------------------------
# save_image
# ---------------------------------------------------------------------------------------------


def test_save_image_round_trips_uint8_and_float(tmp_path):
    pixels = np.asarray(_photo())
    save_image(tmp_path / "out" / "u8.png", pixels)  # creates the directory
    np.testing.assert_array_equal(load_image(tmp_path / "out" / "u8.png"), pixels)

    save_image(tmp_path / "float.png", np.full((2, 3, 3), [0.0, 0.5, 2.0], np.float32))
    np.testing.assert_array_equal(load_image(tmp_path / "float.png")[0, 0], [0, 128, 255])

    save_image(tmp_path / "photo.jpg", pixels)
    assert Image.open(tmp_path / "photo.jpg").format == "JPEG"


def test_save_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="int32"):
        save_image(tmp_path / "a.png", np.zeros((2, 2, 3), np.int32))
    with pytest.raises(ValueError, match="NaN"):
        save_image(tmp_path / "a.png", np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        save_image(tmp_path / "a.png", np.zeros((2, 2, 4), np.uint8))


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    pixels = np.asarray(_photo())
    save_image(tmp_path / "a.png", pixels)
    before = (tmp_path / "a.png").read_bytes()
    with pytest.raises(ValueError, match="unknown file extension"):
        save_image(tmp_path / "a.nosuchformat", pixels)

    def half_written(self, filename, **options):  # a full disk, a kill mid-write
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_written)
    with pytest.raises(OSError, match="No space left"):
        save_image(tmp_path / "a.png", pixels[::2])
    assert (tmp_path / "a.png").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.png"]  # no temporary or half-written file


# ---------------------------------------------------------------------------------------------
# Built-in images and specs
# ---------------------------------------------------------------------------------------------


def test_builtin_images_are_rgb_photos_on_disk():
    paths = data.builtin_image_paths()
    assert len(paths) >= 4
    for path in paths + [data.builtin_style_image_path()]:
        array, note = load_image_with_note(path)
        assert note is None and min(array.shape[:2]) >= 256


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("builtin", data.BuiltinSource()),
        ("folder:photos/**/*.jpg", data.FolderSource("photos/**/*.jpg")),
        ("tfds:mnist", data.TfdsSource("mnist", "train")),
        ("tfds:imagenette/320px:validation", data.TfdsSource("imagenette/320px", "validation")),
        ("tfds:cifar10:3.0.2:test[:10%]", data.TfdsSource("cifar10:3.0.2", "test[:10%]")),
    ],
)
def test_parse_source(spec, expected):
    assert data.parse_source(spec) == expected


def test_parse_source_accepts_a_plain_directory(tmp_path):
    assert data.parse_source(str(tmp_path)) == data.FolderSource(str(tmp_path))


@pytest.mark.parametrize("spec", ["", "images", "folder:", "tfds:", "tfds:a b", "http://x/y.png"])
def test_bad_spec_lists_accepted_forms(spec):
    with pytest.raises(ValueError, match="accepted forms: 'builtin'.*'folder:GLOB'.*'tfds:NAME"):
        data.parse_source(spec)


def test_folder_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    top = _save(tmp_path / "a.PNG", _photo())
    nested = _save(tmp_path / "sub" / "b.jpg", _photo())
    (tmp_path / "notes.txt").write_text("x")
    assert data.list_image_paths(f"folder:{tmp_path}") == [top]  # directory: direct children
    assert data.list_image_paths(f"folder:{tmp_path}/**/*") == sorted([top, nested])

    with pytest.raises(ValueError, match=r"no images matched '.*\*\.webp'"):
        data.list_image_paths(f"folder:{tmp_path}/*.webp")
    with pytest.raises(ValueError, match="1 files matched, but none has an image extension"):
        data.list_image_paths(f"folder:{tmp_path}/*.txt")


def test_scan_images_splits_good_and_bad(tmp_path):
    good = _save(tmp_path / "good.png", _photo())
    bad = _corrupt(tmp_path / "bad.jpg")
    for decode in (True, False):
        result = data.scan_images([good, bad, str(tmp_path / "gone.png")], decode=decode)
        assert result.good == [good]
        assert list(result.bad) == [bad, str(tmp_path / "gone.png")]
        assert result.bad[str(tmp_path / "gone.png")] == "file not found"


# ---------------------------------------------------------------------------------------------
# Training datasets
# ---------------------------------------------------------------------------------------------


def test_builtin_dataset_shapes_dtype_and_range():
    dataset, info = data.image_dataset("builtin", 48, 4, seed=0, return_info=True)
    assert dataset.element_spec.shape == (4, 48, 48, 3)
    assert info.cached and info.num_images == len(data.builtin_image_paths()) and not info.skipped
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
    _save(tmp_path / "one.png", _photo(seed=1))
    _save(tmp_path / "two.jpg", _photo(seed=2))
    bad = _corrupt(tmp_path / "broken.png")
    with caplog.at_level(logging.WARNING, logger="yoto_tf.data"):
        dataset, info = data.image_dataset(
            f"folder:{tmp_path}", 16, 2, seed=0, max_cache_bytes=max_cache_bytes, return_info=True
        )
    assert list(info.skipped) == [bad]
    assert info.num_images == 2 and info.cached == (max_cache_bytes > 0)
    assert "skipped 1 of 3 image files" in caplog.text and "broken.png" in caplog.text
    for batch in dataset.take(3):
        assert batch.shape == (2, 16, 16, 3)


def test_file_failing_only_at_decode_time_is_skipped_while_streaming(tmp_path, caplog):
    _save(tmp_path / "good.png", _photo())
    jpeg = io.BytesIO()
    _photo((64, 64)).save(jpeg, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(jpeg.getvalue()[:-200])  # header intact, data truncated
    dataset = data.image_dataset(f"folder:{tmp_path}", 8, 4, repeat=False, max_cache_bytes=0)
    with caplog.at_level(logging.WARNING, logger="yoto_tf.data"):
        batches = [batch.numpy() for batch in dataset]
    assert [len(batch) for batch in batches] == [1]
    assert "cut.jpg" in caplog.text


def test_all_corrupt_folder_errors(tmp_path):
    _corrupt(tmp_path / "a.png")
    _corrupt(tmp_path / "b.jpg")
    with pytest.raises(ValueError, match="none of the 2 image files .* can be read: a.png"):
        data.image_dataset(f"folder:{tmp_path}", 16, 2)


def test_empty_glob_errors(tmp_path):
    with pytest.raises(ValueError, match=f"no images matched '{tmp_path}/\\*\\*/\\*.png'"):
        data.image_dataset(f"folder:{tmp_path}/**/*.png", 16, 2)


def test_small_image_is_scaled_up_to_the_patch(tmp_path):
    _save(tmp_path / "tiny.png", Image.new("RGB", (10, 6), (200, 100, 50)))
    batch = next(iter(data.image_dataset(f"folder:{tmp_path}", 16, 2, seed=0))).numpy()
    assert batch.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(batch, np.broadcast_to([200 / 255, 100 / 255, 50 / 255], batch.shape), atol=1e-6)


def test_upscaling_keeps_aspect_ratio(tmp_path):
    stripes = np.zeros((8, 32, 3), np.uint8)  # vertical stripes: 2 px black, 2 px white
    stripes[:, np.arange(32) % 4 >= 2] = 255
    _save(tmp_path / "stripes.png", Image.fromarray(stripes))
    batch = next(iter(data.image_dataset(f"folder:{tmp_path}", 16, 4, seed=0))).numpy()
    # Short side 8 -> 16 doubles both axes: stripes become 4 px wide, so a 16 px row crosses
    # the 0.5 level at most 4 times (squashing the width would give many more crossings).
    crossings = np.abs(np.diff(batch[:, 8, :, 0] > 0.5, axis=-1)).sum(axis=-1)
    assert (crossings >= 3).all() and (crossings <= 4).all()
    np.testing.assert_array_equal(batch, batch[:, :1].repeat(16, axis=1))  # columns uniform


def test_one_pass_without_repeat(tmp_path):
    for index in range(3):
        _save(tmp_path / f"{index}.png", _photo(seed=index))
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
    _save(tmp_path / "c.png", _photo((30, 20), seed=3))
    _save(tmp_path / "b" / "x.png", Image.new("L", (7, 5), 9))
    _corrupt(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="yoto_tf.data"):
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
    _corrupt(tmp_path / "a.png")
    for index, name in enumerate(("b.png", "c.png", "d.png")):
        _save(tmp_path / name, _photo((20, 24), seed=index))
    with caplog.at_level(logging.WARNING, logger="yoto_tf.data"):
        names = [name for name, _ in data.eval_images(str(tmp_path), max_images=2)]
    assert names == ["b", "c"]  # a.png skipped, still two images; d.png never decoded
    assert "skipped 1 of 3 image files" in caplog.text and "a.png" in caplog.text


def test_eval_images_rejects_duplicate_names(tmp_path):
    _save(tmp_path / "same.png", _photo())
    _save(tmp_path / "same.jpg", _photo())
    with pytest.raises(ValueError, match="several files named same"):
        data.eval_images(str(tmp_path))
