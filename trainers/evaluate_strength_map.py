r"""Lambda-map evidence for style transfer: does ONE pass with a sharp left/right strength map
give each half the look of its own strength, without bleeding across the edge?

  python -m trainers.evaluate_strength_map --model painters4 \
      --images='folder:photos/test/*.jpg' --max_images 10 [--low 0.1 --high 10] [--out_json m.json]

Per photo (longer side ``--max_side``) and style: the one-pass lambda-map twin of the model
(``yoto_tf.style_transfer.lambda_maps.stylize_with_map``) with strength ``--low`` on the left
half and ``--high`` on the right, against the two uniform outputs
(``evaluation.split_map_evidence``): where each half lies between them (0 = the low
strength's output, 1 = the high's), each half's mean error to its own uniform output
relative to the uniform low/high difference, the width of the transition at the edge (pixels
from a quarter to three quarters of the way between the halves) and the seam (error within
16 px of the edge over the error elsewhere; 1 = none). Prints a Markdown table, one row
per style (means over the photos).
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from trainers import cli
from yoto_tf import data, image_sources, pretrained
from yoto_tf.files import write_json_atomically
from yoto_tf.layers import find_loss_space
from yoto_tf.style_transfer import grid, inference
from yoto_tf.style_transfer.evaluation import split_map_evidence
from yoto_tf.style_transfer.lambda_maps import check_strength_range
from yoto_tf.style_transfer.loss_space import strength_range
from yoto_tf.style_transfer.transformer import lambda_map_network

flags.DEFINE_string("model", None, "A style model: a shipped model's name, a model.keras or a run "
                    "directory (default: the shipped style model).")
flags.DEFINE_string("images", "builtin", f"Photos: {image_sources.ACCEPTED_SPECS}.")
flags.DEFINE_integer("max_images", 10, "Use at most this many photos (sorted by name).", lower_bound=1)
flags.DEFINE_integer("max_side", 256, "Photos are downscaled to this longer side.", lower_bound=32)
flags.DEFINE_float("low", None, "Strength of the left half (default: the model's lowest).")
flags.DEFINE_float("high", None, "Strength of the right half (default: the model's highest).")
flags.DEFINE_string("out_json", None, "Also write the per-style means and per-photo rows here.")
FLAGS = flags.FLAGS

COLUMNS = ("left_position", "right_position", "left_relative_error", "right_relative_error",
           "transition_px", "edge_band_ratio")


def run() -> dict:
    """Does the work of ``main``; returns ``{"rows": [...], "styles": {name: means}}``.

    Raises:
      ValueError / OSError: an unreadable model or image source, a strength outside the model's range.
    """
    model = FLAGS.model or pretrained.default_model("style_transfer").name
    path = pretrained.resolve_model_path(model)
    network = pretrained.load_network(path)
    map_network = lambda_map_network(network)
    space = find_loss_space(network)
    allowed = strength_range(space)
    low = allowed[0] if FLAGS.low is None else FLAGS.low
    high = allowed[1] if FLAGS.high is None else FLAGS.high
    check_strength_range(space, low, high)
    photos = data.eval_images(image_sources.parse_source(FLAGS.images), max_images=FLAGS.max_images)
    if not photos:
        raise ValueError(f"--images {FLAGS.images}: no readable images")
    names = _style_names(model, inference.num_styles(network))
    rows = []
    for photo_name, photo in photos:
        small = grid.fit_longer_side(photo, FLAGS.max_side)
        for index, style in enumerate(names):
            result = split_map_evidence(network, map_network, small, low, high, style_index=index)
            rows.append({"photo": photo_name, "style": style, **result.row()})
    styles = {style: {c: float(np.mean([r[c] for r in rows if r["style"] == style])) for c in COLUMNS}
              for style in names}
    return {"model": path, "low": low, "high": high, "num_photos": len(photos), "styles": styles,
            "rows": rows}


def _style_names(model: str, count: int) -> list[str]:
    """The styles' names (shipped manifest or training record), else ``style i``."""
    try:
        names = pretrained.style_names(model)
    except (OSError, ValueError):
        names = []
    return names if len(names) == count else [f"style {i}" for i in range(count)]


def table(result: dict) -> str:
    """The per-style means as a Markdown table."""
    lines = ["| style | left position (0 = low) | right position (1 = high) | left error / uniform diff. "
             "| right error / uniform diff. | transition px | edge band error ratio |",
             "|---|---|---|---|---|---|---|"]
    for style, m in result["styles"].items():
        lines.append(f"| {style} | {m['left_position']:.2f} | {m['right_position']:.2f} | "
                     f"{m['left_relative_error']:.2f} | {m['right_relative_error']:.2f} | {m['transition_px']:.1f} | "
                     f"{m['edge_band_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        result = run()
    except (OSError, ValueError) as error:
        cli.fail("evaluate_strength_map", error)
    print(f"{result['model']}: left strength {result['low']:g}, right {result['high']:g}, "
          f"{result['num_photos']} photos, one pass with a map")
    print(table(result))
    if FLAGS.out_json:
        write_json_atomically(FLAGS.out_json, result)


if __name__ == "__main__":
    app.run(main)
