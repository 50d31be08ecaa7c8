r"""What encode-time latent refinement buys per step, measured in one run.

  python -m benchmarks.refinement_steps --images ../shared/data/kodak [--model mean_scale_64_30k
      --steps 0,25,50,100,200 --lambdas 0.0018,0.006,0.025,0.18 --max_images 3]

For every image and lambda, the shipped (or given) compression model writes a real file with
each ``--steps`` setting of ``compress_image(..., refine_steps=N)`` (0 = the plain encoder),
in turn (0, 25, 50, ... then the next lambda), so machine noise hits all settings alike.
Printed per setting: the BD-rate (PSNR) of the mean curve over the images against the
plain encoder's, the mean PSNR change and bit change at equal lambda, and the encode time as
a ratio of the plain encoder's (with the seconds per image). The decoder is the same for
every file.
"""

import time

import numpy as np
from absl import app, flags

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.compression import compress_image, decompress_image, load_compression_model
from yoto_tf.compression.metrics import bd_rate, psnr
from yoto_tf.data import eval_images

flags.DEFINE_string("images", None, "A directory of test images (e.g. Kodak).")
flags.DEFINE_string("model", "mean_scale_64_30k", "A shipped compression model's name or a model.keras.")
flags.DEFINE_list("steps", ["0", "25", "50", "100", "200"], "Refinement step counts (0 first: the reference).")
flags.DEFINE_list("lambdas", ["0.0018", "0.006", "0.025", "0.18"], "Lambdas of each curve (at least 4 for BD-rate).")
flags.DEFINE_integer("max_images", 3, "Use the first N images (by name).", lower_bound=1)
flags.mark_flag_as_required("images")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        steps = [int(s) for s in FLAGS.steps]
        lambdas = [float(v) for v in FLAGS.lambdas]
        if steps[0] != 0 or len(set(steps)) != len(steps) or min(steps) < 0:
            raise ValueError(f"--steps must start with 0 and be distinct counts >= 0, got {FLAGS.steps}")
        if len(lambdas) < 4:
            raise ValueError("--lambdas needs at least 4 values for a BD-rate")
        codec = load_compression_model(pretrained.resolve_model_path(FLAGS.model))
        images = eval_images(FLAGS.images, max_images=FLAGS.max_images)
    except (OSError, ValueError) as error:
        cli.fail("refinement_steps", error)
    for _, image in images[:1]:  # trace every graph once, untimed
        for n in steps:
            compress_image(codec, image, lambdas[0], refine_steps=min(n, 1))
    # results[n]: [image][lambda] -> (bpp, psnr, encode seconds)
    results = {n: [] for n in steps}
    for name, image in images:
        pixels = image.shape[0] * image.shape[1]
        rows = {n: [] for n in steps}
        for lam in lambdas:
            for n in steps:
                start = time.perf_counter()
                data = compress_image(codec, image, lam, refine_steps=n)
                seconds = time.perf_counter() - start
                rows[n].append((8 * len(data) / pixels, psnr(image, decompress_image(codec, data)), seconds))
        for n in steps:
            results[n].append(rows[n])
        print(f"{name}: done", flush=True)
    plain = np.mean(np.array(results[0]), axis=0)  # [lambda, 3], means over images
    print(f"{FLAGS.model} on {len(images)} images of "
          f"{FLAGS.images}, lambdas {', '.join(FLAGS.lambdas)}")
    print(f"{'steps':>6} {'BD-rate':>9} {'dPSNR dB':>9} {'dbits %':>8} {'encode x':>9} {'s/image':>8}")
    for n in steps:
        mean = np.mean(np.array(results[n]), axis=0)
        rate = bd_rate(plain[:, 0], plain[:, 1], mean[:, 0], mean[:, 1])
        print(f"{n:6d} {rate:+8.2f}% {np.mean(mean[:, 1] - plain[:, 1]):+9.3f} "
              f"{100 * np.mean(mean[:, 0] / plain[:, 0] - 1):+8.2f} "
              f"{np.mean(mean[:, 2]) / np.mean(plain[:, 2]):9.1f} {np.mean(mean[:, 2]):8.2f}")


if __name__ == "__main__":
    app.run(main)
