"""`python -m trainers.compression train` on the shared trainer core (a few tiny steps)."""

import glob
import json
import os

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from trainers import compression as cli
from trainers import compression_train
from tests.compression_cli_helpers import train, write_image_folder
from yoto_tf.compression import compress_image, load_compression_model

FLAGS = flags.FLAGS
TINY = dict(patch_size=64, batch_size=2, num_filters=8, num_latent=8, conditioning_units=8,
            log_every=2, checkpoint_every=2, learning_rate=1e-3)


def _train(**flag_values):
    train(**{**TINY, **flag_values})


def test_train_writes_model_summaries_and_resumes(tmp_path):
    model_dir = str(tmp_path / "run")
    spec = write_image_folder(str(tmp_path / "images"))
    _train(model_dir=model_dir, steps=2, train_data=spec, lambda_range="0.002,0.05")
    codec = load_compression_model(os.path.join(model_dir, "model.keras"))
    assert codec.lambda_range == pytest.approx((0.002, 0.05))
    config = json.loads(open(os.path.join(model_dir, "train_config.json")).read())
    assert config["steps"] == 2 and config["task"]["lambda_range"] == "0.002,0.05"
    summary = json.loads(open(os.path.join(model_dir, "rd_summary.json")).read())
    assert len(summary["points"]) == 5
    for point in summary["points"]:
        assert point["bpp"] > 0 and point["estimated_bpp"] > 0 and np.isfinite(point["psnr"])
    events = glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
    assert events
    tags = _summary_tags(events)
    assert {"train/rate", "train/distortion", "eval/bpp/lambda_0.002", "eval/psnr/lambda_0.05",
            "eval/loss/lambda_0.005848"} <= tags

    _train(model_dir=model_dir, steps=4, train_data=spec, lambda_range="0.002,0.05")
    checkpoints = sorted(os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index")))
    assert checkpoints[-1] == "ckpt-4.index"  # resumed at step 2, continued to 4


def _summary_tags(event_files):
    import tensorflow as tf

    tags = set()
    for path in event_files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_fixed_lambda_trains_a_single_rate_model(tmp_path):
    model_dir = str(tmp_path / "fixed")
    _train(model_dir=model_dir, steps=1, fixed_lambda=0.013, train_data="builtin")
    codec = load_compression_model(os.path.join(model_dir, "model.keras"))
    assert codec.lambda_range == (0.013, 0.013)
    image = np.zeros((70, 70, 3), np.uint8)
    assert compress_image(codec, image, 0.013)
    with pytest.raises(ValueError, match=r"\[0.013, 0.013\]"):
        compress_image(codec, image, 0.01)


@pytest.mark.parametrize("flag_values, message", [
    (dict(lambda_range="0.1"), "--lambda_range must be LO,HI"),
    (dict(lambda_range="0.1,0.01"), "0 < LO < HI"),
    (dict(train_data="folder:/nonexistent/*.png"), "/nonexistent"),
])
def test_train_rejects_bad_flags_with_a_message(tmp_path, capsys, flag_values, message):
    with pytest.raises(SystemExit) as exit_info:
        _train(model_dir=str(tmp_path / "bad"), steps=1, **flag_values)
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err


def test_training_flags_reach_the_model_and_the_optimizer(tmp_path):
    import keras

    from yoto_tf.compression.training import CompressionTrainingModel

    spec = write_image_folder(str(tmp_path / "images"))
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**TINY, train_data=spec, learning_rate_drop_step=10,
                             learning_rate_drop_factor=0.25):
        task = compression_train.make_task()
        model = task.build_model()
        optimizer = task.optimizer(1e-3)
    assert isinstance(model, CompressionTrainingModel) and model.weight_normalization == "geometric_mean"
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    assert float(schedule(5)) == pytest.approx(1e-3) and float(schedule(10)) == pytest.approx(1e-3)
    assert float(schedule(11)) == pytest.approx(2.5e-4)
    with flagsaver.flagsaver(**TINY, train_data=spec, geometric_mean_weights=False):
        assert compression_train.make_task().build_model().weight_normalization == "none"


def test_bfloat16_on_a_cpu_without_bfloat16_instructions_is_warned_about(tmp_path, monkeypatch, caplog):
    from yoto_tf.compression import precision

    spec = write_image_folder(str(tmp_path / "images"))
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    for has_bfloat16, warned in ((False, True), (True, False), (None, False)):
        monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda path, has=has_bfloat16: has)
        caplog.clear()
        with flagsaver.flagsaver(**TINY, train_data=spec, conv_compute_dtype="bfloat16"):
            model = compression_train.make_task().build_model()
        assert precision.conv_compute_dtype(model.network) == "bfloat16"
        assert ("this CPU has no bfloat16 instructions" in caplog.text) == warned


