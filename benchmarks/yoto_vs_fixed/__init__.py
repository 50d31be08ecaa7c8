r"""YOTO versus separately trained models: does ONE loss-conditional model match K models
trained one per lambda, at 1/K of their total training steps? With error bars.

  python -m benchmarks.yoto_vs_fixed --task beta_vae --lambdas 0.5,2,8,32,128 --steps 3000 \
      --yoto_width_multipliers 1,2 --seeds 3 --out_dir runs/yoto_vs_fixed_bvae

For every lambda of ``--lambdas`` it trains a "fixed" model: the task's network with the
swept coefficient FIXED at that lambda (its conditioning input is then constant: same code
path, same architecture, the task's own builder as its trainer uses). It also trains one
YOTO model per ``--yoto_width_multipliers`` entry, lambda sampled log-uniformly per example
over ``--yoto_range`` (default: the task's range). Every model gets ``--steps`` steps, so the
K fixed models together get K times the steps of one YOTO model. All are evaluated on
held-out data at every lambda of the grid: a fixed model runs at its own lambda (the only
input it was trained for) and its loss terms are weighted by the evaluation lambda; a YOTO
model is conditioned on the evaluation lambda.

The task metric is the objective at lambda, ``sum_i lambda_i * L_i`` per held-out example
(beta-VAE: the negative beta-ELBO; compression: the rate-distortion loss; lower is better),
unless the task adapter defines another (style transfer: terms divided by fixed scales).

Seeds and error bars: ``--seeds N`` (seeds ``--seed`` .. ``--seed + N - 1``) or ``--seeds
0,3,7`` trains EVERY model once per seed (weights, lambda sampling, training batches; the
held-out data stays that of ``--seed``). Per lambda, the ratio YOTO / fixed is the mean over
seeds of ``mean(YOTO metric) / mean(fixed metric)`` (same seed, same held-out examples); its
95 % interval is a hierarchical bootstrap (resample seeds, then examples within each seed;
fixed RNG seed). The verdict per lambda, a non-inferiority reading with margin
``--tolerance`` t: "better" if the interval's upper end is below 1; "within tolerance" if it
is in [1, 1 + t]; "worse" if the lower end is above 1 + t; "inconclusive" otherwise.

Fair baselines: ``--kl_warmup_steps N`` (beta_vae) ramps the KL weight linearly from 0 to its
value over the first N steps, in the fixed models and YOTO alike (the library's
``yoto_tf.beta_vae.model.BetaVAEModel``, as ``trainers.beta_vae --kl_warmup_steps``).
``--learning_rates 3e-4,1e-3`` chooses each model's learning rate by a sweep: every model is
trained at every rate for its recipe shortened to ``--sweep_steps / --steps`` (steps, and
warm-up, alike: the same budget for every model), with the first seed, and the rate with the
best validation score (validation examples, never the test ones; YOTO: the geometric mean
over the grid) is used for every seed of the full run.

``--equal_compute_yoto`` adds a YOTO model trained K x ``--steps`` (the fixed models' total).
``--workers N`` trains N models at once in separate processes: worth it on a GPU, where one
small model leaves the device mostly idle. The harness runs on any Keras backend; the
beta-VAE on JAX or PyTorch needs ``--train_examples N`` (a pre-rendered pool instead of the
tf.data stream), e.g. on a GPU machine without TensorFlow:

  KERAS_BACKEND=jax python -m benchmarks.yoto_vs_fixed --task beta_vae --train_examples 100000 \
      --steps 20000 --workers 8 --yoto_width_multipliers 1,2,4 --equal_compute_yoto --seeds 3

Writes to ``--out_dir``:
  models/       every trained network (``<label>_seed<S>_lr<LR>.keras``) and its recipe
                (``.json``); ``models/sweep/`` the sweep's. A rerun of the same command
                reuses the models that finished.
  results.csv   one row per (model, seed, evaluation lambda): ``RESULT_COLUMNS`` (with the
                learning rate and KL warm-up the model got) + the mean of every term.
  examples.csv  one row per (model, seed, evaluation lambda, held-out example): the metric
                and every term, so any other statistic can be computed later.
  summary.csv   one row per lambda: the fixed models' metric, each YOTO's metric, ratio,
                interval (``_ratio_low``, ``_ratio_high``) and verdict.
  verdicts.txt  one line per (lambda, YOTO model): ratio, interval, verdict; for compression
                also one line per YOTO model: its BD-rate against the fixed models' curve.
  bd_rates.csv  compression: per YOTO model and seed (and their mean), the BD-rate (PSNR) of
                its RD curve (bpp, PSNR at every lambda) against the fixed models' curve
                (each at its own lambda).
  sweep.csv     with 2+ learning rates: one row per (model, rate): its validation score and
                whether it was chosen.
  timing.csv    training seconds per approach and seed, and the sweep's seconds.
  yoto_vs_fixed.png  the metric of every approach at each lambda, the ratio YOTO / fixed
                with its intervals and the --tolerance band, and the training time.

A task plugs in through a :class:`TaskAdapter` (see ``ADAPTERS``): how to build its model for a
LossSpace (YOTO, or fixed at one lambda: same builder), its training data, its per-example
held-out (and validation) measurements at a lambda, and its metric.
"""

from benchmarks.yoto_vs_fixed.adapters import (  # noqa: F401
    ADAPTERS, BetaVAEAdapter, CompressionAdapter, HarnessSettings, StyleTransferAdapter, TaskAdapter,
    make_adapter,
)
from benchmarks.yoto_vs_fixed.bootstrap import RatioInterval, ratio_interval, verdict  # noqa: F401
from benchmarks.yoto_vs_fixed.harness import (  # noqa: F401
    check_lambdas, check_options, choose_learning_rates, evaluate_models, fixed_loss_space, parse_seeds,
    plan_models, run_comparison, validation_score,
)
from benchmarks.yoto_vs_fixed.report import (  # noqa: F401
    BD_COLUMNS, EXAMPLE_COLUMNS, RESULT_COLUMNS, SUMMARY_COLUMNS, SWEEP_COLUMNS, bd_rate_rows, plot,
    summarize,
)
from benchmarks.yoto_vs_fixed.training import (  # noqa: F401
    LearningRate, ModelSpec, ModelStore, TrainedModel, train_models, train_one,
)
