"""Shipped models by name: the manifest, sha256 checks, style names, the ship tool."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from yoto_tf import image_sources, pretrained
from yoto_tf.images import load_image, save_image
from yoto_tf.layers import find_loss_space
from yoto_tf.model_files import read_model_info, save_model
from yoto_tf.style_transfer import grid
from yoto_tf.style_transfer.evaluation import edge_correlation, split_map_evidence
from yoto_tf.style_transfer.inference import num_styles, stylize
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space, with_strength
from yoto_tf.style_transfer.transformer import build_network, lambda_map_network


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    """A models directory with one tiny two-style model shipped by the real ship tool."""
    models_dir = tmp_path / "pretrained_models"
    models_dir.mkdir()
    manifest = {"models": [{
        "name": "tiny2", "task": "style_transfer", "file": "tiny2.keras", "sha256": "",
        "description": "test", "card": "tiny2.md",
        "styles": [
            {"name": "starry_night", "title": "t", "artist": "a", "date": "1889", "source": "s",
             "licence": "l", "image": "style_transfer/paintings/vangogh_starry_night.jpg"},
            {"name": "great_wave", "title": "t", "artist": "a", "date": "1831", "source": "s",
             "licence": "l", "image": "style_transfer/paintings/hokusai_great_wave_off_kanagawa.jpg"},
        ],
    }]}
    (models_dir / "models.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(pretrained, "MODELS_DIR", str(models_dir))
    monkeypatch.setattr(pretrained, "MANIFEST", str(models_dir / "models.json"))
    network = build_network(style_transfer_loss_space(), num_styles=2, width_multiplier=0.125,
                                conditioning_units=8)
    trained = tmp_path / "model.keras"
    save_model(network, str(trained), info={"vgg_weights": "imagenet8bit"})
    pretrained.ship(str(trained), "tiny2", max_bytes=10_000_000)
    return models_dir, network


def test_shipped_model_loads_by_name_in_float32_with_its_info(shipped_dir):
    models_dir, network = shipped_dir
    entry = pretrained.get_model("tiny2")
    assert entry.sha256 == pretrained.sha256_of(str(models_dir / "tiny2.keras"))
    loaded = pretrained.load_network("tiny2")
    assert {w.dtype for w in loaded.weights} == {"float32"}
    for original, half in zip(network.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(half, original, rtol=1e-3, atol=1e-3)
    assert read_model_info(entry.path) == {"vgg_weights": "imagenet8bit"}
    assert all(os.path.isfile(style.image_path) for style in entry.styles)


def test_unknown_model_lists_the_shipped_ones(shipped_dir):
    with pytest.raises(pretrained.ShippedModelError, match="shipped models are tiny2"):
        pretrained.load_network("nope")
    with pytest.raises(pretrained.ShippedModelError, match="does not exist"):
        pretrained.resolve_model_path("runs/missing/model.keras")


def test_corrupt_shipped_file_is_a_clear_error(shipped_dir):
    models_dir, _ = shipped_dir
    path = models_dir / "tiny2.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.ShippedModelError, match="tiny2.keras is corrupt .*reinstall"):
        pretrained.load_network("tiny2")


def test_styles_by_index_or_name(shipped_dir):
    names = pretrained.style_names("tiny2")
    assert names == ["starry_night", "great_wave"]
    assert pretrained.resolve_style("1", names, 2) == 1
    assert pretrained.resolve_style("great_wave", names, 2) == 1
    assert pretrained.resolve_style("wave", names, 2) == 1
    with pytest.raises(pretrained.ShippedModelError, match="0=starry_night, 1=great_wave"):
        pretrained.resolve_style("scream", names, 2)
    with pytest.raises(pretrained.ShippedModelError, match="Style 5 does not exist"):
        pretrained.resolve_style(5, names, 2)


def test_ship_refuses_a_file_over_the_limit(shipped_dir, tmp_path):
    with pytest.raises(ValueError, match="exceeds"):
        pretrained.ship(str(tmp_path / "model.keras"), "tiny2", max_bytes=1000)


def test_style_names_of_a_trained_file_come_from_its_info(tmp_path):
    network = build_network(style_transfer_loss_space(), width_multiplier=0.125,
                                conditioning_units=8)
    path = str(tmp_path / "m.keras")
    save_model(network, path, info={"style_images": ["/x/monet_charing_cross_bridge.jpg"]})
    assert pretrained.style_names(path) == ["monet_charing_cross_bridge"]
    shutil.copy(path, tmp_path / "copy.keras")
    assert pretrained.resolve_model_path(str(tmp_path / "copy.keras")) == str(tmp_path / "copy.keras")


# ------------------------------------------------------------------ the shipped style model
SHIPPED = "painters4"
SHIPPED_STYLE_MODELS = ("painters4", "painters4_maps")


def test_list_models_prints_each_shipped_model_with_its_styles():
    done = subprocess.run([sys.executable, "-m", "trainers.stylize", "--list_models"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stdout.splitlines() if l.startswith(SHIPPED))
    assert "0=starry_night 1=great_wave 2=composition_vii 3=the_scream" in line


@pytest.mark.parametrize("name", SHIPPED_STYLE_MODELS)
def test_shipped_model_file_and_card_match_the_manifest(name):
    entry = pretrained.get_model(name)
    assert pretrained.verify(entry) == entry.path
    assert os.path.getsize(entry.path) < 10_000_000
    assert read_model_info(entry.path)["vgg_weights"] == "imagenet8bit"
    card = open(entry.card_path).read()
    for style in entry.styles:
        assert os.path.isfile(style.image_path)
        assert style.title in card and style.artist in card


@pytest.mark.parametrize("name", SHIPPED_STYLE_MODELS)
def test_shipped_model_keeps_structure_and_strength_moves_away_monotonically(name):
    """On photos it never saw (it trained on BSDS500), for every style: the edges of the photo
    survive at the defaults, and raising the strength 0.1 < 1 < 10 moves further from them."""
    network = pretrained.load_network(name)
    space = find_loss_space(network)
    for path in image_sources.builtin_image_paths()[:3]:
        photo = grid.fit_longer_side(load_image(path), 192)
        for style in range(num_styles(network)):
            kept = [edge_correlation(photo, stylize(network, photo, with_strength(space, s), style))
                    for s in (0.1, 1.0, 10.0)]
            assert kept[1] > 0.5, (path, style, kept)
            assert kept[0] > kept[1] > kept[2], (path, style, kept)


def test_map_trained_model_keeps_both_strengths_of_a_sharp_map_in_one_pass():
    """Left half strength 0.1, right half 10, ONE pass of the map twin, on photos neither model
    saw: painters4_maps' halves lie near its own uniform outputs (position 0 = the low
    strength's, 1 = the high's), painters4's strong half washes out."""
    positions = {}
    for name in SHIPPED_STYLE_MODELS:
        network = pretrained.load_network(name)
        twin = lambda_map_network(network)
        results = [split_map_evidence(network, twin, grid.fit_longer_side(load_image(path), 160), 0.1, 10.0,
                                      style_index=style)
                   for path in image_sources.builtin_image_paths()[:3] for style in range(num_styles(network))]
        positions[name] = (np.mean([r.left_position for r in results]),
                           np.mean([r.right_position for r in results]),
                           max(r.transition_px for r in results))
    left, right, transition = positions["painters4_maps"]
    assert abs(left) < 0.15 and right > 0.75 and transition <= 32, positions
    assert right > positions["painters4"][1] + 0.15, positions


def test_stylize_cli_uses_a_shipped_model_by_name_and_style_name(tmp_path):
    photo = tmp_path / "photo.png"
    save_image(str(photo), grid.fit_longer_side(load_image(image_sources.builtin_image_paths()[1]), 96))
    out = tmp_path / "out.jpg"
    command = [sys.executable, "-m", "trainers.stylize", f"--model={SHIPPED}", f"--image={photo}",
               f"--out={out}"]
    done = subprocess.run(command + ["--style=great_wave"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imagenet8bit" in done.stderr and out.exists()
    bad = subprocess.run(command + ["--style=mona_lisa"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "0=starry_night" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "trainers.stylize", "--model=painters99",
                          f"--image={photo}", f"--out={out}"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "painters4" in bad.stderr and "Traceback" not in bad.stderr
