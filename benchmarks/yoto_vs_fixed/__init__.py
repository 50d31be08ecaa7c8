r"""YOTO versus separately trained models: does ONE loss-conditional model match K models
trained one per lambda, at 1/K of their total training steps?

  python -m benchmarks.yoto_vs_fixed --task beta_vae --lambdas 0.5,2,8,32,128 --steps 3000 \
      --yoto_width_multipliers 1,2 --out_dir runs/yoto_vs_fixed_bvae

For every lambda of ``--lambdas`` it trains a "fixed" model: the task's network with the
swept coefficient FIXED at that lambda (its conditioning input is then constant: same code
path, same architecture). It also trains one YOTO model per ``--yoto_width_multipliers``
entry, lambda sampled log-uniformly per example over ``--yoto_range`` (default: the task's
range). Every model gets ``--steps`` steps, so the K fixed models together get K times the
steps of one YOTO model. All are evaluated on held-out data at every lambda of the grid: a
fixed model runs at its own lambda (the only input it was trained for) and its loss terms
are weighted by the evaluation lambda; a YOTO model is conditioned on the evaluation lambda.

The task metric is the objective at lambda, ``sum_i lambda_i * mean(L_i)`` (beta-VAE: the
negative beta-ELBO; compression: the rate-distortion loss; lower is better), unless the
task adapter defines another (style transfer: terms divided by fixed reference scales).

``--equal_compute_yoto`` adds a YOTO model trained K x ``--steps`` (the fixed models' total).
``--workers N`` trains N models at once in separate processes: worth it on a GPU, where one
small model leaves the device mostly idle. The harness runs on any Keras backend; the
beta-VAE on JAX or PyTorch needs ``--train_examples N`` (a pre-rendered pool instead of the
tf.data stream), e.g. on a GPU machine without TensorFlow:

  KERAS_BACKEND=jax python -m benchmarks.yoto_vs_fixed --task beta_vae --train_examples 100000 \
      --steps 20000 --workers 8 --yoto_width_multipliers 1,2,4 --equal_compute_yoto

Writes to ``--out_dir``:
  models/       every trained network (``<label>.keras``) and its recipe (``<label>.json``):
                a rerun of the same command reuses the models that finished.
  results.csv   one row per (model, evaluation lambda): ``RESULT_COLUMNS`` + term columns.
  summary.csv   one row per lambda: fixed model's metric, each YOTO's metric and ratio.
  timing.csv    training seconds per approach.
  yoto_vs_fixed.png  the metric of every approach at each lambda, the ratio YOTO / fixed
                (with the --tolerance band), and the total training time of each approach.

A task plugs in through a :class:`TaskAdapter` (see ``ADAPTERS``): how to build its model for a
LossSpace (YOTO, or fixed at one lambda: same builder), its training data, its held-out
measurements at a lambda, and its metric.
"""

from benchmarks.yoto_vs_fixed.adapters import (  # noqa: F401
    ADAPTERS, BetaVAEAdapter, CompressionAdapter, HarnessSettings, StyleTransferAdapter, TaskAdapter,
    make_adapter,
)
from benchmarks.yoto_vs_fixed.harness import (  # noqa: F401
    LearningRate, ModelSpec, ModelStore, TrainedModel, check_lambdas, evaluate_models,
    fixed_loss_space, plan_models, run_comparison, train_models, train_one,
)
from benchmarks.yoto_vs_fixed.report import RESULT_COLUMNS, SUMMARY_COLUMNS, plot, summarize  # noqa: F401
