"""The shared trainer core: resume after kill -9, a clean stop on SIGTERM / SIGINT, NaN guard,
strategies, flag errors."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainers import core
from trainers.stopping import StopRequest
from yoto_tf import LossConditionalModel, toy

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _toy_command(model_dir, *flags):
    return [sys.executable, "-m", "trainers.toy", f"--model_dir={model_dir}", *flags]


def _run(cmd, timeout=180, **env):
    return subprocess.run(cmd, cwd=REPO_ROOT, env=_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def _distance_to_optimum(log):
    match = re.search(r"held-out lambdas: max ([0-9.]+)", log)
    assert match, log[-2000:]
    return float(match.group(1))


def test_killed_run_resumes_at_its_checkpoint(tmp_path):
    model_dir = tmp_path / "run"
    cmd = _toy_command(model_dir, "--steps=3000", "--checkpoint_every=100", "--log_every=500",
                       "--learning_rate=3e-3")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    index = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 120
    while not index.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert index.exists(), "no checkpoint was written before the deadline"
    time.sleep(0.3)  # let it train (and maybe be mid-write) a little further
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (model_dir / "model.keras").exists(), "the run finished before it was killed"

    rerun = _run(cmd)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed = re.search(r"Resumed from \S+ckpt-(\d+) \(step (\d+)\)", rerun.stderr)
    assert resumed, rerun.stderr[-3000:]
    step = int(resumed.group(2))
    assert 100 <= step < 3000 and step % 100 == 0
    assert f"Training toy from step {step} to 3000" in rerun.stderr
    assert "step 3000/3000" in rerun.stderr
    # The final weights are usable: the model follows the optimum.
    assert _distance_to_optimum(rerun.stderr) < 0.15
    network = keras.models.load_model(model_dir / "model.keras")
    y = network.predict([np.ones((1, 1), "float32"), np.array([[1.0, 1.0]], "float32")], verbose=0)
    np.testing.assert_allclose(y[0], toy.optimum([1.0])[0], atol=0.15)


def test_a_signal_stops_training_with_a_checkpoint_and_the_model_at_that_step(tmp_path):
    """kill (SIGTERM) between checkpoints: the step under way finishes, a checkpoint at that
    step (not the last periodic one) and model.keras are written, the exit status is 128 +
    the signal, and the same command resumes at that step."""
    stop_signal = signal.SIGTERM
    model_dir = tmp_path / "run"
    cmd = _toy_command(model_dir, "--steps=1000000", "--checkpoint_every=100000", "--log_every=50",
                       "--learning_rate=3e-3")
    log_path = tmp_path / "stderr.txt"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 120
        while "step 50/1000000" not in log_path.read_text() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert "step 50/1000000" in log_path.read_text(), log_path.read_text()[-3000:]
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=120) == 128 + stop_signal
    stderr = log_path.read_text()
    stopped = re.search(rf"{stop_signal.name} stopped training at step (\d+) of 1000000: the checkpoint "
                        r"\S+ckpt-(\d+) and model.keras hold that step", stderr)
    assert stopped and stopped.group(1) == stopped.group(2), stderr[-3000:]
    step = int(stopped.group(1))
    assert 50 <= step < 100000 and "Traceback" not in stderr
    network = keras.models.load_model(model_dir / "model.keras")
    assert network.count_params() > 0

    rerun = _run(_toy_command(model_dir, f"--steps={step + 20}", "--checkpoint_every=100000", "--log_every=50",
                              "--learning_rate=3e-3"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"(step {step})." in rerun.stderr and f"Training toy from step {step} to {step + 20}" in rerun.stderr


def test_ctrl_c_asks_for_a_stop_and_a_second_one_stops_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with StopRequest() as request:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # Python runs the handler between bytecodes
        assert request.signal_number == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is previous


def _nan_task(nan_from_step):
    space = toy.loss_space()

    def make_dataset(batch_size, seed):
        def batch(i):
            value = tf.where(i >= nan_from_step - 1, float("nan"), 1.0)
            return tf.fill([batch_size, 1], value)
        return tf.data.Dataset.range(10**9).map(batch)

    return core.TrainTask(
        build_model=lambda: LossConditionalModel(toy.build_network(space), toy.loss_terms, seed=0),
        make_dataset=make_dataset,
        name="nan",
    )


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = core.TrainConfig(model_dir=str(tmp_path), steps=100, batch_size=4,
                           checkpoint_every=10, log_every=5)
    with pytest.raises(core.TrainingDivergedError, match=r"NaN/inf at step 26.*ckpt-20"):
        core.train(_nan_task(nan_from_step=26), cfg)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-20")
    assert not (tmp_path / "model.keras").exists()
    # The kept checkpoint holds finite weights.
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints"))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def test_tensorboard_scalars_and_config_written(tmp_path):
    space = toy.loss_space()
    task = core.TrainTask(
        build_model=lambda: LossConditionalModel(toy.build_network(space), toy.loss_terms, seed=0),
        make_dataset=lambda b, s: tf.data.Dataset.from_tensors(tf.ones([b, 1])).repeat(),
        summaries=lambda network, step: core.Summaries(
            scalars={"eval/step_seen": step}, images={"eval/grey": np.full((1, 4, 4, 3), 0.5, "float32")}),
    )
    cfg = core.TrainConfig(model_dir=str(tmp_path), steps=20, batch_size=4, log_every=10,
                           checkpoint_every=10)
    core.train(task, cfg)
    tags = set()
    for event_file in (tmp_path / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"train/loss", "train/to_a", "train/to_b", "train/steps_per_second",
            "eval/step_seen", "eval/grey"} <= tags
    assert json.loads((tmp_path / "train_config.json").read_text())["steps"] == 20
    # Rerunning a finished run does no work and keeps the step.
    model = core.train(task, cfg)
    assert int(model.optimizer.iterations.numpy()) == 20


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    result = _run(_toy_command(tmp_path, "--strategy=mirrored", "--cpu_devices=2",
                               "--steps=1200", "--learning_rate=3e-3", "--batch_size=64",
                               "--log_every=400"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(mirrored strategy, 2 replica(s))" in result.stderr
    assert _distance_to_optimum(result.stderr) < 0.2


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--steps=0", "flag --steps=0: 0 is not a positive integer"),
        ("--learning_rate=-1", "flag --learning_rate=-1.0: --learning_rate must be a positive"),
        ("--strategy=gpu", "flag --strategy=gpu: value should be one of"),
        ("--batch_size=abc", "flag --batch_size=abc"),
    ],
)
def test_bad_flags_are_named(tmp_path, flag, message):
    result = _run(_toy_command(tmp_path, flag), timeout=60)
    assert result.returncode != 0
    assert message in result.stderr


def test_multi_worker_without_tf_config_is_a_clear_error(tmp_path):
    env = _env()
    env.pop("TF_CONFIG", None)
    result = subprocess.run(_toy_command(tmp_path, "--strategy=multi_worker"), cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--strategy=multi_worker needs the TF_CONFIG environment variable" in result.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_worker_two_local_processes(tmp_path):
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            _toy_command(tmp_path / "run", "--strategy=multi_worker", "--steps=200",
                         "--log_every=100", "--checkpoint_every=100"),
            cwd=REPO_ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True))
    logs = [p.communicate(timeout=240)[1] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
        assert "(multi_worker strategy, 2 replica(s))" in log
        assert "step 200/200" in log
    assert (tmp_path / "run" / "model.keras").exists()  # written by the chief only
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-200")
