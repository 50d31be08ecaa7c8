r"""Fits a channel context to a trained compression model's frozen transforms.

  python -m trainers.fit_channel_context --init_from mean_scale_64_s128_45k --channel_slices 8 \
      --train_data "folder:photos/*.jpg" --out_dir runs/context

Adds a channel context of ``--channel_slices`` slices to ``--init_from`` (a shipped name, a
model.keras or a run directory; a model that has one already keeps it), runs the frozen
analysis on ``--crops`` random crops once, then trains only the context on their latents
(``yoto_tf/compression/context_fitting.py``): minutes on a CPU where joint training
(``trainers.compression train --init_from NAME --channel_slices S``) takes hours.
``OUT_DIR/model.keras`` is a complete model for ``compress``, ``decompress`` and
``evaluate_compression``. Every ``--checkpoint_every`` steps and at the end, the context and
Adam's state (``OUT_DIR/checkpoints``) and then ``OUT_DIR/model.keras`` are written
atomically; the same command resumes. SIGINT / SIGTERM stop cleanly after the step under
way. The log ends with the rate of held-out crops with the context and with the hyperprior
alone.
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging

from trainers import cli, run_files
from trainers.stopping import StopRequest

FLAGS = flags.FLAGS

flags.DEFINE_string("init_from", None, "The trained mean-scale model: a shipped name, a model.keras or a run directory.")
flags.DEFINE_integer("channel_slices", None, "Slices of the context to add (they must divide the latent "
                     "channels); not needed when --init_from has a context already.", lower_bound=2)
flags.DEFINE_string("train_data", "builtin", "Crops come from: builtin | folder:GLOB (the images the model trained on).")
flags.DEFINE_string("out_dir", None, "Where model.keras and the checkpoints are written (and resumed from).")
flags.DEFINE_integer("patch_size", 256, "Crop side (a multiple of 64).", lower_bound=64)
flags.DEFINE_integer("crops", 1536, "Training crops whose latents the context is fitted to.", lower_bound=16)
flags.DEFINE_integer("held_out_crops", 128, "Further crops, only measured.", lower_bound=16)
flags.DEFINE_integer("steps", 4000, "Total steps (a resumed run continues to this step).", lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Crops per step.", lower_bound=1)
flags.DEFINE_float("learning_rate", 3e-4, "Adam's learning rate.", lower_bound=0.0)
flags.DEFINE_integer("seed", 0, "Seed of the crops, their lambdas and the training noise.")
flags.DEFINE_integer("log_every", 250, "Log the mean rate every N steps.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 500, "Write the checkpoint and model.keras every N steps.", lower_bound=1)
flags.register_validator("patch_size", lambda v: v % 64 == 0, message="--patch_size must be a multiple of 64.")

COLLECT_BATCH = 16


def _network(resume_model: str | None):
    """The network to fit: the run's own model.keras when resuming, else --init_from's with
    a context added."""
    from yoto_tf import pretrained  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression.model import CompressionNetwork  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression.widening import grow  # pylint: disable=import-outside-toplevel

    source = resume_model or FLAGS.init_from
    network = pretrained.load_network(source)
    if not isinstance(network, CompressionNetwork):
        raise ValueError(f"--init_from: {source} holds a {type(network).__name__}, not a CompressionNetwork")
    if not (network.channel_slices or FLAGS.channel_slices):
        raise ValueError(f"--init_from: {source} has no channel context; give --channel_slices")
    try:
        return grow(network, channel_slices=FLAGS.channel_slices)
    except ValueError as err:
        raise ValueError(f"--channel_slices: {source}: {err}") from None


def _latents(network, count: int, seed: int):
    from yoto_tf import data  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression import context_fitting  # pylint: disable=import-outside-toplevel

    batches = data.image_dataset(FLAGS.train_data, FLAGS.patch_size, COLLECT_BATCH, seed=seed)
    return context_fitting.collect_latents(
        network, (b.numpy() for b in batches.take(-(-count // COLLECT_BATCH))), seed=seed)


def fit(stop: StopRequest) -> tuple[int, str, dict]:
    """Fits to --steps, or until ``stop`` holds a signal; returns the step reached, the path
    of the model.keras that holds it, and the held-out rates."""
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression import context_fitting  # pylint: disable=import-outside-toplevel
    from yoto_tf.files import save_keras_atomically  # pylint: disable=import-outside-toplevel

    os.makedirs(FLAGS.out_dir, exist_ok=True)
    keras.utils.set_random_seed(FLAGS.seed)
    network = _network(run_files.resumable_model(FLAGS.out_dir))
    fitter = context_fitting.ContextFitter(network, FLAGS.learning_rate, FLAGS.seed)
    checkpoint = tf.train.Checkpoint(network=network, optimizer=fitter.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(FLAGS.out_dir, run_files.CHECKPOINT_DIR), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s (step %d).", manager.latest_checkpoint, int(fitter.optimizer.iterations))
    model_path = os.path.join(FLAGS.out_dir, run_files.MODEL_FILE)

    def save(step):
        manager.save(checkpoint_number=step)
        save_keras_atomically(network, model_path)

    start = time.time()
    latents = _latents(network, FLAGS.crops, FLAGS.seed)
    held_out = _latents(network, FLAGS.held_out_crops, FLAGS.seed + 1)
    logging.info("Latents of %d + %d held-out crops in %.0f s; fitting %d slices to step %d.",
                 len(latents), len(held_out), time.time() - start, network.channel_slices, FLAGS.steps)
    start, first = time.time(), int(fitter.optimizer.iterations)

    def on_step(step, bits):
        if step % FLAGS.log_every == 0:
            logging.info("step %d/%d | %.0f bits per crop (noisy latents) | %.2f steps/s", step, FLAGS.steps,
                         bits, (step - first) / (time.time() - start))
        if step % FLAGS.checkpoint_every == 0 or stop.signal_number is not None:
            save(step)
        return stop.signal_number is None

    step = fitter.fit(latents, FLAGS.steps, FLAGS.batch_size, on_step)
    if stop.signal_number is None:
        save(step)
    return step, model_path, context_fitting.held_out_rates(fitter, held_out)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.init_from or not FLAGS.out_dir:
        raise app.UsageError("--init_from and --out_dir are required")
    try:
        with StopRequest() as stop:
            step, model_path, rates = fit(stop)
    except (OSError, ValueError) as error:
        cli.fail("fit_channel_context", error)
    if stop.signal_number is not None and step < FLAGS.steps:
        logging.warning("%s stopped fitting at step %d of %d: the checkpoint and %s hold that step; run the "
                        "same command to continue.", stop.signal_name, step, FLAGS.steps, model_path)
        raise SystemExit(128 + stop.signal_number)
    print(f"fitted to step {step}: {model_path}; held-out crops: {rates['context_bits']:.0f} bits per crop with "
          f"the context, {rates['hyperprior_bits']:.0f} with the hyperprior alone ({rates['change_percent']:+.2f} %)")


if __name__ == "__main__":
    cli.run_app(main, __name__)
