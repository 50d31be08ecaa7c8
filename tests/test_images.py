"""Tests for yoto_tf.images: reading any common image file as RGB, and atomic saving."""

import os

import numpy as np
import pytest
from PIL import Image

from yoto_tf.images import ImageReadError, load_image, load_image_with_note, save_image
from tests.image_file_helpers import save_pil, png_bytes, random_photo, corrupt_file


# ---------------------------------------------------------------------------------------------
# load_image conversions
# ---------------------------------------------------------------------------------------------


def test_grayscale_becomes_grey_rgb(tmp_path):
    path = save_pil(tmp_path / "grey.png", Image.new("L", (5, 4), 128))
    array, note = load_image_with_note(path)
    assert array.shape == (4, 5, 3) and array.dtype == np.uint8
    assert (array == 128).all()
    assert note == "grayscale (L) -> RGB"


@pytest.mark.parametrize("extension", ["png", "tif"])
def test_16bit_grayscale_is_scaled_not_clipped(tmp_path, extension):
    values = np.array([[0, 65535], [32896, 1000]], np.uint16)
    path = save_pil(tmp_path / f"deep.{extension}", Image.fromarray(values))
    array, note = load_image_with_note(path)
    np.testing.assert_array_equal(array[..., 0], [[0, 255], [128, 4]])  # round(v / 257)
    assert (array == array[..., :1]).all()
    assert "16-bit" in note


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    array, note = load_image_with_note(save_pil(tmp_path / "alpha.png", image))
    np.testing.assert_array_equal(array[0, 0], [255, 255, 255])  # transparent red -> white
    np.testing.assert_array_equal(array[0, 1], [0, 0, 255])
    assert np.abs(array[0, 2].astype(int) - 127).max() <= 1  # half-transparent black -> grey
    assert "composited on white" in note


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (50, 255)])
    array = load_image(save_pil(tmp_path / "la.png", image))
    np.testing.assert_array_equal(array[0], [[255, 255, 255], [50, 50, 50]])


def test_palette_images(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50])
    image.putdata([0, 1])
    array, note = load_image_with_note(save_pil(tmp_path / "palette.png", image))
    np.testing.assert_array_equal(array[0], [[10, 20, 30], [200, 100, 50]])
    assert note == "palette (P) -> RGB"

    transparent = save_pil(tmp_path / "palette_alpha.png", image, transparency=0)
    np.testing.assert_array_equal(load_image(transparent)[0], [[255, 255, 255], [200, 100, 50]])


def test_cmyk_jpeg(tmp_path):
    path = save_pil(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    array, note = load_image_with_note(path)
    assert np.abs(array.astype(int) - [255, 0, 0]).max() <= 8  # pure red
    assert note == "CMYK -> RGB"


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((8, 16, 3), np.uint8)  # 16 wide: left half red, right half blue
    stored[:, :8, 0] = 255
    stored[:, 8:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = save_pil(tmp_path / "rotated.jpg", Image.fromarray(stored), exif=exif.tobytes(), quality=100)
    array, note = load_image_with_note(path)
    assert array.shape == (16, 8, 3)
    assert array[2, 2, 0] > 200 and array[2, 2, 2] < 50  # left column is now the top row
    assert array[13, 2, 2] > 200 and array[13, 2, 0] < 50
    assert "EXIF" in note


def test_rgb_file_has_no_note(tmp_path):
    image = random_photo()
    array, note = load_image_with_note(save_pil(tmp_path / "rgb.png", image))
    np.testing.assert_array_equal(array, np.asarray(image))
    assert note is None


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageReadError, match="missing.png.*file not found"):
        load_image(missing)

    with pytest.raises(ImageReadError, match="garbage.png") as error:
        load_image(corrupt_file(tmp_path / "garbage.png"))
    assert isinstance(error.value, ValueError)
    assert error.value.path == str(tmp_path / "garbage.png")

    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png_bytes(random_photo((64, 64)))[:500])
    with pytest.raises(ImageReadError, match="truncated.png.*corrupt"):
        load_image(truncated)


# ---------------------------------------------------------------------------------------------
# save_image
# ---------------------------------------------------------------------------------------------


def test_save_image_round_trips_uint8_and_float(tmp_path):
    pixels = np.asarray(random_photo())
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
    pixels = np.asarray(random_photo())
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
