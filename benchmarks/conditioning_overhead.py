r"""Cost of lambda conditioning, measured as ratios in one run.

  python -m benchmarks.conditioning_overhead [--image_size 256 --batch_size 8 --repeats 7]

Two pairs of otherwise identical conv nets (reflect-padded 3x3 convs 3 -> 32 -> 64/2 -> 64
-> 64, x2 nearest upsample, -> 3, at 256x256, batch 8):

* CIN pair (style-transfer style): every normalization is a ConditionalInstanceNormalization
  fed by one ConditioningNetwork on lambda, vs the same instance-norm arithmetic with fixed
  per-channel gamma/beta.
* FiLM pair (compression / beta-VAE style): conv -> FiLM -> ReLU with one
  ConditioningNetwork, vs conv -> ReLU.

Timings cycle through the four networks (A B C D A B C D ...) so machine noise hits all of
them alike; the ratios of the minima over the rounds (the least disturbed measurement of
each) are printed, with the ratios of the medians beside them.
Targets: <= 1.10x for a training step, <= 1.05x for inference.
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from yoto_tf import (
    Coefficient, ConditionalInstanceNormalization, ConditioningNetwork, FiLM, LossSpace,
    NearestUpsampling2D, ReflectionPadding2D,
)
from yoto_tf.layers import InstanceNormalization

flags.DEFINE_integer("image_size", 256, "Input height and width.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("repeats", 7, "Timed rounds per network (each round: --steps calls).")
flags.DEFINE_integer("steps", 3, "Calls per timed round.")
FLAGS = flags.FLAGS

SPACE = LossSpace([Coefficient("content", 0.1, 10.0)] + [
    Coefficient(f"style_{i}", 1e-2, 1e2) for i in range(5)
])


def build(kind: str) -> keras.Model:
    """kind: "cin", "plain_in", "film" or "plain"."""
    image = keras.Input((None, None, 3), name="image")
    lam = keras.Input((SPACE.size,), name="loss_weights")
    emb = ConditioningNetwork(SPACE, units=128)(lam) if kind in ("cin", "film") else None
    h = image
    for filters, stride in [(32, 1), (64, 2), (64, 1), (64, 1)]:
        h = keras.layers.Conv2D(filters, 3, strides=stride)(ReflectionPadding2D(1)(h))
        if kind == "cin":
            h = ConditionalInstanceNormalization()([h, emb])
        elif kind == "plain_in":
            h = InstanceNormalization()(h)
        elif kind == "film":
            h = FiLM()([h, emb])
        h = keras.layers.ReLU()(h)
    h = NearestUpsampling2D(2)(h)
    out = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(h)
    return keras.Model([image, lam], out, name=kind)


def make_steps(model):
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=False)
    def train_step(image, lam):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model([image, lam], training=True) - image))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function(jit_compile=False)
    def infer(image, lam):
        return model([image, lam], training=False)

    return train_step, infer


def time_alternating(fns, args, repeats, steps):
    """Per-call seconds of every function: {name: (minimum, median)} over the rounds."""
    times = {name: [] for name in fns}
    for fn in fns.values():  # warm up (tracing)
        np.asarray(fn(*args))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                result = fn(*args)
            np.asarray(result)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: (min(values), statistics.median(values)) for name, values in times.items()}


def report(label, timings, conditioned, plain, target):
    (c_min, c_med), (p_min, p_med) = timings[conditioned], timings[plain]
    print(f"{label:<16} {conditioned} {c_min * 1e3:7.1f} ms | {plain} {p_min * 1e3:7.1f} ms | "
          f"ratio {c_min / p_min:.3f}x (medians {c_med / p_med:.3f}x; target <= {target:.2f}x)")


def main(argv):
    del argv
    keras.utils.set_random_seed(0)
    size, batch = FLAGS.image_size, FLAGS.batch_size
    image = tf.random.uniform((batch, size, size, 3))
    lam = tf.constant(SPACE.sample_numpy(batch, rng=0))
    models = {kind: build(kind) for kind in ("cin", "plain_in", "film", "plain")}
    steps = {name: make_steps(model) for name, model in models.items()}
    train = time_alternating({n: s[0] for n, s in steps.items()}, (image, lam),
                             FLAGS.repeats, FLAGS.steps)
    infer = time_alternating({n: s[1] for n, s in steps.items()}, (image, lam),
                             FLAGS.repeats, FLAGS.steps)
    print(f"conv nets {size}x{size}, batch {batch}, {FLAGS.repeats} rounds x {FLAGS.steps} calls "
          "per network; per-call time, minimum over rounds")
    report("CIN train step", train, "cin", "plain_in", 1.10)
    report("CIN inference", infer, "cin", "plain_in", 1.05)
    report("FiLM train step", train, "film", "plain", 1.10)
    report("FiLM inference", infer, "film", "plain", 1.05)


if __name__ == "__main__":
    app.run(main)
