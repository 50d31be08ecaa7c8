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

Writes to ``--out_dir``:
  results.csv   one row per (model, evaluation lambda): ``RESULT_COLUMNS`` + term columns.
  summary.csv   one row per lambda: fixed model's metric, each YOTO's metric and ratio.
  timing.csv    training seconds per model and per approach.
  yoto_vs_fixed.png  the metric of every approach at each lambda, the ratio YOTO / fixed
                (with the --tolerance band), and the total training time of each approach.

A task plugs in through a :class:`TaskAdapter` (see ``ADAPTERS``): how to build its model for a
LossSpace (YOTO, or fixed at one lambda: same builder), its training data, its held-out
measurements at a lambda, and its metric.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import os
import time
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.training import LossConditionalModel

RESULT_COLUMNS = (
    "task", "model", "approach", "width_multiplier", "trained_lambda", "eval_lambda",
    "metric_name", "metric", "train_seconds", "steps",
)
SUMMARY_COLUMNS = ("eval_lambda", "fixed_metric")  # then yoto_w{W}_metric, yoto_w{W}_ratio


# --------------------------------------------------------------------------------------------
# Task adapters
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HarnessSettings:
    """Settings every adapter receives (from the flags); each task reads what it needs.

    Attributes:
      image_size: training (and evaluation) image / crop side.
      batch_size: batch size of every model.
      eval_examples: held-out examples per evaluation.
      seed: seed of weights, lambda sampling and data.
      train_data, eval_data: image sources (``yoto_tf.data.parse_source`` specs) of the
        image tasks (compression, style transfer); None: ``builtin``, and evaluation crops
        drawn from the training source with a seed of their own.
      style_image: style transfer's style image file (None: the built-in one).
      vgg_weights: style transfer's VGG weights (``auto``, ``imagenet``, ``none``, a path).
    """

    image_size: int = 64
    batch_size: int = 32
    eval_examples: int = 512
    seed: int = 0
    train_data: str | None = None
    eval_data: str | None = None
    style_image: str | None = None
    vgg_weights: str = "auto"


class TaskAdapter(abc.ABC):
    """What the harness needs from a task.

    Attributes:
      name: the task name used on the command line.
      coefficient: the swept coefficient (lambda) of the task's LossSpace.
      metric_name: what :meth:`metric` computes (for CSV and plot labels).
    """

    name: str
    coefficient: str
    metric_name: str = "objective"

    def __init__(self, settings: HarnessSettings):
        self.settings = settings

    @abc.abstractmethod
    def loss_space(self, low: float | None, high: float | None) -> LossSpace:
        """The YOTO LossSpace, the swept coefficient on [low, high] (None: the task default)."""

    @abc.abstractmethod
    def build_model(self, loss_space: LossSpace, width_multiplier: float, seed: int) -> LossConditionalModel:
        """An uncompiled model with the task's network for ``loss_space``."""

    @abc.abstractmethod
    def train_dataset(self, batch_size: int, seed: int):
        """Infinite batched tf.data.Dataset of what the model takes."""

    def optimizer(self, learning_rate: float) -> keras.optimizers.Optimizer:
        """The optimizer of every model of this task (default: Adam)."""
        return keras.optimizers.Adam(learning_rate)

    @abc.abstractmethod
    def evaluate(self, network: keras.Model, lam: np.ndarray) -> dict[str, float]:
        """Held-out measurements of ``network`` run at the raw lambda ``lam`` [k]: at least
        the mean of every loss term (by name), optionally more (e.g. PSNR)."""

    def metric(self, measurements: Mapping[str, float], lam: np.ndarray, space: LossSpace) -> float:
        """The task metric at lambda ``lam`` [k] (lower is better); default: the objective
        ``sum_i lam_i * term_i``."""
        return float(sum(lam[i] * measurements[name] for i, name in enumerate(space.names)))


