r"""Trains the compression network from numpy crops on any Keras backend: Keras' JAX
backend on a GPU machine, where TensorFlow is not installed.

  KERAS_BACKEND=jax python -m trainers.compression_numpy --images "photos/*.jpg" \
      --init_from mean_scale_64_maps --out_dir runs/gpu --steps 200000 --batch_size 16

The model, loss and weighting are those of ``python -m trainers.compression train``
(``yoto_tf.compression.training.build_model``: geometric-mean weighting, optional lambda
maps); only the input differs: the images are decoded once with Pillow and every batch is
``--batch_size`` random ``--patch_size`` crops cut in numpy (seeded). Every
``--checkpoint_every`` steps and at the end, ``OUT_DIR/checkpoint.npz`` (the weights, Adam's
state and step) and then ``OUT_DIR/model.keras`` (the network, loadable by every command of
this project) are each written to a temporary file and renamed; a rerun with the same
``--out_dir`` resumes from the checkpoint. SIGINT / SIGTERM stop cleanly: the step under way
finishes, both files are written at that step, and the exit status is 128 + the signal number.
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
from absl import app, flags, logging

from trainers import cli
from trainers.stopping import StopRequest
from yoto_tf.compression import precision
from yoto_tf.files import save_keras_atomically, write_atomically, write_json_atomically

FLAGS = flags.FLAGS

flags.DEFINE_string("images", None, "Training images: a glob of image files (JPEG, PNG, ...).")
flags.DEFINE_string("out_dir", None, "Where model.keras and checkpoint.npz are written (and resumed from).")
flags.DEFINE_string("init_from", None, "Start from this trained network: a model.keras or a shipped name "
                    "(default: a new network with --num_filters/--num_latent).")
flags.DEFINE_integer("num_filters", 64, "N of a new network.", lower_bound=1)
flags.DEFINE_integer("num_latent", 128, "M of a new network.", lower_bound=1)
flags.DEFINE_integer("synthesis_filters", None, "Synthesis width of a new network (default --num_filters); "
                     "with --init_from, widen its synthesis to this many channels, keeping what it computes.",
                     lower_bound=1)
flags.DEFINE_integer("channel_slices", None, "Code the latent in this many slices with a channel context "
                     "(yoto_tf/compression/model.py; default 0: none); with --init_from, add one to that "
                     "network, starting from what it computes.", lower_bound=2)
flags.DEFINE_bool("residual_prediction", False, "Latent residual prediction after each slice (needs a channel "
                  "context); with --init_from, add it to that network, starting from what it computes.")
flags.DEFINE_integer("steps", 1000, "Total steps (a resumed run continues to this step).", lower_bound=1)
flags.DEFINE_integer("batch_size", 8, "Crops per step.", lower_bound=1)
flags.DEFINE_integer("patch_size", 256, "Crop side (a multiple of 64).", lower_bound=64)
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_integer("learning_rate_drop_step", 0,
                     "From this step on, train at --learning_rate * 0.1 (0 = never).", lower_bound=0)
flags.DEFINE_float("clip_norm", 1.0, "Global gradient-norm clipping (0 = off).", lower_bound=0.0)
flags.DEFINE_float("lambda_map_fraction", 0.0, "Share of the examples trained on a random two-level "
                   "lambda map (see trainers.compression).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("conv_compute_dtype", "float32", list(precision.COMPUTE_DTYPES),
                  "Compute the convs between feature maps in bfloat16 (mixed precision, float32 weights) "
                  "or float32; the saved model computes in float32 (yoto_tf/compression/precision.py).")
flags.DEFINE_integer("checkpoint_every", 1000, "Write checkpoint.npz and model.keras every N steps.", lower_bound=1)
flags.DEFINE_integer("log_every", 100, "Log the batch's distortion, rate and speed every N steps.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the crops, the lambda draws and a new network's weights.")

MODEL_FILE, CHECKPOINT_FILE = "model.keras", "checkpoint.npz"
ARCHITECTURE_FLAGS = ("num_filters", "num_latent")
"""What a new network takes: not allowed beside --init_from."""
RUN_FLAGS = ("images", "init_from", "num_filters", "num_latent", "synthesis_filters", "channel_slices", "residual_prediction",
             "steps", "batch_size",
             "patch_size", "learning_rate", "learning_rate_drop_step", "clip_norm", "lambda_map_fraction", "seed",
             "conv_compute_dtype")
"""The settings recorded in OUT_DIR/train_config.json."""


class RandomCrops:
    """Random ``size`` x ``size`` crops of images decoded once (uint8 in memory), as float32
    batches [B, size, size, 3] in [0, 1]."""

    def __init__(self, pattern: str, size: int, seed: int):
        from yoto_tf.images import load_image  # pylint: disable=import-outside-toplevel

        paths = sorted(glob.glob(pattern))
        if not paths:
            raise ValueError(f"--images: no file matches {pattern!r}")
        images = [load_image(path) for path in paths]  # ImageReadError (a ValueError) names the file
        self.images = [image for image in images if min(image.shape[:2]) >= size]
        if not self.images:
            raise ValueError(f"--images: none of the {len(paths)} images is at least {size}x{size} "
                             f"(--patch_size {size})")
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> np.ndarray:
        crops = []
        for index in self.rng.integers(len(self.images), size=batch_size):
            image = self.images[index]
            top = self.rng.integers(image.shape[0] - self.size + 1)
            left = self.rng.integers(image.shape[1] - self.size + 1)
            crops.append(image[top:top + self.size, left:left + self.size])
        return np.stack(crops).astype(np.float32) / 255.0


def _learning_rate():
    import keras  # pylint: disable=import-outside-toplevel

    if not FLAGS.learning_rate_drop_step:
        return FLAGS.learning_rate
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [FLAGS.learning_rate_drop_step], [FLAGS.learning_rate, FLAGS.learning_rate * 0.1])


def _network(model_path: str):
    """The network to train: ``model_path``'s when resuming (not None), else --init_from's,
    else a new one."""
    from yoto_tf import pretrained  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression import model as model_lib  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression import widening  # pylint: disable=import-outside-toplevel

    initial = cli.load_initial_network(FLAGS, ARCHITECTURE_FLAGS,  # checks the flags even when resuming
                                       resume_model=model_path, network_class=model_lib.CompressionNetwork)
    if model_path:
        return pretrained.load_network(model_path)
    if initial:
        path, network = initial
        logging.info("Starting from %s.", path)
        try:
            return widening.grow(network, FLAGS.synthesis_filters, FLAGS.channel_slices, FLAGS.residual_prediction)
        except ValueError as err:
            raise ValueError(f"--init_from {path}: {err}") from None
    return model_lib.build_network(num_filters=FLAGS.num_filters, num_latent=FLAGS.num_latent,
                                   seed=FLAGS.seed, mean_scale=True, mixed_quantization=True,
                                   synthesis_filters=FLAGS.synthesis_filters,
                                   channel_slices=FLAGS.channel_slices or 0,
                                   residual_prediction=FLAGS.residual_prediction)


def _restore(network, optimizer, path: str) -> None:
    """Assigns the checkpoint's network weights and Adam state (shapes checked)."""
    with np.load(path, allow_pickle=False) as saved:
        weights = [saved[f"w{i}"] for i in range(int(saved["num_weights"]))]
        state = [saved[f"o{i}"] for i in range(int(saved["num_optimizer_variables"]))]
    for name, values, variables in (("weights", weights, network.weights),
                                    ("optimizer state", state, optimizer.variables)):
        if len(values) != len(variables) or any(v.shape != tuple(w.shape) for v, w in zip(values, variables)):
            raise ValueError(f"{path}: {name} of another model ({len(values)} arrays for {len(variables)} "
                             "variables); use another --out_dir")
        for variable, value in zip(variables, values):
            variable.assign(value)


