r"""Stylizes an image with an adjustable style-transfer model; every loss weight is a knob.

  python -m trainers.stylize --list_models                      # the shipped pretrained models
  python -m trainers.stylize --model painters4 --style great_wave --image photo.jpg --out styled.jpg
  python -m trainers.stylize --model runs/style_transfer/model.keras \
      --image photo.jpg --out styled.png --strength 3
  python -m trainers.stylize --model M --image IN --out OUT \
      --content_weight 2 --style_weights=0.05,0.1,0.1,0.5,1 --tv_weight 0.02
  python -m trainers.stylize --model M --image IN --out grid.png --sweep strength

Knobs (unset ones keep the model's defaults; ranges come from the model's LossSpace and are
checked): ``--content_weight``, ``--style_weights`` (one per style layer, shallow to deep:
fine texture to large patterns), ``--tv_weight``, and ``--strength``, a factor applied to all
style weights together. ``--style`` picks the style of a multi-style model, by index or by
name (``--list_models`` prints a shipped model's style names). ``--model`` takes the name of a
shipped model or the path of a ``.keras`` file.
``--strength_map MAP.png`` varies the strength across the image (black = low, white = high;
``--strength_map_range LO,HI``, default the model's whole range) with the same model:
uniform stylizations at up to 5 log-spaced strengths are blended per pixel, so every region
matches the uniform output of its strength and sharp edges stay sharp
(yoto_tf/style_transfer/lambda_maps.py). ``--one_pass`` applies the map in one pass of the
network instead, for models trained with lambda maps.
``--sweep NAME`` writes a labelled grid along one knob (``strength`` or a coefficient name)
instead of one image; the grid's images are downscaled to ``--sweep_size``.

Any image size: up to ``--max_pixels`` (default 2**21, about 2 MP, ~1.7 GB at width 1) in one
pass, larger images in overlapping tiles (bounded memory; see
yoto_tf/style_transfer/inference.py).
"""

from __future__ import annotations

import time

from absl import flags, logging

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.images import load_image, save_image
from yoto_tf.layers import find_loss_space
from yoto_tf.model_files import read_model_info
from yoto_tf.style_transfer import grid, lambda_maps
from yoto_tf.style_transfer.inference import num_styles, stylize, sweep
from yoto_tf.style_transfer.loss_space import lambda_from_values, strength_range
from yoto_tf.style_transfer.transformer import lambda_map_network

flags.DEFINE_string(
    "model", None,
    "A shipped model's name (see --list_models) or a trained model file (.keras), e.g. "
    "runs/style_transfer/model.keras.",
)
flags.DEFINE_bool("list_models", False, "Print the shipped models (name, then styles) and exit.")
flags.DEFINE_string("image", None, "Content image to stylize.")
flags.DEFINE_string("out", None, "Output image (.png, .jpg, ...).")
flags.DEFINE_float("content_weight", None, "Content weight (default: the model's default).")
flags.DEFINE_list("style_weights", None, "Comma-separated style weights, one per style layer.")
flags.DEFINE_float("tv_weight", None, "Total-variation weight (smoothness).")
flags.DEFINE_float("strength", None, "Multiplies every style weight (1 = unchanged).")
flags.DEFINE_string("style", "0", "Style of a multi-style model: its index or its name.")
flags.DEFINE_string(
    "strength_map", None,
    "Grayscale image of where the style is strong: black = the low end of "
    "--strength_map_range, white = the high end, log-interpolated; resized to the photo.",
)
flags.DEFINE_list(
    "strength_map_range", None,
    "LO,HI strengths of black and white in --strength_map (default: the model's range).",
)
flags.DEFINE_bool(
    "one_pass", False,
    "Apply --strength_map in ONE pass of the model's lambda-map twin (every conditional "
    "instance norm modulated per pixel) instead of blending uniform passes: one pass for any "
    "map, smooth gradients included; needs a model trained with --lambda_map_fraction "
    "(painters4_maps), others wash out the strong side.",
)
flags.DEFINE_string("sweep", None, "Write a grid along this knob: 'strength' or a coefficient name.")
flags.DEFINE_integer("sweep_num", 5, "Number of values in a --sweep.", lower_bound=2)
flags.DEFINE_integer("sweep_size", 384, "Longer side of the images of a --sweep grid.", lower_bound=8)
flags.DEFINE_integer("max_pixels", None, "Tile images with more pixels (default 2**21).", lower_bound=1)
flags.DEFINE_integer("tile_size", None, "Tile side in pixels (default 1024).", lower_bound=8)
flags.DEFINE_integer("overlap", None, "Tile overlap in pixels (default 128).", lower_bound=0)
FLAGS = flags.FLAGS