class BetaVAEAdapter(TaskAdapter):
    """beta-VAE on procedural shapes; lambda = beta; metric = negative beta-ELBO (nats).
    Every model trains with the loss weights divided by their geometric mean (the
    beta-VAE default, see ``yoto_tf.beta_vae.model.BetaVAEModel``)."""

    name = "beta_vae"
    coefficient = "kl"
    metric_name = "neg_beta_elbo"

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        from yoto_tf.beta_vae import shapes

        self._shapes = shapes
        self.images, _ = shapes.shape_images(
            range(settings.eval_examples), settings.image_size, seed=settings.seed, split="test"
        )

    def loss_space(self, low, high):
        from yoto_tf.beta_vae import model

        default_low, default_high = model.DEFAULT_BETA_RANGE
        return model.beta_loss_space(low or default_low, high or default_high)

    def build_model(self, loss_space, width_multiplier, seed):
        from yoto_tf.beta_vae import model

        return model.build_model(loss_space, self.settings.image_size,
                                 width_multiplier=width_multiplier, seed=seed)

    def train_dataset(self, batch_size, seed):
        return self._shapes.shapes_dataset(batch_size, self.settings.image_size, seed=seed)

    def evaluate(self, network, lam):
        from yoto_tf.beta_vae import evaluation

        return evaluation.mean_terms(network, self.images, lam, seed=self.settings.seed)


def _heldout_crops(settings: HarnessSettings, size: int) -> np.ndarray:
    """``eval_examples`` crops float32 [N, size, size, 3] of the evaluation images."""
    from yoto_tf import data

    spec = settings.eval_data or settings.train_data or "builtin"
    batches = data.image_dataset(spec, size, settings.eval_examples, seed=settings.seed + 1_000_003)
    return next(iter(batches)).numpy()


def _swept_only(space: LossSpace, coefficient: str, low: float | None, high: float | None) -> LossSpace:
    """``space`` with ``coefficient`` log-uniform on [low, high] (None: its own range) and
    every other coefficient fixed at its default: a one-dimensional YOTO problem."""
    swept = space.coefficients[space.index(coefficient)]
    low, high = low or swept.low, high or swept.high
    return LossSpace([
        Coefficient(c.name, low, high, "log_uniform") if c.name == coefficient
        else Coefficient.fixed(c.name, c.default)
        for c in space.coefficients
    ])


class CompressionAdapter(TaskAdapter):
    """Scale-hyperprior compression; lambda = the distortion weight (on 255^2 MSE, rate in
    bpp fixed at 1); metric = the rate-distortion loss ``lambda * 255^2 * MSE + bpp`` with
    the model's estimated bits (rounded latents). Small CPU-scale transforms: N = 32 and
    M = 48 channels times the width multiplier. Crops must be multiples of 64."""

    name = "compression"
    coefficient = "distortion"
    metric_name = "rd_loss"
    NUM_FILTERS, NUM_LATENT = 32, 48

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        if settings.image_size % 64:
            raise ValueError(f"compression needs --image_size a multiple of 64, got {settings.image_size}.")
        self.images = _heldout_crops(settings, settings.image_size)

    def loss_space(self, low, high):
        from yoto_tf.compression import model

        default_low, default_high = model.DEFAULT_LAMBDA_RANGE
        return model.compression_loss_space((low or default_low, high or default_high))

    def build_model(self, loss_space, width_multiplier, seed):
        from yoto_tf.compression import model

        network = model.CompressionModel(
            loss_space, max(1, round(self.NUM_FILTERS * width_multiplier)),
            max(1, round(self.NUM_LATENT * width_multiplier)), seed=seed,
        )
        return LossConditionalModel(network, model.rate_distortion_terms, loss_space=loss_space, seed=seed)

    def optimizer(self, learning_rate):
        return keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)  # as trainers.compression

    def train_dataset(self, batch_size, seed):
        from yoto_tf import data

        return data.image_dataset(self.settings.train_data or "builtin", self.settings.image_size,
                                  batch_size, seed=seed)

    def evaluate(self, network, lam):
        from yoto_tf.compression import model

        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(self.images), 1))
        outputs = network((keras.ops.convert_to_tensor(self.images), keras.ops.convert_to_tensor(lam_batch)),
                          training=False)
        terms = {k: keras.ops.convert_to_numpy(v) for k, v in
                 model.rate_distortion_terms(self.images, outputs).items()}
        psnr = 10.0 * np.log10(model.DISTORTION_SCALE / np.maximum(terms["distortion"], 1e-10))
        return {**{k: float(v.mean()) for k, v in terms.items()}, "psnr_db": float(psnr.mean())}


