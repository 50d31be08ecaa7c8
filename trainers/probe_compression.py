r"""Diagnose a compression model: quantization vs the transforms, and the FiLM spread.

  python -m trainers.probe_compression --models runs/a/model.keras,mean_scale_64 \
      --images ../shared/data/kodak --num_images 6 --crop 512 --lambdas 0.0018,0.018,0.18

Prints, per model and lambda, the decoded PSNR, the PSNR of the synthesis on the
UNquantized latents, mean |y|, the estimated bpp and how many latent channels carry bits (see yoto_tf/compression/diagnostics.py),
with --latent_steps N also the synthesis on latents optimized for each crop (the decoder's
ceiling),
then the FiLM layers' mean |s|, |t| at each lambda and their change across the range.
"""

from __future__ import annotations

from absl import app, flags

from trainers import cli
from yoto_tf import pretrained
from yoto_tf.compression import diagnostics, load_compression_model
from yoto_tf.data import eval_images
from yoto_tf.files import write_json_atomically

FLAGS = flags.FLAGS

flags.DEFINE_list("models", [], "Models: model.keras files, run directories or shipped names.")
flags.DEFINE_string("images", None, "Images: a directory or a data source spec (folder:GLOB, builtin).")
flags.DEFINE_integer("num_images", 6, "Use the first N images (by name).", lower_bound=1)
flags.DEFINE_integer("crop", 512, "Central crop side in pixels.", lower_bound=64)
flags.DEFINE_list("lambdas", ["0.0018", "0.018", "0.18"], "Lambdas to probe (within each model's range).")
flags.DEFINE_integer("latent_steps", 0, "Also measure the decoder's ceiling: the synthesis on latents "
                     "optimized for each crop's MSE by this many Adam steps (0 = skip).", lower_bound=0)
flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.models or not FLAGS.images:
        raise app.UsageError("--models and --images are required")
    try:
        lambdas = [float(v) for v in FLAGS.lambdas]
        images = diagnostics.center_crops(eval_images(FLAGS.images, max_images=FLAGS.num_images), FLAGS.crop)
        results = {}
        for name in FLAGS.models:
            codec = load_compression_model(pretrained.resolve_model_path(name))
            rows = diagnostics.transform_probe(codec, images, lambdas, latent_steps=FLAGS.latent_steps)
            spread = diagnostics.film_spread(codec, lambdas)
            results[name] = {"probe": rows, "film": spread}
            print(f"{name} ({len(images)} crops of {FLAGS.crop}px)")
            ceiling = f" {'best y':>7}" if FLAGS.latent_steps else ""
            print(f"  {'lambda':>8} {'PSNR':>6} {'unquant':>7} {'mean|y|':>7} {'est.bpp':>7} {'used y':>6}{ceiling}")
            for row in rows:
                best = f" {row['psnr_optimized_latents']:7.2f}" if FLAGS.latent_steps else ""
                print(f"  {row['lambda']:8.4g} {row['psnr_rounded']:6.2f} {row['psnr_unquantized']:7.2f} "
                      f"{row['mean_abs_y']:7.3f} {row['estimated_bpp']:7.4f} {row['latent_channels_used']:6d}{best}")
            print("  FiLM mean |s| " + " ".join(f"{v:.3f}" for v in spread["mean_abs_scale"])
                  + ", |t| " + " ".join(f"{v:.3f}" for v in spread["mean_abs_shift"])
                  + f"; change across the range |ds| {spread['scale_change']:.3f}, |dt| {spread['shift_change']:.3f}")
    except ValueError as error:
        cli.fail("probe_compression", error)
    if FLAGS.json_out:
        write_json_atomically(FLAGS.json_out, results, indent=1)


if __name__ == "__main__":
    app.run(main)
