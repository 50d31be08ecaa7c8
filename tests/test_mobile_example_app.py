"""mobile.example_app: the app-side steps (sliders -> loss_weights -> run by name)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from mobile import metadata, style_transfer
from mobile.example_app import AdjustableStylizer
from tests.mobile_helpers import build_tiny_network, tiny_loss_space

SIZE = 32
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("app")
    model = build_tiny_network(num_styles=2, seed=3)
    (result,) = style_transfer.convert_model(
        model, str(out), name="tiny", image_size=SIZE, num_parity_images=1,
        log=lambda line: None,
    )
    return model, result.path


def test_sliders_map_to_log_uniform_loss_weights(exported):
    _, path = exported
    app = AdjustableStylizer(path)
    space = tiny_loss_space()
    assert [c["name"] for c in app.sliders] == list(space.names)
    np.testing.assert_allclose(app.loss_weights(), space.default()[None], rtol=1e-6)
    lam = app.loss_weights({"content": 0.0, "smooth": 1.0, "tint": 0.5})
    np.testing.assert_allclose(lam, [[0.1, 1.0, 0.01]], rtol=1e-5)  # 0.5 -> geometric mean
    quarter = app.loss_weights({"content": 0.25})[0, 0]
    assert quarter == pytest.approx(0.1 * 100 ** 0.25, rel=1e-5)
    with pytest.raises(metadata.MetadataError, match="Unknown coefficients"):
        app.loss_weights({"style": 0.5})
    with pytest.raises(metadata.MetadataError, match="must be in \\[0, 1\\]"):
        app.loss_weights({"content": 1.5})


def test_stylize_matches_keras_for_each_style(exported):
    model, path = exported
    app = AdjustableStylizer(path)
    picture = skimage.data.chelsea()
    lam = app.loss_weights({"content": 0.9, "tint": 0.1})
    outputs = []
    for style in range(2):
        out = app.stylize(picture, lam, style_index=style)
        assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
        expected = model({
            "image": app.fit_input(picture), "loss_weights": lam,
            "style_index": np.array([style], np.int32)}).numpy()[0]
        assert np.abs(out.astype(float) - expected * 255).max() <= 1.0
        outputs.append(out)
    assert np.abs(outputs[0].astype(int) - outputs[1]).max() > 0


@pytest.mark.parametrize("bad, message", [
    ([1.0, 0.1], "must have 3 values"),
    ([[1.0, 0.1, 0.01, 1.0]], "must have 3 values"),
    ([20.0, 0.1, 0.01], "'content' = 20 is outside its allowed range \\[0.1, 10\\]"),
    ([1.0, 0.1, 0.0], "'tint' = 0 is outside"),
    ([1.0, float("nan"), 0.01], "'smooth' = nan"),
])
def test_bad_loss_weights_fail_before_running(exported, bad, message):
    _, path = exported
    app = AdjustableStylizer(path)

    def must_not_run(**kwargs):
        raise AssertionError("the interpreter ran on invalid loss weights")

    app.runner = must_not_run
    with pytest.raises(metadata.MetadataError, match=message):
        app.stylize(skimage.data.coffee(), bad)


def test_bad_style_index_and_picture(exported):
    _, path = exported
    app = AdjustableStylizer(path)
    with pytest.raises(ValueError, match="style_index 2 is outside \\[0, 1\\]"):
        app.stylize(skimage.data.coffee(), style_index=2)
    with pytest.raises(ValueError, match="uint8 \\[H, W, 3\\]"):
        app.stylize(np.zeros((8, 8), np.uint8))


def test_missing_sidecar_is_explained(exported, tmp_path):
    _, path = exported
    lonely = tmp_path / "lonely.tflite"
    lonely.write_bytes(open(path, "rb").read())
    with pytest.raises(metadata.MetadataError, match="No metadata sidecar"):
        AdjustableStylizer(str(lonely))


def test_cli_writes_the_picture_and_rejects_bad_vectors(exported, tmp_path):
    _, path = exported
    picture = tmp_path / "in.png"
    Image.fromarray(skimage.data.astronaut()).save(picture)
    out = tmp_path / "out.png"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    command = [sys.executable, "-m", "mobile.example_app", "--tflite", path,
               "--image", str(picture), "--out", str(out)]
    ok = subprocess.run(command + ["--slider", "content=0.2", "--style_index", "1"],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert np.asarray(Image.open(out)).shape == (SIZE, SIZE, 3)
    assert "slider content: [0.1, 10] (log)" in ok.stdout
    bad = subprocess.run(command + ["--loss_weights", "1,0.1"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "loss_weights must have 3 values" in bad.stderr and "Traceback" not in bad.stderr