class StyleTransferAdapter(TaskAdapter):
    """Adjustable style transfer, one style; lambda = the ``content`` weight on [0.1, 10],
    the other six weights fixed at their defaults (for YOTO too: a one-dimensional
    comparison). Transformer width 0.25 times the width multiplier.

    Models train on terms divided by their OWN running means, so the raw objective is not
    comparable across models; the metric is ``sum_i lambda_i * L_i / ref_i`` with fixed
    scales ``ref_i``: the terms of a reference output, the evaluation images blurred by a
    5x5 box filter (model-independent and non-zero for every term)."""

    name = "style_transfer"
    coefficient = "content"
    metric_name = "normalized_objective"
    BASE_WIDTH = 0.25

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        from yoto_tf import data
        from yoto_tf.style_transfer import StyleTransferLoss

        style = data.load_image(settings.style_image or data.builtin_style_image_path())
        self.losses = StyleTransferLoss([style], vgg_weights=settings.vgg_weights,
                                        style_size=max(128, settings.image_size))
        self.images = _heldout_crops(settings, settings.image_size)
        blurred = keras.ops.average_pool(self.images, 5, strides=1, padding="same")
        self.reference = self._mean_terms(self.images, blurred)

    def _mean_terms(self, images, outputs) -> dict[str, float]:
        terms = self.losses(keras.ops.convert_to_tensor(images), outputs)
        return {k: float(keras.ops.mean(v)) for k, v in terms.items()}

    def loss_space(self, low, high):
        from yoto_tf.style_transfer import style_transfer_loss_space

        return _swept_only(style_transfer_loss_space(), self.coefficient, low, high)

    def build_model(self, loss_space, width_multiplier, seed):
        from yoto_tf.style_transfer import build_transformer
        from yoto_tf.style_transfer.training import StyleTransferModel

        network = build_transformer(loss_space, width_multiplier=self.BASE_WIDTH * width_multiplier)
        return StyleTransferModel(network, self.losses, seed=seed)

    def train_dataset(self, batch_size, seed):
        from yoto_tf.style_transfer.training import training_dataset

        return training_dataset(self.settings.train_data or "builtin", self.settings.image_size,
                                batch_size, seed=seed)

    def evaluate(self, network, lam):
        from yoto_tf.style_transfer import IMAGE_INPUT, LAMBDA_INPUT

        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(self.images), 1))
        feed = {IMAGE_INPUT: self.images, LAMBDA_INPUT: lam_batch}
        outputs = network({k: keras.ops.convert_to_tensor(v) for k, v in feed.items()}, training=False)
        return self._mean_terms(self.images, outputs)

    def metric(self, measurements, lam, space):
        return float(sum(lam[i] * measurements[name] / self.reference[name]
                         for i, name in enumerate(space.names)))


ADAPTERS: dict[str, Callable[[HarnessSettings], TaskAdapter]] = {
    adapter.name: adapter for adapter in (BetaVAEAdapter, CompressionAdapter, StyleTransferAdapter)
}


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def fixed_loss_space(space: LossSpace, coefficient: str, value: float) -> LossSpace:
    """``space`` with ``coefficient`` fixed at ``value`` and every other one fixed at its
    default: the LossSpace of a model trained for that single weighting."""
    space.make(**{coefficient: value})  # ValueError naming the range if outside
    return LossSpace([
        Coefficient.fixed(c.name, value if c.name == coefficient else c.default)
        for c in space.coefficients
    ])


