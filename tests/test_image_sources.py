"""Tests for yoto_tf.image_sources: built-in images, source specs, folder listing, scanning."""

import pytest

from yoto_tf import image_sources
from yoto_tf.images import load_image_with_note
from tests.image_file_helpers import save_pil, random_photo, corrupt_file


# ---------------------------------------------------------------------------------------------
# Built-in images and specs
# ---------------------------------------------------------------------------------------------


def test_builtin_images_are_rgb_photos_on_disk():
    paths = image_sources.builtin_image_paths()
    assert len(paths) >= 4
    for path in paths + [image_sources.builtin_style_image_path()]:
        array, note = load_image_with_note(path)
        assert note is None and min(array.shape[:2]) >= 256


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("builtin", image_sources.BuiltinSource()),
        ("folder:photos/**/*.jpg", image_sources.FolderSource("photos/**/*.jpg")),
        ("tfds:mnist", image_sources.TfdsSource("mnist", "train")),
        ("tfds:imagenette/320px:validation", image_sources.TfdsSource("imagenette/320px", "validation")),
        ("tfds:cifar10:3.0.2:test[:10%]", image_sources.TfdsSource("cifar10:3.0.2", "test[:10%]")),
    ],
)
def test_parse_source(spec, expected):
    assert image_sources.parse_source(spec) == expected


def test_parse_source_accepts_a_plain_directory(tmp_path):
    assert image_sources.parse_source(str(tmp_path)) == image_sources.FolderSource(str(tmp_path))


@pytest.mark.parametrize("spec", ["", "images", "folder:", "tfds:", "tfds:a b", "http://x/y.png"])
def test_bad_spec_lists_accepted_forms(spec):
    with pytest.raises(ValueError, match="accepted forms: 'builtin'.*'folder:GLOB'.*'tfds:NAME"):
        image_sources.parse_source(spec)


def test_folder_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    top = save_pil(tmp_path / "a.PNG", random_photo())
    nested = save_pil(tmp_path / "sub" / "b.jpg", random_photo())
    (tmp_path / "notes.txt").write_text("x")
    assert image_sources.list_image_paths(f"folder:{tmp_path}") == [top]  # directory: direct children
    assert image_sources.list_image_paths(f"folder:{tmp_path}/**/*") == sorted([top, nested])

    with pytest.raises(ValueError, match=r"no images matched '.*\*\.webp'"):
        image_sources.list_image_paths(f"folder:{tmp_path}/*.webp")
    with pytest.raises(ValueError, match="1 files matched, but none has an image extension"):
        image_sources.list_image_paths(f"folder:{tmp_path}/*.txt")


def test_scan_images_splits_good_and_bad(tmp_path):
    good = save_pil(tmp_path / "good.png", random_photo())
    bad = corrupt_file(tmp_path / "bad.jpg")
    for decode in (True, False):
        result = image_sources.scan_images([good, bad, str(tmp_path / "gone.png")], decode=decode)
        assert result.good == [good]
        assert list(result.bad) == [bad, str(tmp_path / "gone.png")]
        assert result.bad[str(tmp_path / "gone.png")] == "file not found"
