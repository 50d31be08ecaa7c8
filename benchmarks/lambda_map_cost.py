r"""Cost of training with lambda maps, measured as ratios in one run.

  python -m benchmarks.lambda_map_cost [--patch_size 256 --batch_size 8 --repeats 5]

One compression training step (the shipped architecture: mean-scale hyperprior, N/M 64/128,
mixed quantization) three ways, on the same weights and batch:

* ``per_example``: one lambda per image (``lambda_map_fraction=0``);
* ``map``: every image conditioned on a lambda map of 16-pixel cells
  (``lambda_map_fraction=1``), as the layers compute it: each FiLM's scale and shift
  projected on the map's grid, then resized to the layer (``layers._inputs.modulation_at``);
* ``map_resize_first``: the same function computed by its definition, the embedding map
  resized to every layer's resolution and projected per pixel (how the layers computed it
  before the projection moved to the coarser grid).

Timings cycle through the three (A B C A B C ...) so machine noise hits all alike; the
ratios of the minima over the rounds are printed, with the ratios of the medians beside them.
"""

import statistics
import time

import keras
import numpy as np
from absl import app, flags

from yoto_tf.compression import training
from yoto_tf.layers import _inputs, film

flags.DEFINE_integer("patch_size", 256, "Training crop side (a multiple of 64).")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed rounds per variant (each round: --steps steps).")
flags.DEFINE_integer("steps", 3, "Training steps per timed round.")
FLAGS = flags.FLAGS


def _resize_first(cond, x, project):
    """The definition of a map's modulation: resize the map to x, then project per pixel."""
    if len(cond.shape) == 2:
        return project(cond)[:, None, None, :]
    return project(_inputs.conditioning_at(cond, x))


def _training_step(lambda_map_fraction, batch):
    """A compiled model's train_on_batch, as a no-argument callable (first call traces)."""
    keras.utils.set_random_seed(0)
    model = training.build_model(num_filters=64, num_latent=128, seed=0, mean_scale=True,
                                 mixed_quantization=True, lambda_map_fraction=lambda_map_fraction)
    model.compile(keras.optimizers.Adam(1e-4, global_clipnorm=1.0))
    return lambda: model.train_on_batch(batch)


def _timed(step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    batch = rng.uniform(size=(FLAGS.batch_size, FLAGS.patch_size, FLAGS.patch_size, 3)).astype("float32")
    variants = {"per_example": (0.0, film.modulation_at), "map": (1.0, film.modulation_at),
                "map_resize_first": (1.0, _resize_first)}
    steps, times = {}, {name: [] for name in variants}
    for name, (fraction, modulation) in variants.items():
        film.modulation_at = modulation  # read when the step is traced, on its first call
        steps[name] = _training_step(fraction, batch)
        steps[name]()
    film.modulation_at = variants["map"][1]
    for _ in range(FLAGS.repeats):
        for name, step in steps.items():
            times[name].append(_timed(step, FLAGS.steps))
    base_min, base_median = min(times["per_example"]), statistics.median(times["per_example"])
    print(f"compression training step, N/M 64/128, {FLAGS.batch_size} x {FLAGS.patch_size}^2, "
          f"{FLAGS.repeats} rounds of {FLAGS.steps} steps")
    print(f"{'variant':<18} {'min s/step':>10} {'ratio (min)':>12} {'ratio (median)':>15}")
    for name, values in times.items():
        print(f"{name:<18} {min(values):>10.3f} {min(values) / base_min:>12.2f} "
              f"{statistics.median(values) / base_median:>15.2f}")


if __name__ == "__main__":
    app.run(main)