@dataclasses.dataclass
class TrainedModel:
    label: str
    approach: str  # "fixed" or "yoto"
    width_multiplier: float
    trained_lambda: float | None  # None for YOTO
    network: keras.Model
    loss_space: LossSpace
    train_seconds: float


def train_one(adapter: TaskAdapter, space: LossSpace, width_multiplier: float, steps: int,
              learning_rate: float, batch_size: int, seed: int) -> tuple[keras.Model, float]:
    """Trains one model for ``steps`` steps; returns its network and the fit wall time (s)."""
    keras.utils.set_random_seed(seed)
    model = adapter.build_model(space, width_multiplier, seed)
    model.compile(optimizer=adapter.optimizer(learning_rate))
    dataset = adapter.train_dataset(batch_size, seed)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return model.network, time.perf_counter() - start


def evaluate_models(adapter: TaskAdapter, models: Sequence[TrainedModel], yoto_space: LossSpace,
                    lambdas: Sequence[float], steps: int) -> list[dict]:
    """One result row per (model, evaluation lambda); see the module docstring."""
    rows = []
    for trained in models:
        own = None
        if trained.approach == "fixed":
            own = adapter.evaluate(trained.network, trained.loss_space.default())
        for value in lambdas:
            lam = yoto_space.make(**{adapter.coefficient: value})
            measurements = own if own is not None else adapter.evaluate(trained.network, lam)
            rows.append({
                "task": adapter.name, "model": trained.label, "approach": trained.approach,
                "width_multiplier": trained.width_multiplier,
                "trained_lambda": "" if trained.trained_lambda is None else trained.trained_lambda,
                "eval_lambda": value, "metric_name": adapter.metric_name,
                "metric": adapter.metric(measurements, lam, yoto_space),
                "train_seconds": trained.train_seconds, "steps": steps,
                **measurements,
            })
    return rows


def summarize(rows: Sequence[dict], lambdas: Sequence[float], yoto_widths: Sequence[float]) -> list[dict]:
    """Per lambda: the metric of the fixed model trained at it, and of each YOTO model."""
    summary = []
    for value in lambdas:
        fixed = next(r for r in rows if r["approach"] == "fixed"
                     and r["trained_lambda"] == value and r["eval_lambda"] == value)
        entry = {"eval_lambda": value, "fixed_metric": fixed["metric"]}
        for width in yoto_widths:
            yoto = next(r for r in rows if r["approach"] == "yoto"
                        and r["width_multiplier"] == width and r["eval_lambda"] == value)
            entry[f"yoto_w{width:g}_metric"] = yoto["metric"]
            entry[f"yoto_w{width:g}_ratio"] = yoto["metric"] / fixed["metric"]
        summary.append(entry)
    return summary


