"""`python -m benchmarks.yoto_vs_fixed`: the flags and main (see the package docstring)."""

from __future__ import annotations

from benchmarks import yoto_vs_fixed as _package
from benchmarks.yoto_vs_fixed.adapters import ADAPTERS, HarnessSettings, make_adapter
from benchmarks.yoto_vs_fixed.harness import check_lambdas, check_options, parse_seeds, run_comparison

__doc__ = _package.__doc__  # what --help shows  # noqa: A001


def _define_flags():
    from absl import flags

    flags.DEFINE_enum("task", "beta_vae", sorted(ADAPTERS), "The task to compare on.")
    flags.DEFINE_list("lambdas", ["0.5", "2", "8", "32", "128"], "The lambda grid (>= 2 values).")
    flags.DEFINE_integer("steps", 1000, "Training steps of EVERY model (fixed and YOTO).", lower_bound=1)
    flags.DEFINE_float("width_multiplier", 1.0, "Width of the fixed models.")
    flags.DEFINE_list("yoto_width_multipliers", ["1"], "Widths of the YOTO models (one model each).")
    flags.DEFINE_list("yoto_range", [], "LO,HI of the YOTO lambda range (default: the task's).")
    flags.DEFINE_bool("equal_compute_yoto", False, "Also train a YOTO model (fixed models' width) "
                      "for K x --steps, the fixed models' total.")
    flags.DEFINE_integer("workers", 1, "Models trained at once, in separate processes (a GPU or "
                         "many cores).", lower_bound=1)
    flags.DEFINE_integer("train_examples", 0, "beta_vae: 0 = the endless tf.data shapes stream "
                         "(TensorFlow backend); N = a pool of N pre-rendered shapes (any backend; "
                         "cached in --out_dir).", lower_bound=0)
    flags.DEFINE_integer("image_size", 64, "Image side for training and evaluation.")
    flags.DEFINE_integer("batch_size", 32, "Batch size of every model.")
    flags.DEFINE_integer("eval_examples", 512, "Held-out examples per evaluation.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate of every model (see --learning_rates).")
    flags.DEFINE_list("learning_rates", [], "2+ rates: each model's rate is chosen by a sweep "
                      "(each model at each rate for its recipe shortened to --sweep_steps, first "
                      "seed, best validation score); overrides --learning_rate.")
    flags.DEFINE_integer("sweep_steps", 0, "Length of the learning-rate sweep per model (a model "
                         "trained K x --steps: K x this); 0 = --steps // 5.", lower_bound=0)
    flags.DEFINE_bool("cosine_decay", False, "Decay every model's learning rate to 0 over its "
                      "steps (cosine), so each ends annealed.")
    flags.DEFINE_integer("kl_warmup_steps", 0, "beta_vae: the KL weight ramps linearly from 0 to "
                         "its value over the first N steps, in fixed and YOTO models alike.",
                         lower_bound=0)
    flags.DEFINE_float("tolerance", 0.03, "Margin of the verdicts ('within tolerance': the ratio's "
                       "interval ends at most 1 + this) and of the band in the plot.")
    flags.DEFINE_integer("seed", 0, "Seed of the held-out and validation data and of the beta-VAE "
                         "pool; the first training seed of --seeds N.")
    flags.DEFINE_list("seeds", ["1"], "N: every model trained with seeds --seed .. --seed + N - 1; "
                      "or a list of 2+ seeds (e.g. 0,1,2).")
    flags.DEFINE_string("train_data", None, "compression / style_transfer: training images "
                        "(builtin | folder:GLOB | tfds:NAME[:SPLIT]; default builtin).")
    flags.DEFINE_string("eval_data", None, "compression / style_transfer: held-out images "
                        "(default: crops of --train_data with a seed of their own).")
    flags.DEFINE_string("style_image", None, "style_transfer: the style image (default: built-in).")
    flags.DEFINE_string("vgg_weights", "auto", "style_transfer: VGG weights (auto | imagenet | none | PATH).")
    flags.DEFINE_bool("mean_scale", False, "compression: mean-scale hyperprior (as trainers.compression).")
    flags.DEFINE_bool("mixed_quantization", False, "compression: straight-through rounding for the "
                      "synthesis, noise for the rate (as trainers.compression).")
    flags.DEFINE_bool("geometric_mean_weights", True, "compression: divide each example's loss "
                      "weights by their geometric mean, as trainers.compression does (--nogeometric_mean_weights: "
                      "the plain weighted sum).")
    flags.DEFINE_string("out_dir", "runs/yoto_vs_fixed", "Where the CSVs and the plot go.")


def main(argv):
    from absl import app, flags

    del argv
    f = flags.FLAGS
    settings = HarnessSettings(f.image_size, f.batch_size, f.eval_examples, f.seed, f.train_data,
                               f.eval_data, f.style_image, f.vgg_weights, f.train_examples,
                               cache_dir=f.out_dir, mean_scale=f.mean_scale,
                               mixed_quantization=f.mixed_quantization,
                               geometric_mean_weights=f.geometric_mean_weights)
    try:  # every check that needs no training, so bad flags or data fail at once with a message
        lambdas = check_lambdas([float(v) for v in f.lambdas])
        yoto_range = tuple(float(v) for v in f.yoto_range) if f.yoto_range else None
        if yoto_range is not None and len(yoto_range) != 2:
            raise ValueError(f"--yoto_range must be LO,HI, got {f.yoto_range}.")
        seeds = parse_seeds(f.seeds, f.seed)
        try:
            learning_rates = [float(v) for v in f.learning_rates] if f.learning_rates else [f.learning_rate]
        except ValueError:
            raise ValueError(f"--learning_rates must be numbers, got {f.learning_rates}.") from None
        adapter = make_adapter(f.task, settings)  # loads the evaluation data
        check_options(adapter, f.steps, seeds, learning_rates, f.sweep_steps, f.kl_warmup_steps)
        space = adapter.loss_space(*(yoto_range or (None, None)))
        for value in lambdas:
            space.make(**{adapter.coefficient: value})
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    run_comparison(
        adapter, lambdas, f.steps, f.out_dir, width_multiplier=f.width_multiplier,
        yoto_width_multipliers=[float(w) for w in f.yoto_width_multipliers],
        yoto_range=yoto_range, equal_compute_yoto=f.equal_compute_yoto, seeds=seeds,
        learning_rates=learning_rates, sweep_steps=f.sweep_steps, cosine_decay=f.cosine_decay,
        kl_warmup_steps=f.kl_warmup_steps, tolerance=f.tolerance, workers=f.workers, settings=settings,
    )


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
