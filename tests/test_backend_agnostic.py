"""The layers, the LossSpace and the loss-conditional model are plain keras.ops: they run on
Keras' JAX backend in a process where TensorFlow cannot even be imported."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BLOCK_TENSORFLOW = textwrap.dedent('''
    import sys

    class _BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("TensorFlow is blocked in this test process")
            return None

    sys.meta_path.insert(0, _BlockTensorFlow())
''')


def _jax_env(tmp_path):
    """KERAS_BACKEND=jax, with TensorFlow blocked (sitecustomize)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), REPO_ROOT])}


def _run_on_jax(tmp_path, args, timeout=600):
    """Runs ``python args`` with KERAS_BACKEND=jax and TensorFlow blocked."""
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=_jax_env(tmp_path), capture_output=True,
                          text=True, timeout=timeout)


def test_tensorflow_is_really_blocked_in_the_jax_processes(tmp_path):
    result = _run_on_jax(tmp_path, ["-c", "import tensorflow"])
    assert result.returncode != 0 and "TensorFlow is blocked in this test process" in result.stderr


def test_layer_and_loss_space_tests_pass_on_jax(tmp_path):
    """The same test files as on TensorFlow: every layer's behaviour, .keras round trip with
    identical outputs, get_config; every LossSpace check; the shapes pool."""
    result = _run_on_jax(tmp_path, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                                    "tests/test_layers.py", "tests/test_coefficients.py",
                                    "tests/test_beta_vae_pool.py"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary


BETA_VAE_ON_JAX = textwrap.dedent('''
    import sys
    import keras
    import numpy as np
    from benchmarks import yoto_vs_fixed as harness
    from yoto_tf.beta_vae import evaluation, model, pool

    assert keras.backend.backend() == "jax"
    settings = harness.HarnessSettings(image_size=16, batch_size=16, eval_examples=32)
    try:
        harness.make_adapter("beta_vae", settings).train_dataset(16, seed=0)
        raise SystemExit("the tf.data stream was accepted on jax")
    except ValueError as error:
        assert "needs --train_examples > 0" in str(error), error

    space = model.beta_loss_space(0.5, 128)
    vae = model.build_model(space, 16, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    data = pool.PoolBatches(pool.render_pool(512, 16, workers=1), 16, seed=0)
    history = vae.fit(data, steps_per_epoch=40, epochs=3, verbose=0).history
    print("loss per epoch", history["loss"])
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    images = pool.render_pool(64, 16, split="test", workers=1).astype("float32") / 255
    low, high = (evaluation.mean_terms(vae.network, images, space.make(kl=b), seed=0) for b in (0.5, 128))
    print("beta 0.5", low, "beta 128", high)
    assert high["kl"] < low["kl"]  # the beta knob acts

    summary = harness.run_comparison(
        "beta_vae", [1.0, 8.0], steps=5, out_dir=sys.argv[1], log=print,
        settings=harness.HarnessSettings(image_size=16, batch_size=8, eval_examples=16, train_examples=64))
    assert [row["eval_lambda"] for row in summary] == [1.0, 8.0]
    assert "tensorflow" not in sys.modules
    print("OK")
''')


@pytest.mark.slow
def test_beta_vae_yoto_trains_and_runs_the_harness_on_jax(tmp_path):
    result = _run_on_jax(tmp_path, ["-c", BETA_VAE_ON_JAX, str(tmp_path / "harness")])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
    assert (tmp_path / "harness" / "summary.csv").exists()


@pytest.mark.slow
def test_compression_trains_from_numpy_crops_on_jax_and_resumes(tmp_path):
    """trainers.compression_numpy: what a GPU machine without TensorFlow runs. It fine-tunes
    a network saved here (TensorFlow); SIGTERM (a preemption) stops it with a checkpoint at
    the step under way; it resumes where it stopped and writes a model.keras that this
    TensorFlow process loads; bad input is a one-line error."""
    import keras
    import numpy as np
    import skimage.data
    from PIL import Image

    from yoto_tf import pretrained
    from yoto_tf.compression import model as model_lib
    from yoto_tf.compression import precision

    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()).save(images / f"{name}.png")
    keras.utils.set_random_seed(0)
    initial = model_lib.build_network(num_filters=8, num_latent=12, conditioning_units=8, seed=0,
                                      mean_scale=True, mixed_quantization=True)
    initial.save(tmp_path / "init.keras")
    out = tmp_path / "run"
    args = ["-m", "trainers.compression_numpy", f"--images={images}/*.png", f"--out_dir={out}",
            f"--init_from={tmp_path / 'init.keras'}", "--batch_size=2", "--patch_size=64",
            "--checkpoint_every=1000", "--log_every=2", "--lambda_map_fraction=0.5"]
    log_path = tmp_path / "first_run.txt"
    with open(log_path, "w") as log:
        first = subprocess.Popen([sys.executable, *args, "--steps=1000000"], cwd=REPO_ROOT,
                                 env=_jax_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while "step 2/1000000" not in log_path.read_text() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 128 + signal.SIGTERM, log_path.read_text()[-3000:]
    stopped = re.search(r"SIGTERM stopped training at step (\d+) of 1000000", log_path.read_text())
    assert stopped, log_path.read_text()[-3000:]
    start = int(stopped.group(1))
    assert start >= 2 and (out / "checkpoint.npz").exists() and (out / "model.keras").exists()
    # The resumed part computes its feature convs in bfloat16; the saved network does not.
    result = _run_on_jax(tmp_path, [*args, f"--steps={start + 2}", "--conv_compute_dtype=bfloat16"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Training compression (jax backend) from step {start} to {start + 2}." in result.stderr
    assert json.loads((out / "train_config.json").read_text())["conv_compute_dtype"] == "bfloat16"
    with np.load(out / "checkpoint.npz") as checkpoint:
        saved_weights = [checkpoint[f"w{i}"] for i in range(int(checkpoint["num_weights"]))]
    trained = pretrained.load_network(str(out / "model.keras"))
    assert isinstance(trained, model_lib.CompressionNetwork) and trained.num_filters == 8
    assert precision.conv_compute_dtype(trained) == "float32"
    for saved, loaded in zip(saved_weights, trained.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    assert any(not np.allclose(a, b) for a, b in zip(trained.get_weights(), initial.get_weights()))

    bad = subprocess.run([sys.executable, *args[:2], f"--images={tmp_path}/none/*.jpg", f"--out_dir={out}"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "no file matches" in bad.stderr and "Traceback" not in bad.stderr