def _write_csv(path: str, rows: Sequence[dict], first_columns: Sequence[str]) -> None:
    columns = list(first_columns)
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot(summary: Sequence[dict], timing: Mapping[str, float], yoto_widths: Sequence[float],
         metric_name: str, tolerance: float, title: str, path: str) -> None:
    """Left: the metric of every approach at every lambda; middle: YOTO / fixed; right: the
    total training time per approach."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (values, ratios, times) = plt.subplots(
        1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 3, 2]})
    lambdas = [s["eval_lambda"] for s in summary]
    values.plot(lambdas, [s["fixed_metric"] for s in summary], marker="s", color="C7",
                label="fixed model trained at lambda")
    for i, width in enumerate(yoto_widths):
        values.plot(lambdas, [s[f"yoto_w{width:g}_metric"] for s in summary], marker="o",
                    color=f"C{i}", label=f"YOTO, width x{width:g}")
        ratios.plot(lambdas, [s[f"yoto_w{width:g}_ratio"] for s in summary], marker="o",
                    color=f"C{i}", label=f"YOTO, width x{width:g}")
    values.set_ylabel(f"{metric_name} (held-out, lower is better)")
    ratios.axhline(1.0, color="k", lw=0.8)
    ratios.axhspan(1.0 - tolerance, 1.0 + tolerance, color="g", alpha=0.12,
                   label=f"within {tolerance:.0%}")
    ratios.set_ylabel(f"{metric_name}: YOTO / fixed model at lambda")
    for ax in (values, ratios):
        ax.set_xscale("log")
        ax.set_xlabel("lambda (evaluation)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    names = list(timing)
    times.bar(range(len(names)), [timing[n] for n in names],
              color=["C7"] + [f"C{i}" for i in range(len(names) - 1)])
    times.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    times.set_ylabel("total training time [s]")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_adapter(task: str, settings: HarnessSettings) -> TaskAdapter:
    """The adapter of ``task`` (loads its evaluation data). Raises ValueError if unknown."""
    if task not in ADAPTERS:
        raise ValueError(f"Unknown task {task!r}; available: {sorted(ADAPTERS)}.")
    return ADAPTERS[task](settings)


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """The grid sorted; raises ValueError unless it has at least 2 distinct values."""
    lambdas = sorted(float(v) for v in lambdas)
    if len(lambdas) < 2 or len(set(lambdas)) != len(lambdas):
        raise ValueError(f"Give at least 2 distinct lambdas, got {lambdas}.")
    return lambdas


def run_comparison(
    task: str | TaskAdapter,
    lambdas: Sequence[float],
    steps: int,
    out_dir: str,
    *,
    width_multiplier: float = 1.0,
    yoto_width_multipliers: Sequence[float] = (1.0,),
    yoto_range: tuple[float, float] | None = None,
    learning_rate: float = 1e-3,
    tolerance: float = 0.03,
    settings: HarnessSettings = HarnessSettings(),
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Runs the whole experiment and writes the CSVs and the plot; returns the summary rows.

    Args:
      task: a name in ``ADAPTERS`` (built with ``settings``) or an adapter instance.

    Raises:
      ValueError: unknown task, fewer than 2 lambdas, or a lambda outside the YOTO range
        (the message names the range).
    """
    lambdas = check_lambdas(lambdas)
    adapter = task if isinstance(task, TaskAdapter) else make_adapter(task, settings)
    task = adapter.name
    low, high = yoto_range or (None, None)
    yoto_space = adapter.loss_space(low, high)
    fixed_spaces = [fixed_loss_space(yoto_space, adapter.coefficient, v) for v in lambdas]
    os.makedirs(out_dir, exist_ok=True)

    models = []
    for value, space in zip(lambdas, fixed_spaces):
        network, seconds = train_one(adapter, space, width_multiplier, steps, learning_rate,
                                     settings.batch_size, settings.seed)
        models.append(TrainedModel(f"fixed_{value:g}", "fixed", width_multiplier, value, network, space, seconds))
        log(f"fixed {adapter.coefficient}={value:g}: {steps} steps in {seconds:.1f} s")
    for width in yoto_width_multipliers:
        network, seconds = train_one(adapter, yoto_space, width, steps, learning_rate,
                                     settings.batch_size, settings.seed)
        models.append(TrainedModel(f"yoto_w{width:g}", "yoto", width, None, network, yoto_space, seconds))
        log(f"YOTO width x{width:g} on {yoto_space}: {steps} steps in {seconds:.1f} s")

    rows = evaluate_models(adapter, models, yoto_space, lambdas, steps)
    summary = summarize(rows, lambdas, yoto_width_multipliers)
    timing = {f"{len(lambdas)} fixed (w x{width_multiplier:g})": sum(
        m.train_seconds for m in models if m.approach == "fixed")}
    timing.update({f"YOTO w x{m.width_multiplier:g}": m.train_seconds for m in models if m.approach == "yoto"})
    _write_csv(os.path.join(out_dir, "results.csv"), rows, RESULT_COLUMNS)
    _write_csv(os.path.join(out_dir, "summary.csv"), summary, SUMMARY_COLUMNS)
    _write_csv(os.path.join(out_dir, "timing.csv"),
               [{"approach": name, "train_seconds": seconds, "steps_per_model": steps}
                for name, seconds in timing.items()], ("approach", "train_seconds", "steps_per_model"))
    title = (f"{task}: YOTO vs {len(lambdas)} fixed models, {steps} steps each, "
             f"batch {settings.batch_size}, {settings.image_size}px")
    plot(summary, timing, yoto_width_multipliers, adapter.metric_name, tolerance, title,
         os.path.join(out_dir, "yoto_vs_fixed.png"))
    for entry in summary:
        ratios = "  ".join(f"{k}={v:.4f}" for k, v in entry.items() if k.endswith("ratio"))
        log(f"lambda {entry['eval_lambda']:g}: fixed {entry['fixed_metric']:.4g}  {ratios}")
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _define_flags():
    from absl import flags

    flags.DEFINE_enum("task", "beta_vae", sorted(ADAPTERS), "The task to compare on.")
    flags.DEFINE_list("lambdas", ["0.5", "2", "8", "32", "128"], "The lambda grid (>= 2 values).")
    flags.DEFINE_integer("steps", 1000, "Training steps of EVERY model (fixed and YOTO).", lower_bound=1)
    flags.DEFINE_float("width_multiplier", 1.0, "Width of the fixed models.")
    flags.DEFINE_list("yoto_width_multipliers", ["1"], "Widths of the YOTO models (one model each).")
    flags.DEFINE_list("yoto_range", [], "LO,HI of the YOTO lambda range (default: the task's).")
    flags.DEFINE_integer("image_size", 64, "Image side for training and evaluation.")
    flags.DEFINE_integer("batch_size", 32, "Batch size of every model.")
    flags.DEFINE_integer("eval_examples", 512, "Held-out examples per evaluation.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_float("tolerance", 0.03, "Relative band drawn around ratio 1 in the plot.")
    flags.DEFINE_integer("seed", 0, "Seed of weights, lambda sampling and data.")
    flags.DEFINE_string("train_data", None, "compression / style_transfer: training images "
                        "(builtin | folder:GLOB | tfds:NAME[:SPLIT]; default builtin).")
    flags.DEFINE_string("eval_data", None, "compression / style_transfer: held-out images "
                        "(default: crops of --train_data with a seed of their own).")
    flags.DEFINE_string("style_image", None, "style_transfer: the style image (default: built-in).")
    flags.DEFINE_string("vgg_weights", "auto", "style_transfer: VGG weights (auto | imagenet | none | PATH).")
    flags.DEFINE_string("out_dir", "runs/yoto_vs_fixed", "Where the CSVs and the plot go.")


def main(argv):
    from absl import app, flags

    del argv
    f = flags.FLAGS
    settings = HarnessSettings(f.image_size, f.batch_size, f.eval_examples, f.seed, f.train_data,
                               f.eval_data, f.style_image, f.vgg_weights)
    try:  # every check that needs no training, so bad flags or data fail at once with a message
        lambdas = check_lambdas([float(v) for v in f.lambdas])
        yoto_range = tuple(float(v) for v in f.yoto_range) if f.yoto_range else None
        if yoto_range is not None and len(yoto_range) != 2:
            raise ValueError(f"--yoto_range must be LO,HI, got {f.yoto_range}.")
        adapter = make_adapter(f.task, settings)  # loads the evaluation data
        space = adapter.loss_space(*(yoto_range or (None, None)))
        for value in lambdas:
            space.make(**{adapter.coefficient: value})
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    run_comparison(
        adapter, lambdas, f.steps, f.out_dir, width_multiplier=f.width_multiplier,
        yoto_width_multipliers=[float(w) for w in f.yoto_width_multipliers],
        yoto_range=yoto_range, learning_rate=f.learning_rate, tolerance=f.tolerance,
        settings=settings,
    )


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
