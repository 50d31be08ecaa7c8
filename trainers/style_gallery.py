r"""A gallery of a style model: photos x styles x strengths in one labelled JPEG.

  python -m trainers.style_gallery --model painters4 \
      --images='folder:photos/test/*.jpg' --num_images 3 --out docs/gallery.jpg

Each row is one photo in one style: the photo, then the stylization at every
``--strengths`` value (1 = the model's defaults). Images are downscaled to ``--size``.
"""

from __future__ import annotations


from absl import app, flags

from trainers import cli
from yoto_tf import data, image_sources, pretrained
from yoto_tf.images import save_image
from yoto_tf.layers import find_loss_space
from yoto_tf.style_transfer import grid
from yoto_tf.style_transfer.inference import num_styles, stylize
from yoto_tf.style_transfer.loss_space import with_strength

flags.DEFINE_string("model", None, "A shipped model's name or a .keras file.")
flags.DEFINE_string("images", "builtin", f"Photos: {image_sources.ACCEPTED_SPECS}.")
flags.DEFINE_integer("num_images", 3, "Number of photos (the first by name).", lower_bound=1)
flags.DEFINE_list("strengths", ["0.3", "1", "3"], "Strength factors, one column each.")
flags.DEFINE_integer("size", 200, "Longer side of every cell.", lower_bound=16)
flags.DEFINE_string("out", None, "Output image (.jpg or .png).")
flags.mark_flags_as_required(["model", "out"])
FLAGS = flags.FLAGS


def gallery_rows(network, photos, names, strengths):
    """Rows of (caption, image) and their labels: every photo in every style."""
    space = find_loss_space(network)
    rows, labels = [], []
    for photo_name, photo in photos:
        for style in range(num_styles(network)):
            cells = [("photo", photo)]
            for strength in strengths:
                lam = with_strength(space, strength)
                cells.append((f"strength {strength:g}", stylize(network, photo, lam, style)))
            rows.append(cells)
            style_name = names[style] if style < len(names) else f"style {style}"
            labels.append(f"{photo_name} - {style_name}")
    return rows, labels


def run() -> str:
    network = pretrained.load_network(FLAGS.model)
    names = pretrained.style_names(FLAGS.model)
    photos = [(name, grid.fit_longer_side(image, FLAGS.size)) for name, image in
              data.eval_images(image_sources.parse_source(FLAGS.images), max_images=FLAGS.num_images)]
    rows, labels = gallery_rows(network, photos, names, [float(s) for s in FLAGS.strengths])
    save_image(FLAGS.out, grid.labelled_grid(rows, labels))
    return f"Wrote {FLAGS.out}: {len(rows)} rows x {len(FLAGS.strengths) + 1} columns."


def main(argv):
    del argv
    try:
        print(run())
    except ValueError as error:
        cli.fail("style_gallery", error)


if __name__ == "__main__":
    app.run(main)
