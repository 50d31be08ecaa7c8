r"""Measures a style model along its strength knob on held-out photos.

  python -m trainers.evaluate_style --model runs/style_transfer/model.keras \
      --images='folder:photos/test/*.jpg' --max_images 10

For every strength: the edge correlation between photo and output (Sobel magnitudes,
Pearson: how much of the photo's structure survives) and the raw content and style losses,
all judged by ONE loss network (default: the ImageNet VGG19, 8-bit offline copy), so models
trained with different VGG weights are compared on the same scale. Prints a Markdown table;
``--out_json`` writes it too.

The style images default to those recorded in ``train_config.json`` beside the model.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
from absl import app, flags

from trainers import cli
from yoto_tf import data, image_sources

from yoto_tf.files import write_json_atomically
from yoto_tf.images import load_image
from yoto_tf.model_files import read_model_info
from yoto_tf.style_transfer import grid
from yoto_tf.style_transfer.evaluation import evaluate_strengths, strength_table
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer.vgg import VGGWeightsUnavailableError

flags.DEFINE_string("model", None, "Trained style model (.keras).")
flags.DEFINE_string("images", "builtin", f"Photos to stylize: {image_sources.ACCEPTED_SPECS}.")
flags.DEFINE_integer("max_images", 10, "Use at most this many photos (sorted by name).", lower_bound=1)
flags.DEFINE_integer("max_side", 256, "Photos are downscaled to this longer side.", lower_bound=16)
flags.DEFINE_list("style_images", None, "Style images (default: from train_config.json beside the model).")
flags.DEFINE_integer("style_index", 0, "Style of a multi-style model.", lower_bound=0)
flags.DEFINE_list("strengths", ["0.1", "0.316", "1", "3.16", "10"], "Strength factors.")
flags.DEFINE_string("vgg_weights", "imagenet8bit", "Weights of the judging VGG19 (see trainers.style_transfer).")
flags.DEFINE_string("out_json", None, "Also write the rows as JSON here.")
flags.mark_flags_as_required(["model"])
FLAGS = flags.FLAGS


def _style_paths() -> list[str]:
    if FLAGS.style_images:
        return FLAGS.style_images
    settings = os.path.join(os.path.dirname(os.path.abspath(FLAGS.model)), "train_config.json")
    if not os.path.isfile(settings):
        raise ValueError(f"--style_images is required: {settings} does not exist.")
    with open(settings) as f:
        return json.load(f)["task"]["style_images"]


def run() -> str:
    try:
        network = keras.saving.load_model(FLAGS.model)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot load model {FLAGS.model!r}: {error}") from None
    info = read_model_info(FLAGS.model)
    strengths = [float(s) for s in FLAGS.strengths]
    paths = _style_paths()
    styles = [load_image(p) for p in paths]
    if FLAGS.style_index >= len(styles):
        raise ValueError(f"--style_index {FLAGS.style_index}: only {len(styles)} style image(s).")
    losses = StyleTransferLoss(styles, vgg="vgg19", vgg_weights=FLAGS.vgg_weights)
    photos = [grid.fit_longer_side(image, FLAGS.max_side) for _, image in
              data.eval_images(image_sources.parse_source(FLAGS.images), max_images=FLAGS.max_images)]
    rows = evaluate_strengths(network, losses, photos, strengths, FLAGS.style_index)
    table = strength_table(rows)
    if FLAGS.out_json:
        write_json_atomically(FLAGS.out_json, {
            "model": FLAGS.model, "trained_with": info, "images": FLAGS.images,
            "num_images": len(photos), "style_image": paths[FLAGS.style_index],
            "judge_vgg_weights": FLAGS.vgg_weights, "rows": [dataclasses.asdict(r) for r in rows]})
    trained = info.get("vgg_weights", "unknown (no training info in the file)")
    return (f"{FLAGS.model} (trained with VGG weights: {trained}), {len(photos)} photos of "
            f"{FLAGS.images}, style {paths[FLAGS.style_index]}:\n{table}")


def main(argv):
    del argv
    try:
        print(run())
    except (ValueError, VGGWeightsUnavailableError) as error:
        cli.fail("evaluate_style", error)


if __name__ == "__main__":
    app.run(main)
