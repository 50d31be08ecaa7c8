r"""Every quantization variant of one style network: file size, latency, parity error.

  python benchmarks/tflite_variants.py --model runs/style_transfer/model.keras \
      [--image_size 384 --threads 2 --runs 10 --out /tmp/variants]

Converts the model with ``mobile.convert`` (parity gate at >= 5 lambda settings on two
built-in images; a variant past its tolerance is reported, not written), then times each
written .tflite with ``mobile.benchmark`` in one run and prints one row per variant.
Without ``--model`` a freshly built full-width transformer is used (random weights: its
quantization errors are NOT representative of a trained model; latencies are).
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mobile import benchmark, model_io, quantization, style_transfer  # noqa: E402
from yoto_tf import pretrained  # noqa: E402
from yoto_tf.style_transfer.loss_space import style_transfer_loss_space  # noqa: E402
from yoto_tf.style_transfer.transformer import build_network  # noqa: E402

flags.DEFINE_string("model", None, "A shipped model's name or a trained style network (.keras).")
flags.DEFINE_integer("image_size", 384, "Input height and width.")
flags.DEFINE_list("variants", list(quantization.VARIANTS), "Variants to compare.")
flags.DEFINE_integer("threads", 2, "Interpreter threads.")
flags.DEFINE_integer("runs", 10, "Timed runs per variant.")
flags.DEFINE_string("out", None, "Keep the .tflite files here (default: a temp dir).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.model:
        path = pretrained.resolve_model_path(FLAGS.model)
        model = model_io.load_model(path)
        name = os.path.splitext(os.path.basename(path))[0]
    else:
        model = build_network(style_transfer_loss_space())
        name = "random_transformer"
    out = FLAGS.out or tempfile.mkdtemp(prefix="tflite_variants_")
    results = style_transfer.convert_model(
        model, out, name=name, variants=FLAGS.variants, image_size=FLAGS.image_size,
        require_parity=False,
    )
    print(f"\n{name} at {FLAGS.image_size}x{FLAGS.image_size}, {FLAGS.threads} thread(s), "
          f"{FLAGS.runs} runs; errors: max / mean abs vs Keras over "
          f"{results[0].parity.num_cases} cases (output in [0, 1])")
    print(f"{'variant':>12} | {'KiB':>8} | {'median ms':>9} | {'min ms':>7} | "
          f"{'max err':>8} | {'mean err':>8} | {'tolerance':>9} | GPU ops covered")
    for r in results:
        if r.path:
            timing = benchmark.benchmark(r.path, FLAGS.threads, FLAGS.runs, 2, FLAGS.image_size)
            median, fastest = f"{timing.median_ms:9.1f}", f"{timing.min_ms:7.1f}"
        else:
            median, fastest = f"{'(failed)':>9}", f"{'':>7}"
        print(f"{r.variant:>12} | {r.size_bytes / 1024:8.1f} | {median} | {fastest} | "
              f"{r.parity.max_abs_error:8.2e} | {r.parity.mean_abs_error:8.2e} | "
              f"{r.parity.tolerance:9g} | {'yes' if r.gpu.covered else 'no'}")


if __name__ == "__main__":
    app.run(main)
