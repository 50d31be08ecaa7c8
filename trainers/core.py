"""The trainer core every task trainer shares.

A task trainer is a thin absl script: it defines its own flags, builds a :class:`TrainTask`
(how to build the LossConditionalModel, the input pipeline, and the final artifacts) and
calls :func:`train_from_flags`. This module owns the rest:

* common flags: ``--model_dir --steps --batch_size --learning_rate --seed --strategy
  --log_every --checkpoint_every`` (+ ``--keep_checkpoints --cpu_devices --tpu``),
* the tf.distribute strategy (default, mirrored, multi_worker, tpu),
* checkpoints (``tf.train.CheckpointManager``: data files first, then the ``checkpoint``
  index file replaced atomically, so a run killed at any moment resumes from the last
  complete checkpoint at its step),
* TensorBoard scalars (the total loss and every loss term) and optional image summaries,
* a progress display (steps/s, ETA) and a NaN guard (stops, keeps the last good
  checkpoint, says so),
* a clean stop on SIGINT / SIGTERM (Ctrl-C, ``kill``, a scheduler's preemption): the step
  under way finishes, then a checkpoint at that step and ``model.keras`` are written and the
  process exits with status 128 + the signal number; the same command resumes,
* the final ``model.keras`` (the conditioned network with its LossSpace), written
  atomically on the chief.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from trainers.run_files import CHECKPOINT_DIR, MODEL_FILE
from trainers.stopping import StopRequest
from yoto_tf.files import write_json_atomically
from yoto_tf.model_files import save_model
from yoto_tf.training import LossConditionalModel

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Directory for checkpoints, TensorBoard logs and the final model.")
flags.DEFINE_integer("steps", 1000, "Total number of training steps (a resumed run continues to this step).", lower_bound=1)
flags.DEFINE_integer("batch_size", 8, "Global batch size (split across replicas).", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Random seed (weights, lambda sampling, data order).")
flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
    "tf.distribute strategy: default (one device), mirrored (all local GPUs, or the "
    "--cpu_devices logical CPUs), multi_worker (several machines; needs TF_CONFIG), tpu.",
)
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu ('' = local TPU).")
flags.DEFINE_integer(
    "cpu_devices", 1,
    "Split the CPU into this many logical devices (lets --strategy=mirrored run on a CPU-only "
    "machine, e.g. to test data-parallel training).", lower_bound=1,
)
flags.DEFINE_integer("log_every", 50, "Log progress and TensorBoard scalars every N steps.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 500, "Write a checkpoint every N steps.", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "Number of recent checkpoints kept.", lower_bound=1)

flags.register_validator(
    "learning_rate", lambda v: v > 0 and math.isfinite(v),
    message="--learning_rate must be a positive finite number.",
)


@dataclasses.dataclass(frozen=True)
class Summaries:
    """What a task's summary hook returns; the trainer core writes it to TensorBoard.

    Attributes:
      scalars: ``{tag: float}`` (e.g. ``eval/psnr/lambda_0.018``).
      images: ``{tag: float32 [N, H, W, 3] in [0, 1]}`` (clipped when written).
    """

    scalars: Mapping[str, float] = dataclasses.field(default_factory=dict)
    images: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainTask:
    """What a task trainer supplies to :func:`train`.

    Attributes:
      build_model: ``() -> LossConditionalModel``, uncompiled; called inside the strategy scope.
      make_dataset: ``(global_batch_size, seed) -> tf.data.Dataset``, infinite and batched,
        yielding what the model takes (inputs, or ``{"inputs", "lambda"}`` dicts).
      export: optional ``(network, model_dir) -> None`` writing task artifacts (grids,
        plots) on the chief after training; ``model.keras`` is written by the core and
        ``network`` is that file loaded back (outside any distribution strategy).
      summaries: optional ``(network, step) -> Summaries`` (scalars and images of a fixed
        evaluation batch), written to TensorBoard by the core every ``log_every`` steps.
      optimizer: optional ``(learning_rate) -> keras.optimizers.Optimizer`` (default Adam).
      name: shown in logs.
      model_info: optional JSON-serializable facts stored inside ``model.keras`` (read them
        with ``yoto_tf.model_files.read_model_info``), e.g. the loss network's weights.
      settings: the task's own settings (its flags, built once in ``main``), written under
        ``"task"`` in ``MODEL_DIR/train_config.json`` beside the common settings.
    """

    build_model: Callable[[], LossConditionalModel]
    make_dataset: Callable[[int, int], tf.data.Dataset]
    export: Callable[[keras.Model, str], None] | None = None
    summaries: Callable[[keras.Model, int], "Summaries"] | None = None
    optimizer: Callable[[float], keras.optimizers.Optimizer] | None = None
    name: str = "yoto"
    model_info: Mapping | None = None
    settings: Mapping | None = None


@dataclasses.dataclass
class TrainConfig:
    """The common settings; :func:`config_from_flags` fills it from the absl flags."""

    model_dir: str
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0
    strategy: str = "default"
    tpu: str = ""
    cpu_devices: int = 1
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 3


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingStopped(RuntimeError):
    """A SIGINT or SIGTERM stopped training; a checkpoint at ``step`` and ``model.keras``
    were written. ``signal_number`` is the signal's number (the CLI exits with 128 + it)."""

    def __init__(self, message: str, step: int, signal_number: int):
        super().__init__(message)
        self.step, self.signal_number = step, signal_number