def _save(network, optimizer, out_dir: str) -> None:
    """The checkpoint (weights and Adam state, one file), then model.keras; both atomic."""
    import keras  # pylint: disable=import-outside-toplevel

    arrays = {f"w{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(network.weights)}
    arrays.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)})
    arrays.update(num_weights=len(network.weights), num_optimizer_variables=len(optimizer.variables))
    write_atomically(os.path.join(out_dir, CHECKPOINT_FILE), lambda tmp: np.savez(tmp, **arrays), suffix=".npz")
    save_keras_atomically(network, os.path.join(out_dir, MODEL_FILE))


def train(stop: StopRequest) -> int:
    """Trains to --steps, or until ``stop`` holds a signal, and returns the step reached
    (checkpoint.npz and model.keras hold it)."""
    import keras  # pylint: disable=import-outside-toplevel
    from yoto_tf.compression import training  # pylint: disable=import-outside-toplevel

    os.makedirs(FLAGS.out_dir, exist_ok=True)
    keras.utils.set_random_seed(FLAGS.seed)
    model_path = os.path.join(FLAGS.out_dir, MODEL_FILE)
    checkpoint_path = os.path.join(FLAGS.out_dir, CHECKPOINT_FILE)
    resuming = os.path.exists(checkpoint_path) and os.path.exists(model_path)
    network = _network(model_path if resuming else None)
    precision.set_conv_compute_dtype(network, FLAGS.conv_compute_dtype)
    warning = precision.emulation_warning(FLAGS.conv_compute_dtype)
    if warning:
        logging.warning("--%s", warning)
    model = training.CompressionTrainingModel(network, seed=FLAGS.seed,
                                              lambda_map_fraction=FLAGS.lambda_map_fraction)
    optimizer = keras.optimizers.Adam(_learning_rate(), global_clipnorm=FLAGS.clip_norm or None)
    model.compile(optimizer)
    optimizer.build(model.trainable_variables)
    if resuming:
        _restore(network, optimizer, checkpoint_path)
    step = int(keras.ops.convert_to_numpy(optimizer.iterations))
    crops = RandomCrops(FLAGS.images, FLAGS.patch_size, FLAGS.seed + step)  # a resumed run draws new crops
    logging.info("Training compression (%s backend) from step %d to %d.", keras.backend.backend(), step, FLAGS.steps)
    settings = {name: FLAGS[name].value for name in RUN_FLAGS}
    write_json_atomically(os.path.join(FLAGS.out_dir, "train_config.json"),
                          {**settings, "backend": keras.backend.backend(), "resumed_at_step": step}, indent=1)
    start = time.time()
    first = step
    while step < FLAGS.steps and stop.signal_number is None:
        logs = model.train_on_batch(crops.batch(FLAGS.batch_size), return_dict=True)
        step += 1
        if step % FLAGS.log_every == 0:
            rate = (step - first) / (time.time() - start)
            logging.info("step %d/%d | distortion %.1f | rate %.4f | %.2f steps/s", step, FLAGS.steps,
                         float(np.mean(logs["distortion"])), float(np.mean(logs["rate"])), rate)
        if step % FLAGS.checkpoint_every == 0 or step == FLAGS.steps or stop.signal_number is not None:
            _save(network, optimizer, FLAGS.out_dir)
    return step


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.images or not FLAGS.out_dir:
        raise app.UsageError("--images and --out_dir are required")
    try:
        with StopRequest() as stop:
            step = train(stop)
    except (OSError, ValueError) as error:
        cli.fail("compression_numpy", error)
    if stop.signal_number is not None and step < FLAGS.steps:
        logging.warning("%s stopped training at step %d of %d: %s and %s hold that step; run the same "
                        "command to continue.", stop.signal_name, step, FLAGS.steps,
                        os.path.join(FLAGS.out_dir, CHECKPOINT_FILE), os.path.join(FLAGS.out_dir, MODEL_FILE))
        raise SystemExit(128 + stop.signal_number)
    print(f"trained to step {step}: {os.path.join(FLAGS.out_dir, MODEL_FILE)}")


if __name__ == "__main__":
    cli.run_app(main, __name__)
