r"""Trains a loss-conditional beta-VAE (one model for all beta in a range) or a fixed-beta one.

  python -m trainers.beta_vae --model_dir runs/bvae --steps 20000 --batch_size 64
  python -m trainers.beta_vae --model_dir runs/bvae4 --fixed_beta 4      # one beta only
  python -m trainers.beta_vae --data folder:/data/dsprites/*.png --beta_range 0.125,512
  python -m trainers.beta_vae --model_dir runs/bvae_warm --kl_warmup_steps 2000   # KL warm-up

Writes, in --model_dir: model.keras (the network; call it as network((images, lam)) with lam
[B, 2] = (1, beta)), evaluation.csv (held-out reconstruction, KL and negative beta-ELBO per
beta of --eval_betas), rate_distortion.png and samples.png (reconstructions and prior
samples per beta), plus the trainer core's checkpoints and TensorBoard logs.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags, logging

from trainers import cli, core
from yoto_tf.beta_vae import evaluation, inputs, model as beta_vae

flags.DEFINE_string("data", inputs.SHAPES, f"Training images: {inputs.ACCEPTED}.")
flags.DEFINE_string(
    "beta_range", ",".join(f"{b:g}" for b in beta_vae.DEFAULT_BETA_RANGE),
    "LO,HI: beta is sampled log-uniformly from [LO, HI] per example (YOTO).",
)
flags.DEFINE_float("fixed_beta", None, "Train an ordinary beta-VAE at this beta only (overrides --beta_range).")
flags.DEFINE_integer("image_size", 64, "Side of the square training images (a multiple of 16).")
flags.DEFINE_integer("latent_dim", 10, "Number of latent dimensions.")
flags.DEFINE_float("width_multiplier", 1.0, "Multiplies every conv / dense width of the VAE.")
flags.DEFINE_bool(
    "geometric_mean_weights", True,
    "Divide each example's loss weights (1, beta) by their geometric mean sqrt(beta) (YOTO's "
    "option; keeps large-beta examples from dominating the gradient).",
)
flags.DEFINE_integer(
    "kl_warmup_steps", 0,
    "KL warm-up: the KL weight ramps linearly from 0 to its value over the first N training "
    "steps (0: none); a resumed run continues the ramp.", lower_bound=0,
)
flags.DEFINE_list(
    "eval_betas", [],
    "Betas to evaluate at the end (default: powers of 2 spanning the range, or --fixed_beta).",
)
flags.DEFINE_integer("eval_images", 512, "Held-out images for the final evaluation.")
FLAGS = flags.FLAGS
TASK_FLAGS = ("data", "beta_range", "fixed_beta", "image_size", "latent_dim", "width_multiplier",
              "geometric_mean_weights", "kl_warmup_steps", "eval_betas", "eval_images")


def default_eval_betas(low: float, high: float) -> list[float]:
    """Powers of two in [low, high] (YOTO evaluates at powers of two), plus the ends."""
    powers = [2.0 ** e for e in range(int(np.ceil(np.log2(low))), int(np.floor(np.log2(high))) + 1)]
    return sorted({low, *powers, high})


def loss_space_from_flags():
    if FLAGS.fixed_beta is not None:
        if FLAGS.fixed_beta <= 0:
            raise ValueError(f"--fixed_beta must be positive, got {FLAGS.fixed_beta}.")
        return beta_vae.fixed_beta_loss_space(FLAGS.fixed_beta)
    return beta_vae.beta_loss_space(*cli.parse_range("--beta_range", FLAGS.beta_range))


def eval_betas_from_flags(space) -> list[float]:
    """The evaluation betas, validated against the trained range before any training."""
    if FLAGS.eval_betas:
        try:
            betas = [float(b) for b in FLAGS.eval_betas]
        except ValueError:
            raise ValueError(f"--eval_betas must be numbers, got {FLAGS.eval_betas}.") from None
    else:
        kl = space.coefficient("kl")
        betas = default_eval_betas(kl.low, kl.high)
    for beta in betas:
        space.make(kl=beta)  # ValueError naming the trained range
    return betas


def make_task(space, eval_betas) -> core.TrainTask:
    size = FLAGS.image_size
    summary_images = inputs.heldout_images(FLAGS.data, size, 4, seed=FLAGS.seed)
    summary_betas = [eval_betas[0], eval_betas[len(eval_betas) // 2], eval_betas[-1]]

    def build_model():
        return beta_vae.build_model(space, size, FLAGS.latent_dim, FLAGS.width_multiplier, seed=FLAGS.seed,
                                    geometric_mean_weights=FLAGS.geometric_mean_weights,
                                    kl_warmup_steps=FLAGS.kl_warmup_steps)

    def make_dataset(batch_size, seed):
        return inputs.training_dataset(FLAGS.data, size, batch_size, seed)

    def summaries(network, step):
        del step
        rows = evaluation.reconstructions_and_samples(network, summary_images, summary_betas, 0)
        grid = np.concatenate([summary_images[None], rows]).reshape(-1, size, size, 3)
        return core.Summaries(images={"reconstructions_by_beta": grid})

    def export(network, model_dir):
        images = inputs.heldout_images(FLAGS.data, size, FLAGS.eval_images, seed=FLAGS.seed)
        results = evaluation.evaluate_betas(network, images, eval_betas, seed=FLAGS.seed)
        evaluation.write_csv(results, os.path.join(model_dir, "evaluation.csv"))
        evaluation.plot_rate_distortion({"model": results}, os.path.join(model_dir, "rate_distortion.png"))
        evaluation.save_grid(network, images[:6], eval_betas, os.path.join(model_dir, "samples.png"))
        for r in results:
            logging.info("beta %g: reconstruction %.2f  KL %.2f  -beta-ELBO %.2f nats",
                         r.beta, r.reconstruction, r.kl, r.neg_beta_elbo)

    return core.TrainTask(build_model, make_dataset, export=export,
                          summaries=summaries, name="beta_vae",
                          settings=core.flag_values(TASK_FLAGS))


def main(argv):
    del argv
    try:
        space = loss_space_from_flags()
        eval_betas = eval_betas_from_flags(space)
        task = make_task(space, eval_betas)
    except ValueError as error:  # bad flags or data: a message, not a stack trace
        raise app.UsageError(str(error)) from None
    logging.info("Training a beta-VAE on %s with %s.", FLAGS.data, space)
    core.train_from_flags(task)


def cli_main() -> None:
    """Entry point of `python -m trainers.beta_vae` and of the `yoto-beta-vae` console script."""
    cli.run_app(main, __name__)


if __name__ == "__main__":
    cli_main()
