r"""Quality-map evidence: PSNR inside / outside a region of interest, map vs uniform lambda
at the same file size (yoto_tf/compression/roi_evaluation.py).

    python -m trainers.evaluate_quality_map --model runs/compression --images kodak/ \
        --out_dir runs/eval_quality_map [--roi centre | --roi mask.png] [--roi_fraction 0.5] \
        [--low 0.0018 --high 0.18] [--max_images 24]

Per image: compress with lambda ``--high`` inside the region and ``--low`` outside, find
the uniform lambda whose file has the same bytes (rate control), decode both, PSNR inside
and outside. Writes ``roi_evidence.csv`` (one row per image) and ``roi_summary.json`` (means;
how many images gained inside) to ``--out_dir``.
"""

from __future__ import annotations

import os

from absl import app, flags

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.compression import load_compression_model, roi_evaluation
from yoto_tf.data import eval_images
from yoto_tf.files import write_csv_atomically, write_json_atomically
from yoto_tf.images import load_image

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "A trained model.keras, its run directory, or a shipped "
                    "model's name (default: the shipped compression model).")
flags.DEFINE_string("images", None, "Images: a directory, or a data source spec (folder:GLOB, builtin).")
flags.DEFINE_string("out_dir", None, "Where to write roi_evidence.csv and roi_summary.json.")
flags.DEFINE_string("roi", "centre", "The region of interest: 'centre' (a centred rectangle, see "
                    "--roi_fraction) or a mask image (white = inside; resized to each image).")
flags.DEFINE_float("roi_fraction", 0.5, "Side of the centred region as a fraction of the image's.")
flags.DEFINE_float("low", None, "Lambda outside the region (default: the model's lowest).")
flags.DEFINE_float("high", None, "Lambda inside the region (default: the model's highest).")
flags.DEFINE_integer("max_images", None, "Only the first N images (by name).", lower_bound=1)


def run() -> dict:
    """Does the work of ``main``; returns the summary. Raises ValueError on bad input."""
    if not FLAGS.images or not FLAGS.out_dir:
        raise ValueError("--images and --out_dir are required")
    if FLAGS.model is None:
        path = pretrained.verify(pretrained.default_model("compression"))
    else:
        path = pretrained.resolve_model_path(FLAGS.model)
    codec = load_compression_model(path)
    images = eval_images(FLAGS.images, max_images=FLAGS.max_images)
    if not images:
        raise ValueError(f"--images {FLAGS.images}: no readable images")
    if FLAGS.roi == "centre":
        roi = lambda h, w: roi_evaluation.centre_roi(h, w, FLAGS.roi_fraction)  # noqa: E731
    else:
        mask = load_image(FLAGS.roi).mean(axis=-1) >= 128
        roi = lambda h, w: mask  # noqa: E731  (resized per image by roi_evidence)
    results = roi_evaluation.evaluate_roi(codec, images, roi, FLAGS.low, FLAGS.high)
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    write_csv_atomically(os.path.join(FLAGS.out_dir, "roi_evidence.csv"), [r.row() for r in results],
                         roi_evaluation.FIELDS)
    summary = {"model": path, "images": FLAGS.images, "roi": FLAGS.roi,
               "roi_fraction": FLAGS.roi_fraction, **roi_evaluation.summary(results)}
    write_json_atomically(os.path.join(FLAGS.out_dir, "roi_summary.json"), summary)
    return summary


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        summary = run()
    except (OSError, ValueError) as error:
        cli.fail("evaluate_quality_map", error)
    print(f"{summary['num_images']} images, map files {summary['map_bpp']:.3f} bpp: inside the region "
          f"{summary['map_psnr_inside']:.2f} dB with the map vs {summary['uniform_psnr_inside']:.2f} dB "
          f"uniform at the same size ({summary['gain_inside_db']:+.2f} dB, "
          f"{summary['images_gaining_inside']}/{summary['num_images']} images gain); outside "
          f"{summary['map_psnr_outside']:.2f} vs {summary['uniform_psnr_outside']:.2f} dB.")


if __name__ == "__main__":
    app.run(main)