def list_models() -> str:
    """One line per shipped style model: its name, then its styles (index=name)."""
    lines = []
    for model in pretrained.list_models(task="style_transfer"):
        styles = " ".join(f"{i}={s.name}" for i, s in enumerate(model.styles))
        lines.append(f"{model.name}\t{styles}\t{model.description}")
    return "\n".join(lines)


def _style_weights(values):
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"--style_weights must be numbers, got {','.join(values)!r}.") from None


def _tiling_kwargs() -> dict:
    names = {"max_pixels": FLAGS.max_pixels, "tile_size": FLAGS.tile_size, "overlap": FLAGS.overlap}
    return {k: v for k, v in names.items() if v is not None}


def describe_training(info: dict) -> None:
    """Logs what the model was trained with; warns when its loss network had random weights."""
    if not info:
        logging.info("The model file records no training info (saved by an older yoto_tf).")
        return
    weights = info.get("vgg_weights", "unknown")
    logging.info("Model trained with %s (%s weights) on styles %s.", info.get("vgg", "?"),
                 weights, ", ".join(info.get("style_images", [])) or "?")
    if weights == "random":
        logging.warning("This model was trained with RANDOM VGG features: expect coloured blobs "
                        "rather than paintings (retrain with --vgg_weights=imagenet8bit).")


def _strength_map(space, base, size: tuple[int, int]):
    """The --strength_map image as strengths [H, W] at the photo's size (checked)."""
    low, high = strength_range(space, base)
    if FLAGS.strength_map_range:
        low, high = cli.parse_range("--strength_map_range", FLAGS.strength_map_range, allow_equal=True)
        lambda_maps.check_strength_range(space, low, high, base)
    gray = load_image(FLAGS.strength_map).mean(axis=-1)
    if gray.shape != size:
        logging.info("Strength map %s is %dx%d; resized to the photo's %dx%d.",
                     FLAGS.strength_map, gray.shape[1], gray.shape[0], size[1], size[0])
        gray = grid.resize_gray(gray, size)
    return lambda_maps.strengths_from_gray(gray / 255.0, low, high)


def run() -> str:
    """Does the work of ``main``; returns a one-line summary. Raises ValueError on bad input."""
    missing = [f"--{name}" for name in ("model", "image", "out") if not getattr(FLAGS, name)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (or --list_models).")
    path = pretrained.resolve_model_path(FLAGS.model)
    network = pretrained.load_network(path)
    describe_training(read_model_info(path))
    style_index = pretrained.resolve_style(
        FLAGS.style, pretrained.style_names(FLAGS.model),
        num_styles(network),
    )
    space = find_loss_space(network)
    lam = lambda_from_values(
        space, content_weight=FLAGS.content_weight,
        style_weights=_style_weights(FLAGS.style_weights), tv_weight=FLAGS.tv_weight,
        strength=FLAGS.strength,
    )
    image = load_image(FLAGS.image)
    start = time.perf_counter()
    if FLAGS.strength_map:
        if FLAGS.sweep or FLAGS.strength is not None:
            raise ValueError("--strength_map replaces --strength and --sweep; give only one.")
        strengths = _strength_map(space, lam, image.shape[:2])
        if FLAGS.one_pass:
            result = lambda_maps.stylize_with_map(
                lambda_map_network(network), image, lambda_maps.lambda_map(space, strengths, base=lam),
                style_index=style_index, **_tiling_kwargs())
        else:
            result = lambda_maps.stylize_strength_map(
                network, image, strengths, base=lam, style_index=style_index, **_tiling_kwargs()
            )
    elif FLAGS.one_pass:
        raise ValueError("--one_pass applies a --strength_map; give one.")
    elif FLAGS.sweep:
        small = grid.fit_longer_side(image, FLAGS.sweep_size)
        cells = sweep(network, small, FLAGS.sweep, FLAGS.sweep_num, base=lam,
                      style_index=style_index, **_tiling_kwargs())
        result = grid.labelled_grid([[("input", small)] + cells])
    else:
        result = stylize(network, image, lam, style_index, **_tiling_kwargs())
    seconds = time.perf_counter() - start
    save_image(FLAGS.out, result)
    weights = ", ".join(f"{n}={v:.4g}" for n, v in zip(space.names, lam))
    return (f"Wrote {FLAGS.out} ({result.shape[1]}x{result.shape[0]}) in {seconds:.1f} s; "
            f"loss weights: {weights}.")


def main(argv):
    del argv
    try:
        if FLAGS.list_models:
            print(list_models())
            return
        logging.info("%s", run())
    except ValueError as error:  # bad flag values, unreadable image/model (ImageReadError too)
        cli.fail("stylize", error)


def cli_main() -> None:
    """Entry point of `python -m trainers.stylize` and of the `yoto-stylize` console script."""
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
