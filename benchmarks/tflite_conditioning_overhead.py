r"""TFLite latency of the adjustable style network vs the same network without lambda.

  python benchmarks/tflite_conditioning_overhead.py [--image_size 384 --threads 2 --runs 10]
      [--model runs/style_transfer/model.keras] [--variant none]

Three .tflite files of one style transformer (yoto_tf.style_transfer), timed with the
LiteRT interpreter in alternation (A B C A B C ...) so machine noise hits all alike:

* A ``adjustable``: ``loss_weights`` is a live input (conditioning MLP + one Dense head
  per CIN run at every call);
* B ``lambda_folded``: the same weights with ``loss_weights`` baked in as a constant, so
  the converter folds the conditioning into per-channel constants: the same network
  without lambda conditioning (checked: same output as A at that lambda);
* C ``unconditioned``: ``build_network(conditioned=False)`` at the same width (plain
  instance normalization, no conditioning network at all).

Prints the median / min latency of each and the ratios A/B and A/C (target <= 1.05x).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mobile import benchmark, export, model_io, parity, quantization  # noqa: E402
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space  # noqa: E402
from yoto_tf.style_transfer.transformer import build_network  # noqa: E402

flags.DEFINE_string("model", None, "A trained style network (.keras); default: a freshly "
                    "built full-width transformer (latency does not depend on the weights).")
flags.DEFINE_float("width_multiplier", 1.0, "Width of the freshly built transformer.")
flags.DEFINE_integer("image_size", 384, "Input height and width.")
flags.DEFINE_integer("threads", 2, "Interpreter threads.")
flags.DEFINE_integer("runs", 10, "Timed rounds (one call per network per round).")
flags.DEFINE_enum("variant", "none", ["none", "float16", "dynamic_int8"],
                  "Quantization variant of all three files.")
FLAGS = flags.FLAGS


def _tflite(model, specs, fixed, variant, directory):
    export.export_saved_model(model, directory, specs, "stylize", "stylized", fixed)
    return quantization.convert(directory, "stylize", variant)


def main(argv):
    del argv
    if FLAGS.model:
        adjustable = model_io.load_model(FLAGS.model)
        space = model_io.read_inputs(adjustable).loss_space
        width = None
    else:
        space = style_transfer_loss_space()
        adjustable = build_network(space, width_multiplier=FLAGS.width_multiplier)
        width = FLAGS.width_multiplier
    inputs = model_io.read_inputs(adjustable)
    if inputs.num_styles:
        raise app.UsageError("Use a single-style model for this benchmark.")
    unconditioned = build_network(
        space, width_multiplier=width or _width_of(adjustable), conditioned=False
    )
    specs = export.input_specs(inputs, FLAGS.image_size)
    lam = space.default()[None]
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "adjustable": _tflite(adjustable, specs, None, FLAGS.variant, f"{tmp}/a"),
            "lambda_folded": _tflite(
                adjustable, specs, {"loss_weights": lam}, FLAGS.variant, f"{tmp}/b"),
            "unconditioned": _tflite(
                unconditioned, {"image": specs["image"]}, None, FLAGS.variant, f"{tmp}/c"),
        }
    runners = {name: parity.signature_runner(t, "stylize", FLAGS.threads)
               for name, t in files.items()}
    image = np.random.default_rng(0).random(specs["image"].shape, dtype=np.float32)
    feeds = {
        "adjustable": {"image": image, "loss_weights": lam},
        "lambda_folded": {"image": image},
        "unconditioned": {"image": image},
    }
    folded_gap = np.abs(runners["adjustable"](**feeds["adjustable"])["stylized"]
                        - runners["lambda_folded"](**feeds["lambda_folded"])["stylized"]).max()
    times = {name: [] for name in files}
    for name in files:  # warm-up
        benchmark.time_runner(runners[name], feeds[name], runs=0, warmup=2)
    for _ in range(FLAGS.runs):
        for name in files:
            times[name].extend(benchmark.time_runner(runners[name], feeds[name], 1, 0))
    print(f"{FLAGS.image_size}x{FLAGS.image_size}, {FLAGS.threads} thread(s), variant "
          f"{FLAGS.variant}, {FLAGS.runs} alternating runs; lambda-folded output differs "
          f"from the adjustable one by {folded_gap:.1e} (max abs) at the default lambda")
    for name in files:
        print(f"  {name:>14}: median {statistics.median(times[name]):7.1f} ms, min "
              f"{min(times[name]):7.1f} ms, {len(files[name]) / 1024:8.1f} KiB")
    adjustable_ms = statistics.median(times["adjustable"])
    for name in ("lambda_folded", "unconditioned"):
        print(f"  adjustable / {name}: {adjustable_ms / statistics.median(times[name]):.3f}x"
              " (target <= 1.05x)")


def _width_of(model) -> float:
    """Width multiplier of a loaded transformer, from its first conv (32 at width 1)."""
    first = model.get_layer("conv1")
    return first.filters / 32.0


if __name__ == "__main__":
    app.run(main)
