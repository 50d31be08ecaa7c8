"""The style-transfer trainer CLI end to end: artifacts, resume, multi-style, bad inputs."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image

import yoto_tf.style_transfer  # noqa: F401  (registers the layers for load_model)
from yoto_tf import find_loss_space
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--image_size=32", "--batch_size=2", "--width_multiplier=0.25",
        "--conditioning_units=16", "--vgg_weights=none", "--sweep_size=48", "--style_size=64"]


def _train(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainers.style_transfer", *args], cwd=REPO,
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": REPO},
    )


@pytest.fixture
def awkward_images(tmp_path):
    """A content folder with odd files, and two style images in unusual modes."""
    content = tmp_path / "content"
    content.mkdir()
    Image.fromarray(skimage.data.chelsea()).save(content / "cat.jpg")
    Image.fromarray(skimage.data.coffee()[:20, :24]).save(content / "small.png")  # < crop
    Image.fromarray(skimage.data.camera()).save(content / "grey.png")  # grayscale
    Image.fromarray((skimage.data.camera().astype(np.uint16) * 257)).save(content / "deep.png")
    (content / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    rgba = np.dstack([skimage.data.astronaut()[::4, ::4], np.full((128, 128), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "style_rgba.png")
    Image.fromarray(skimage.data.coffee()[::4, ::4]).convert("CMYK").save(tmp_path / "style_cmyk.jpg")
    return content, [tmp_path / "style_rgba.png", tmp_path / "style_cmyk.jpg"]


@pytest.mark.slow
def test_trainer_writes_artifacts_resumes_and_handles_awkward_images(awkward_images, tmp_path):
    content, styles = awkward_images
    model_dir = tmp_path / "run"
    common = [f"--model_dir={model_dir}", f"--content=folder:{content}/*",
              f"--style_images={styles[0]},{styles[1]}", "--log_every=2", *TINY]
    first = _train("--steps=2", *common)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "broken.jpg" in first.stderr and "skipped 1 of 5" in first.stderr
    for name in ("model.keras", "lambda_sweep.png", "train_config.json"):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "train_config.json").read_text())
    assert config["steps"] == 2 and config["task"]["vgg_weights"] == "random"
    assert [os.path.basename(p) for p in config["task"]["style_images"]] == [
        os.path.basename(str(s)) for s in styles[:2]]
    assert glob.glob(str(model_dir / "train" / "events.out.tfevents.*"))
    assert glob.glob(str(model_dir / "checkpoints" / "ckpt-2*"))

    network = keras.saving.load_model(model_dir / "model.keras")
    assert find_loss_space(network) == style_transfer_loss_space()
    assert [t.name for t in network.inputs] == ["image", "loss_weights", "style_index"]
    grid = np.asarray(Image.open(model_dir / "lambda_sweep.png"))
    # Rows: each sweep image x each style (strength), then the content and tv weights.
    assert grid.ndim == 3 and grid.shape[0] > 4 * 48 and grid.shape[1] > 6 * 32

    second = _train("--steps=4", *common)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from" in second.stderr and "step 2" in second.stderr
    assert glob.glob(str(model_dir / "checkpoints" / "ckpt-4*"))


def test_trainer_names_a_missing_style_image(tmp_path):
    missing = tmp_path / "no_such_style.jpg"
    run = _train(f"--style_images={missing}", f"--model_dir={tmp_path / 'run'}", *TINY)
    assert run.returncode == 1
    assert "no_such_style.jpg" in run.stderr and "file not found" in run.stderr
    assert "Traceback" not in run.stderr
