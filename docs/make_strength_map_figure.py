"""Makes docs/strength_map_split.jpg: BSDS500 test photos (never trained on) stylized with a
sharp left/right strength map (left 0.1, right 10): the two uniform strengths, the blend of
``stylize --strength_map``, and ONE pass of the lambda-map twin of each model given.

Run from the repository root:
  python docs/make_strength_map_figure.py CONTENT_TEST_DIR painters4 runs/painters4_maps/model.keras
"""

import os
import sys

import numpy as np

from yoto_tf import pretrained
from yoto_tf.images import load_image, save_image
from yoto_tf.layers import find_loss_space
from yoto_tf.style_transfer import grid
from yoto_tf.style_transfer.inference import stylize
from yoto_tf.style_transfer.lambda_maps import lambda_map, stylize_strength_map, stylize_with_map
from yoto_tf.style_transfer.loss_space import with_strength
from yoto_tf.style_transfer.transformer import lambda_map_network

PHOTOS = (("100039.jpg", 0), ("103006.jpg", 1))  # (photo, style index)
LOW, HIGH, SIZE = 0.1, 10.0, 200


def main(photo_dir, *models):
    networks = [(name, pretrained.load_network(name)) for name in models]
    space = find_loss_space(networks[0][1])
    rows, labels = [], []
    for photo_name, style in PHOTOS:
        photo = grid.fit_longer_side(load_image(os.path.join(photo_dir, photo_name)), SIZE)
        height, width = photo.shape[:2]
        strengths = (np.where(np.arange(width)[None, :] < width // 2, LOW, HIGH) * np.ones((height, 1)))
        base = networks[0][1]
        row = [(f"uniform {LOW:g}", stylize(base, photo, with_strength(space, LOW), style)),
               (f"uniform {HIGH:g}", stylize(base, photo, with_strength(space, HIGH), style)),
               ("blend (--strength_map)", stylize_strength_map(base, photo, strengths, style_index=style))]
        for name, network in networks:
            lam = lambda_map(space, strengths.astype(np.float32))
            label = os.path.basename(os.path.dirname(name)) if name.endswith(".keras") else name
            row.append((f"one pass: {label}", stylize_with_map(lambda_map_network(network), photo, lam, style)))
        rows.append(row)
        labels.append(f"BSDS500 test {photo_name}, style {style}: left half strength {LOW:g}, right half {HIGH:g}")
    save_image("docs/strength_map_split.jpg", grid.labelled_grid(rows, labels))
    print("wrote docs/strength_map_split.jpg")


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
