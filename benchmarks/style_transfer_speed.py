r"""Speed of the adjustable style-transfer network, with and without lambda conditioning.

  python -m benchmarks.style_transfer_speed [--width_multiplier 1 --repeats 5 --threads 0]

Measures on this machine:

* training throughput (images/s) at 256x256, batch 4: one full training step (transformer
  forward + VGG-16 perceptual losses + backward + Adam). "conditioned": the StyleTransferModel
  (ConditioningNetwork + 16 CIN heads, lambda sampled per example, per-term running-mean
  normalization); "unconditioned": the same transformer with plain instance norm trained on
  the fixed default weighting with the same loss layer.
* stylization latency (ms, batch 1) at 384x384 and 1024x1024: the transformer's forward pass
  in a tf.function, conditioned vs unconditioned.

Timings alternate between the two variants (A B A B ...) so machine noise hits both alike;
medians and their ratio (conditioned / unconditioned) are printed. VGG weights are random
(the speed does not depend on them).
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from yoto_tf.style_transfer.loss_space import style_transfer_loss_space
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.training import StyleTransferModel
from yoto_tf.style_transfer.transformer import build_network

flags.DEFINE_float("width_multiplier", 1.0, "Network width (1 = the Johnson/Magenta network).")
flags.DEFINE_integer("repeats", 5, "Timed rounds per variant.")
flags.DEFINE_integer("train_steps", 2, "Training steps per timed round.")
flags.DEFINE_integer("train_size", 256, "Training crop side.")
flags.DEFINE_integer("batch_size", 4, "Training batch size.")
flags.DEFINE_list("latency_sizes", ["384", "1024"], "Square image sides for the latency test.")
flags.DEFINE_integer("threads", 0, "TensorFlow intra-op threads (0 = TensorFlow's default).")
FLAGS = flags.FLAGS


class FixedWeightModel(keras.Model):
    """The unconditioned baseline: one fixed weighting (the LossSpace default) of the terms."""

    def __init__(self, network, losses, weights, **kwargs):
        super().__init__(**kwargs)
        self.network, self.losses_layer = network, losses
        self.weights_vector = np.asarray(weights, np.float32)
        self.names = list(style_transfer_loss_space().names)

    def call(self, x, training=False):
        return self.network(x["inputs"]["image"], training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.losses_layer(x["inputs"]["image"], y_pred)
        stacked = keras.ops.stack([terms[n] for n in self.names], axis=-1)
        return keras.ops.mean(keras.ops.sum(stacked * self.weights_vector, axis=-1))


def _alternate(runs: dict, repeats: int) -> dict:
    """Calls every ``runs[name]()`` once per round, round-robin; returns name -> seconds list."""
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _report(title: str, times: dict, unit_fn, unit: str) -> None:
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{title}")
    for name, seconds in medians.items():
        print(f"  {name:14s} {unit_fn(seconds):10.2f} {unit}   (median of {len(times[name])})")
    ratio = medians["conditioned"] / medians["unconditioned"]
    print(f"  time ratio conditioned / unconditioned: {ratio:.3f}")


def training_speed(space, style) -> None:
    size, batch = FLAGS.train_size, FLAGS.batch_size
    images = np.random.default_rng(0).random((batch, size, size, 3)).astype(np.float32)
    data = {"inputs": {"image": images}}
    conditioned = StyleTransferModel(
        build_network(space, width_multiplier=FLAGS.width_multiplier),
        StyleTransferLoss([style], vgg_weights="none"), seed=0,
    )
    plain = FixedWeightModel(
        build_network(space, width_multiplier=FLAGS.width_multiplier, conditioned=False),
        StyleTransferLoss([style], vgg_weights="none"), space.default(),
    )
    runs = {}
    for name, model in (("conditioned", conditioned), ("unconditioned", plain)):
        model.compile(keras.optimizers.Adam(1e-3))
        model.train_on_batch(data)  # trace + build
        model.train_on_batch(data)
        runs[name] = lambda m=model: [m.train_on_batch(data) for _ in range(FLAGS.train_steps)]
    times = _alternate(runs, FLAGS.repeats)
    per_step = lambda s: s / FLAGS.train_steps
    _report(
        f"Training: {size}x{size}, batch {batch}, width {FLAGS.width_multiplier:g} "
        f"(VGG-16 losses, Adam)", {k: [per_step(s) for s in v] for k, v in times.items()},
        lambda s: batch / s, "images/s",
    )


def latency(space) -> None:
    conditioned = build_network(space, width_multiplier=FLAGS.width_multiplier)
    plain = build_network(space, width_multiplier=FLAGS.width_multiplier, conditioned=False)
    spec = tf.TensorSpec([1, None, None, 3], tf.float32)
    run_conditioned = tf.function(
        lambda x, lam: conditioned((x, lam)),
        input_signature=[spec, tf.TensorSpec([1, space.size], tf.float32)],
    )
    run_plain = tf.function(lambda x: plain(x), input_signature=[spec])
    lam = tf.constant(space.default(1))
    for side in (int(s) for s in FLAGS.latency_sizes):
        x = tf.constant(np.random.default_rng(1).random((1, side, side, 3)), tf.float32)
        runs = {
            "conditioned": lambda: run_conditioned(x, lam).numpy(),
            "unconditioned": lambda: run_plain(x).numpy(),
        }
        for run in runs.values():
            run()  # trace / warm up
        times = _alternate(runs, FLAGS.repeats)
        _report(f"Stylization latency: {side}x{side}, batch 1, width "
                f"{FLAGS.width_multiplier:g}", times, lambda s: 1000 * s, "ms")


def main(argv):
    del argv
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    keras.utils.set_random_seed(0)
    space = style_transfer_loss_space()
    style = (np.random.default_rng(2).random((256, 256, 3)) * 255).astype(np.uint8)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{len(tf.config.list_physical_devices('CPU'))} CPU device(s), "
          f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    latency(space)
    training_speed(space, style)


if __name__ == "__main__":
    app.run(main)