def _command(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "trainers.compression", *args], capture_output=True,
                          text=True, timeout=300, cwd=os.path.dirname(os.path.dirname(__file__)),
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_a_run_resumes_when_its_init_from_model_is_gone(tmp_path, capsys, caplog):
    """A fine-tuning run resumes from its checkpoints even after the --init_from model it
    started from is gone (e.g. a shipped model since retired): it takes the architecture
    from its own model.keras and says so. A new run with the same missing model is refused."""
    import shutil

    spec = write_image_folder(str(tmp_path / "images"))
    source_dir = str(tmp_path / "source")
    _train(model_dir=source_dir, steps=2, train_data=spec, lambda_range="0.002,0.05")
    start = str(tmp_path / "start.keras")
    shutil.copy(os.path.join(source_dir, "model.keras"), start)
    arguments = {k: v for k, v in TINY.items() if k not in compression_train.ARCHITECTURE_FLAGS}
    tuned_dir = str(tmp_path / "tuned")
    train(**arguments, init_from=start, train_data=spec, model_dir=tuned_dir, steps=2)
    os.remove(start)
    train(**arguments, init_from=start, train_data=spec, model_dir=tuned_dir, steps=4)
    checkpoints = sorted(os.path.basename(p) for p in glob.glob(os.path.join(tuned_dir, "checkpoints", "ckpt-*.index")))
    assert checkpoints[-1] == "ckpt-4.index"
    assert "resumes from its checkpoints" in caplog.text and "start.keras" in caplog.text

    with pytest.raises(SystemExit) as exit_info:
        train(**arguments, init_from=start, train_data=spec, model_dir=str(tmp_path / "new"), steps=2)
    assert exit_info.value.code == 1 and "start.keras" in capsys.readouterr().err


def test_each_command_shows_and_takes_only_its_own_flags():
    from concurrent.futures import ThreadPoolExecutor

    # Five processes that each spend seconds importing TensorFlow: started together.
    calls = [("train", "--help"), ("compress", "--help"), ("decompress", "--help"),
             ("compress", "--patch_size", "64", "--model", "m.keras"), ("--model", "m.keras")]
    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(lambda call: _command(*call), calls))
    # the flag list after the module docstring (whose examples name flags of all commands)
    help_text = {command: result.stdout.split("\nflags:\n")[1]
                 for command, result in zip(("train", "compress", "decompress"), results)}
    assert "--patch_size" in help_text["train"] and "--steps" in help_text["train"]
    assert "--model:" not in help_text["train"]
    for command in ("compress", "decompress"):
        assert "--model:" in help_text[command] and "--input:" in help_text[command]
        assert "--patch_size" not in help_text[command] and "--steps" not in help_text[command]
    assert "--target_bpp" in help_text["compress"] and "--target_bpp" not in help_text["decompress"]

    foreign, missing = results[3:]
    assert foreign.returncode == 1
    assert "--patch_size is a flag of `train`, not of `compress`" in foreign.stderr
    assert "Traceback" not in foreign.stderr
    assert missing.returncode == 1 and "usage: python -m trainers.compression" in missing.stderr


def test_init_from_fine_tunes_a_trained_network_with_lambda_maps(tmp_path, capsys):
    """--init_from starts from the given network (its architecture and lambda range: the
    first step at a tiny learning rate leaves its weights almost unchanged, where a new
    network would differ completely), --lambda_map_fraction reaches the training model,
    and an architecture flag beside --init_from, a missing file or a non-compression
    model is refused with a message. The fine-tuning computes its feature convs in bfloat16
    (--conv_compute_dtype), and the network it saves computes in float32."""
    from yoto_tf import pretrained
    from yoto_tf.compression import precision

    spec = write_image_folder(str(tmp_path / "images"))
    source_dir = str(tmp_path / "source")
    _train(model_dir=source_dir, steps=2, train_data=spec, lambda_range="0.002,0.05")
    source = pretrained.load_network(source_dir)
    tuned_dir = str(tmp_path / "tuned")
    arguments = {k: v for k, v in TINY.items() if k not in compression_train.ARCHITECTURE_FLAGS}
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**arguments, init_from=source_dir, lambda_map_fraction=1.0, train_data=spec,
                             model_dir=tuned_dir, steps=1, conv_compute_dtype="bfloat16"):
        model = compression_train.make_task().build_model()
        assert model.lambda_map_fraction == 1.0
        assert precision.conv_compute_dtype(model.network) == "bfloat16"
        cli.main(["compression", "train"])
    tuned = pretrained.load_network(tuned_dir)
    assert tuned.get_config()["num_filters"] == source.num_filters == 8
    assert precision.conv_compute_dtype(tuned) == "float32"
    assert tuned.loss_space.get_config() == source.loss_space.get_config()
    differences = [np.abs(a - b).max() for a, b in zip(source.get_weights(), tuned.get_weights())]
    assert max(differences) < 2e-3 * 1.01  # one Adam step moves a weight by about the learning rate
    config = json.loads(open(os.path.join(tuned_dir, "train_config.json")).read())
    assert config["task"]["init_from"] == source_dir and config["task"]["lambda_map_fraction"] == 1.0
    assert config["task"]["conv_compute_dtype"] == "bfloat16"
    # The architecture recorded is the network's, not the unused flags' defaults.
    assert {key: config["task"][key] for key in ("num_filters", "num_latent", "conditioning_units", "lambda_range")} == {
        "num_filters": 8, "num_latent": source.num_latent, "conditioning_units": source.conditioning_units,
        "lambda_range": "0.002,0.05"}

    for flag_values, message in [
        (dict(init_from=source_dir, num_filters=16), "remove --num_filters"),
        (dict(init_from=str(tmp_path / "missing.keras")), "missing.keras"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            train(**arguments, model_dir=str(tmp_path / "bad"), steps=1, **flag_values)
        assert exit_info.value.code == 1
        assert message in capsys.readouterr().err