def config_from_flags() -> TrainConfig:
    if not FLAGS.model_dir:
        raise flags.ValidationError("--model_dir is required (where checkpoints and the model go).")
    return TrainConfig(**{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(TrainConfig)})


# --------------------------------------------------------------------------- strategy
def make_strategy(name: str, tpu: str = "", cpu_devices: int = 1) -> tf.distribute.Strategy:
    """Builds the tf.distribute strategy named by ``--strategy``."""
    if cpu_devices > 1:
        _split_cpu(cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise flags.ValidationError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable describing "
                'the cluster, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}} (see README, "Distributed training").'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as err:
            raise RuntimeError(f"--strategy=tpu: no TPU found at {tpu or 'local'!r}: {err}") from err
        return tf.distribute.TPUStrategy(resolver)
    raise flags.ValidationError(f"--strategy: unknown strategy {name!r}.")


def _split_cpu(count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    if existing and len(existing) == count:
        return
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


# --------------------------------------------------------------------------- callbacks
class _Progress(keras.callbacks.Callback):
    """Logs loss, terms, steps/s and ETA; writes TensorBoard scalars; guards against NaN;
    saves checkpoints. One callback so the order of these steps is explicit."""

    def __init__(self, task, cfg, start_step, manager, writer, stop_request):
        super().__init__()
        self.task, self.cfg = task, cfg
        self.step = start_step
        self.manager = manager
        self.writer = writer
        self.stop_request = stop_request
        self.diverged_at = None
        self.last_saved = start_step

    def on_train_begin(self, logs=None):
        self.t0 = self.t_last = time.perf_counter()
        self.step_last = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        logs = {name: float(np.mean(value)) for name, value in (logs or {}).items()}
        if not all(math.isfinite(v) for v in logs.values()):
            self.diverged_at = self.step
            self.model.stop_training = True
            return
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
            self._log(logs)
            self.model.reset_metrics()  # the next log shows the mean of the next window
        if self.step % self.cfg.checkpoint_every == 0:
            self.save()
        if self.stop_request.signal_number is not None:
            self.model.stop_training = True  # train() saves this step's checkpoint after fit()

    def save(self):
        if self.diverged_at is None and self.last_saved != self.step:
            self.manager.save(checkpoint_number=self.step)
            self.last_saved = self.step

    def _log(self, logs):
        now = time.perf_counter()
        rate = (self.step - self.step_last) / max(now - self.t_last, 1e-9)
        self.t_last, self.step_last = now, self.step
        eta = (self.cfg.steps - self.step) / max(rate, 1e-9)
        values = " | ".join(f"{k} {float(v):.4g}" for k, v in logs.items())
        logging.info(
            "step %d/%d (%.0f%%) | %s | %.2f steps/s | ETA %s",
            self.step, self.cfg.steps, 100.0 * self.step / self.cfg.steps, values, rate,
            _format_seconds(eta),
        )
        if self.writer is None:
            return
        with self.writer.as_default(step=self.step):
            for key, value in logs.items():
                tf.summary.scalar(f"train/{key}", float(value))
            tf.summary.scalar("train/steps_per_second", rate)
            if self.task.summaries is not None:
                summaries = self.task.summaries(self.model.saved_network(), self.step)
                for tag, value in summaries.scalars.items():
                    tf.summary.scalar(tag, float(value))
                for tag, batch in summaries.images.items():
                    tf.summary.image(tag, np.clip(batch, 0.0, 1.0), max_outputs=len(batch))
        self.writer.flush()


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


# --------------------------------------------------------------------------- training
def train(task: TrainTask, cfg: TrainConfig) -> LossConditionalModel:
    """Trains ``task`` to ``cfg.steps`` steps, resuming from ``cfg.model_dir`` if possible.

    Returns the trained LossConditionalModel; writes ``model_dir/model.keras`` (the
    network) and calls ``task.export`` on the chief.

    Raises:
      TrainingDivergedError: the loss became NaN/inf (the last good checkpoint is kept).
      TrainingStopped: SIGINT or SIGTERM arrived (in the main thread): training stopped after
        the step under way, whose checkpoint and ``model.keras`` were written.
    """
    keras.utils.set_random_seed(cfg.seed)
    strategy = make_strategy(cfg.strategy, cfg.tpu, cfg.cpu_devices)
    chief = is_chief(strategy)
    os.makedirs(cfg.model_dir, exist_ok=True)
    with strategy.scope():
        model = task.build_model()
        optimizer = (task.optimizer or (lambda lr: keras.optimizers.Adam(lr)))(cfg.learning_rate)
        model.compile(optimizer=optimizer)

    # Variables must exist before restoring: build the model and optimizer on one batch.
    dataset = task.make_dataset(cfg.batch_size, cfg.seed)
    probe = next(iter(dataset.take(1)))
    with strategy.scope():
        model(probe)
        optimizer.build(model.trainable_variables)

    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    checkpoint_dir = os.path.join(cfg.model_dir, CHECKPOINT_DIR)
    if not chief:  # Non-chief workers must save too (collectives), but somewhere private.
        checkpoint_dir = tempfile.mkdtemp(prefix="yoto_worker_ckpt_")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=cfg.keep_checkpoints)
    latest = tf.train.latest_checkpoint(os.path.join(cfg.model_dir, CHECKPOINT_DIR))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s (step %d).", latest, int(optimizer.iterations.numpy()))
    start_step = int(optimizer.iterations.numpy())

    writer = tf.summary.create_file_writer(os.path.join(cfg.model_dir, "train")) if chief else None
    _write_config(cfg, task.settings, chief)
    if start_step >= cfg.steps:
        logging.info("Already trained to step %d (>= --steps=%d); nothing to do.", start_step, cfg.steps)
    else:
        if start_step:  # a resumed run must not replay the first batches: re-seed
            dataset = task.make_dataset(cfg.batch_size, cfg.seed + start_step)
        if cfg.strategy == "multi_worker":
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(options)
        stop_request = StopRequest()
        progress = _Progress(task, cfg, start_step, manager, writer, stop_request)
        logging.info("Training %s from step %d to %d (%s strategy, %d replica(s)).",
                     task.name, start_step, cfg.steps, cfg.strategy, strategy.num_replicas_in_sync)
        with stop_request:
            model.fit(dataset, epochs=1, steps_per_epoch=cfg.steps - start_step,
                      verbose=0, shuffle=False, callbacks=[progress])
        if progress.diverged_at is not None:
            raise TrainingDivergedError(
                f"The loss became NaN/inf at step {progress.diverged_at}; training stopped. "
                f"The last good checkpoint is {tf.train.latest_checkpoint(checkpoint_dir) or 'none (no checkpoint was written yet)'}; "
                "try a lower --learning_rate or check the input data."
            )
        progress.save()
        if stop_request.signal_number is not None and progress.step < cfg.steps:
            _write_model(task, model, cfg, chief)
            raise TrainingStopped(
                f"{stop_request.signal_name} stopped training at step {progress.step} of {cfg.steps}: the checkpoint "
                f"{manager.latest_checkpoint} and model.keras hold that step; run the same command "
                "to continue.", progress.step, stop_request.signal_number)
    _write_model(task, model, cfg, chief)
    return model


def _write_model(task: TrainTask, model: LossConditionalModel, cfg: TrainConfig, chief: bool) -> None:
    """``model_dir/model.keras`` (atomically) and the task's export, on the chief."""
    if chief:
        path = os.path.join(cfg.model_dir, MODEL_FILE)
        save_model(model.saved_network(), path, info=task.model_info)
        logging.info("Wrote %s", path)
        if task.export is not None:
            # The reloaded copy lives outside the strategy (predict() on the distributed
            # network would wait for the other workers) and proves the file loads.
            task.export(keras.models.load_model(path), cfg.model_dir)


def _write_config(cfg: TrainConfig, settings: Mapping | None, chief: bool) -> None:
    """``train_config.json``: the common settings, and the task's own under ``"task"``."""
    if chief:
        config = dict(dataclasses.asdict(cfg), task=dict(settings or {}))
        path = os.path.join(cfg.model_dir, "train_config.json")
        write_json_atomically(path, config)


def flag_values(names) -> dict:
    """``{name: value}`` of the absl flags ``names`` (a task's settings for ``TrainTask``)."""
    return {name: FLAGS[name].value for name in names}


def train_from_flags(task: TrainTask) -> LossConditionalModel:
    """:func:`train` with the settings of the common absl flags; for use inside ``main``."""
    try:
        return train(task, config_from_flags())
    except TrainingDivergedError as err:
        logging.error("%s", err)
        raise SystemExit(1) from None
    except TrainingStopped as stopped:
        logging.warning("%s", stopped)
        raise SystemExit(128 + stopped.signal_number) from None
