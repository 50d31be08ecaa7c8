"""Makes docs/quality_map_roi.jpg: a crop of kodim04 at the corner of a centred region of
interest, coded with a quality map (highest lambda inside, lowest outside) by a shipped model,
beside the uniform-lambda file of the same size. Run from the repository root:
python docs/make_quality_map_figure.py KODAK_DIR [MODEL_NAME] (default: the compress default)."""

import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from yoto_tf import pretrained
from yoto_tf.compression import compress_image, decompress_image, load_compression_model, rate_control
from yoto_tf.compression.roi_evaluation import centre_roi, psnr_inside_outside

CROP = 200


def main(kodak_dir, name=None):
    image = np.asarray(Image.open(os.path.join(kodak_dir, "kodim04.png")).convert("RGB"))
    height, width = image.shape[:2]
    mask = centre_roi(height, width)
    rows, cols = np.nonzero(mask)
    top, left = rows.min() - CROP // 2, cols.min() - CROP // 2  # the region's top-left corner in the middle
    panels = [("original (region: lower right)", image)]
    shipped = pretrained.get_model(name) if name else pretrained.default_model("compression")
    codec = load_compression_model(pretrained.verify(shipped))
    low, high = codec.lambda_range
    data = compress_image(codec, image, lambda_map=np.where(mask, high, low))
    decoded = decompress_image(codec, data)
    inside, outside = psnr_inside_outside(image, decoded, mask)
    panels.append((f"quality map: {inside:.1f} / {outside:.1f} dB", decoded))
    uniform = rate_control.compress_to_target(codec, image, len(data))
    flat = decompress_image(codec, uniform.data)
    inside, outside = psnr_inside_outside(image, flat, mask)
    panels.append((f"same size, uniform: {inside:.1f} / {outside:.1f} dB", flat))
    figure = Image.new("RGB", (len(panels) * (CROP + 6), CROP + 22), "white")
    draw = ImageDraw.Draw(figure)
    for i, (label, picture) in enumerate(panels):
        figure.paste(Image.fromarray(picture[top:top + CROP, left:left + CROP]), (i * (CROP + 6), 22))
        draw.text((i * (CROP + 6) + 2, 4), label, fill="black")
    figure.save("docs/quality_map_roi.jpg", quality=88)
    print(f"wrote docs/quality_map_roi.jpg ({shipped.name}; PSNR inside / outside the region, whole image)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
