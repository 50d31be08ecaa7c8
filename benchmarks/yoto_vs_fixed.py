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

from __future__ import annotations

import abc
import concurrent.futures
import csv
import dataclasses
import json
import multiprocessing
import os
import time
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.files import save_keras_atomically, write_atomically
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
      train_examples: beta-VAE: 0 trains on the endless tf.data stream of fresh shapes
        (TensorFlow backend only); N > 0 on a pool of N pre-rendered shapes (any backend,
        and fast enough to feed a GPU).
      cache_dir: where a task may cache prepared training data (the beta-VAE pool); None:
        keep it in memory.
    """

    image_size: int = 64
    batch_size: int = 32
    eval_examples: int = 512
    seed: int = 0
    train_data: str | None = None
    eval_data: str | None = None
    style_image: str | None = None
    vgg_weights: str = "auto"
    train_examples: int = 0
    cache_dir: str | None = None


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
        """Endless batches of what the model takes (a tf.data.Dataset or a Keras PyDataset)."""

    def prepare_training_data(self) -> None:
        """Builds any shared training data once, before models train (possibly in other
        processes, which then reuse it through ``settings.cache_dir``). Default: nothing."""

    def optimizer(self, learning_rate) -> keras.optimizers.Optimizer:
        """The optimizer of every model of this task (default: Adam); ``learning_rate`` is a
        float or a ``keras.optimizers.schedules`` schedule."""
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
    beta-VAE default, see ``yoto_tf.beta_vae.model.build_model``), on the endless shapes
    stream or, with ``settings.train_examples``, on a pre-rendered pool (see
    ``yoto_tf.beta_vae.pool``)."""

    name = "beta_vae"
    coefficient = "kl"
    metric_name = "neg_beta_elbo"

    def __init__(self, settings: HarnessSettings):
        super().__init__(settings)
        from yoto_tf.beta_vae import shapes

        self._shapes = shapes
        self._pool = None  # the training pool, once rendered or loaded (see _train_pool)
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
        from yoto_tf.beta_vae import pool

        if self.settings.train_examples > 0:
            return pool.PoolBatches(self._train_pool(), batch_size, seed=seed)
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"beta_vae on the {keras.backend.backend()} backend needs --train_examples > 0 "
                "(a pre-rendered pool): the endless shapes stream is tf.data."
            )
        return self._shapes.shapes_dataset(batch_size, self.settings.image_size, seed=seed)

    def prepare_training_data(self):
        if self.settings.train_examples > 0:
            self._train_pool()

    def _train_pool(self) -> np.ndarray:
        """The training pool, uint8 [N, S, S, 3]: rendered once, cached in ``cache_dir``."""
        from yoto_tf.beta_vae import pool

        s = self.settings
        if self._pool is not None:
            return self._pool
        if s.cache_dir is None:
            self._pool = pool.render_pool(s.train_examples, s.image_size, seed=s.seed)
            return self._pool
        path = os.path.join(s.cache_dir, f"shapes_train_seed{s.seed}_{s.image_size}px_{s.train_examples}.npy")
        if not os.path.exists(path):
            os.makedirs(s.cache_dir, exist_ok=True)
            images = pool.render_pool(s.train_examples, s.image_size, seed=s.seed)
            write_atomically(path, lambda tmp: np.save(tmp, images), suffix=".npy")
        self._pool = np.load(path, mmap_mode="r")
        return self._pool

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
    swept = space.coefficient(coefficient)
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
        from yoto_tf.compression.training import build_model

        # The trainer's builder: geometric-mean weighting on, as in trainers.compression
        # (a plain LossConditionalModel here measured another objective than users train).
        return build_model(
            loss_space, max(1, round(self.NUM_FILTERS * width_multiplier)),
            max(1, round(self.NUM_LATENT * width_multiplier)), seed=seed,
        )

    def optimizer(self, learning_rate):
        return keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)  # as trainers.compression

    def train_dataset(self, batch_size, seed):
        from yoto_tf import data

        return data.image_dataset(self.settings.train_data or "builtin", self.settings.image_size,
                                  batch_size, seed=seed)

    def evaluate(self, network, lam):
        from yoto_tf.compression import metrics, model

        lam_batch = np.tile(np.asarray(lam, np.float32)[None], (len(self.images), 1))
        outputs = network((keras.ops.convert_to_tensor(self.images), keras.ops.convert_to_tensor(lam_batch)),
                          training=False)
        terms = {k: keras.ops.convert_to_numpy(v) for k, v in
                 model.rate_distortion_terms(self.images, outputs).items()}
        x_hat = keras.ops.convert_to_numpy(outputs["x_hat"])
        psnr = [metrics.psnr(image, decoded, data_range=1.0) for image, decoded in zip(self.images, x_hat)]
        return {**{k: float(v.mean()) for k, v in terms.items()}, "psnr_db": float(np.mean(psnr))}


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
        from yoto_tf.images import load_image
        from yoto_tf.style_transfer import StyleTransferLoss

        style = load_image(settings.style_image or data.builtin_style_image_path())
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


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment.

    Attributes:
      label: its name in the CSVs (``fixed_<lambda>``, ``yoto_w<width>``, or
        ``yoto_w<width>_<steps>steps`` for the equal-compute YOTO model).
      approach: ``"fixed"`` or ``"yoto"``.
      width_multiplier: network width multiplier.
      trained_lambda: the lambda a fixed model trains at (None for YOTO).
      loss_space: its LossSpace (fixed at ``trained_lambda``, or the YOTO range).
      steps: its training steps.
    """

    label: str
    approach: str
    width_multiplier: float
    trained_lambda: float | None
    loss_space: LossSpace
    steps: int


@dataclasses.dataclass
class TrainedModel:
    spec: ModelSpec
    network: keras.Model
    train_seconds: float


def plan_models(adapter: TaskAdapter, lambdas: Sequence[float], yoto_space: LossSpace, steps: int,
                width_multiplier: float, yoto_width_multipliers: Sequence[float],
                equal_compute_yoto: bool) -> list[ModelSpec]:
    """The K fixed models, one YOTO model per width (all ``steps`` steps), and optionally a
    YOTO model of the fixed models' width trained K x ``steps`` (the fixed models' total)."""
    specs = [ModelSpec(f"fixed_{value:g}", "fixed", width_multiplier, value,
                       fixed_loss_space(yoto_space, adapter.coefficient, value), steps)
             for value in lambdas]
    specs += [ModelSpec(f"yoto_w{width:g}", "yoto", width, None, yoto_space, steps)
              for width in yoto_width_multipliers]
    if equal_compute_yoto:
        long_steps = len(lambdas) * steps
        specs.append(ModelSpec(f"yoto_w{width_multiplier:g}_{long_steps}steps", "yoto",
                               width_multiplier, None, yoto_space, long_steps))
    return specs


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """Every model's learning rate: ``initial`` throughout, or with ``cosine_decay`` decayed
    to 0 over the model's own steps (so every model ends annealed, whatever its length)."""

    initial: float = 1e-3
    cosine_decay: bool = False

    def for_steps(self, steps: int):
        """A float or a schedule, as ``adapter.optimizer`` takes."""
        if not self.cosine_decay:
            return self.initial
        return keras.optimizers.schedules.CosineDecay(self.initial, decay_steps=steps)


def train_one(adapter: TaskAdapter, spec: ModelSpec, schedule: LearningRate, batch_size: int,
              seed: int) -> tuple[keras.Model, float]:
    """Trains one model; returns its network and the fit wall time (s)."""
    keras.utils.set_random_seed(seed)
    model = adapter.build_model(spec.loss_space, spec.width_multiplier, seed)
    model.compile(optimizer=adapter.optimizer(schedule.for_steps(spec.steps)))
    dataset = adapter.train_dataset(batch_size, seed)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=spec.steps, epochs=1, shuffle=False, verbose=0)
    return model.network, time.perf_counter() - start


def _recipe(adapter: TaskAdapter, spec: ModelSpec, schedule: LearningRate) -> dict:
    """What determines a trained model: a saved one is reused only if this matches."""
    settings = dataclasses.asdict(adapter.settings)
    for unrelated in ("eval_examples", "eval_data", "cache_dir"):
        settings.pop(unrelated)
    return {"task": adapter.name, "label": spec.label, "width_multiplier": spec.width_multiplier,
            "loss_space": spec.loss_space.get_config(), "steps": spec.steps,
            "learning_rate": dataclasses.asdict(schedule), "backend": keras.backend.backend(), **settings}


class ModelStore:
    """Trained networks saved under ``directory`` as ``<label>.keras`` plus ``<label>.json``
    (the recipe and the training seconds), so a rerun of the same experiment (e.g. after it
    was killed) reuses every model that already finished. Files are written atomically."""

    def __init__(self, directory: str):
        self.directory = directory

    def _paths(self, label: str) -> tuple[str, str]:
        base = os.path.join(self.directory, label)
        return base + ".keras", base + ".json"

    def has(self, recipe: dict) -> bool:
        """Whether a network trained with exactly ``recipe`` is saved."""
        model_path, info_path = self._paths(recipe["label"])
        if not (os.path.exists(model_path) and os.path.exists(info_path)):
            return False
        with open(info_path) as f:
            return json.load(f).get("recipe") == json.loads(json.dumps(recipe))

    def load(self, recipe: dict) -> tuple[keras.Model, float]:
        """The saved network of ``recipe`` (see :meth:`has`) and its training seconds."""
        model_path, info_path = self._paths(recipe["label"])
        with open(info_path) as f:
            seconds = float(json.load(f)["train_seconds"])
        return keras.saving.load_model(model_path, compile=False), seconds

    def save(self, recipe: dict, network: keras.Model, train_seconds: float) -> None:
        os.makedirs(self.directory, exist_ok=True)
        model_path, info_path = self._paths(recipe["label"])
        save_keras_atomically(network, model_path)

        def write_info(tmp):
            with open(tmp, "w") as f:
                json.dump({"recipe": recipe, "train_seconds": train_seconds}, f, indent=1)

        write_atomically(info_path, write_info)  # last: it marks the model as finished


def _train_and_save(adapter: TaskAdapter, spec: ModelSpec, schedule: LearningRate,
                    store: ModelStore) -> float:
    network, seconds = train_one(adapter, spec, schedule, adapter.settings.batch_size,
                                 adapter.settings.seed)
    store.save(_recipe(adapter, spec, schedule), network, seconds)
    return seconds


def _train_in_worker(task: str, settings: HarnessSettings, spec: ModelSpec, schedule: LearningRate,
                     store_directory: str) -> float:
    """A worker process's job: build the task's adapter, train one model, save it."""
    return _train_and_save(make_adapter(task, settings), spec, schedule, ModelStore(store_directory))


def train_models(adapter: TaskAdapter, specs: Sequence[ModelSpec], schedule: LearningRate,
                 store: ModelStore, workers: int = 1,
                 log: Callable[[str], None] = print) -> list[TrainedModel]:
    """Trains every model of ``specs`` not already in ``store`` (one after the other, or in
    ``workers`` parallel processes), then loads them all from the store."""
    missing = [spec for spec in specs if not store.has(_recipe(adapter, spec, schedule))]
    for spec in specs:
        if spec not in missing:
            log(f"{spec.label}: reusing the model saved in {store.directory}")
    if missing:
        adapter.prepare_training_data()
    if workers > 1 and len(missing) > 1:
        if adapter.name not in ADAPTERS:
            raise ValueError(f"workers > 1 needs a task of ADAPTERS, got {adapter.name!r}.")
        # Each process takes device memory as it needs it (JAX and TF would grab most of it).
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(missing)), mp_context=context) as pool:
            futures = {pool.submit(_train_in_worker, adapter.name, adapter.settings, spec, schedule,
                                   store.directory): spec for spec in missing}
            for future in concurrent.futures.as_completed(futures):
                log(f"{futures[future].label}: {futures[future].steps} steps in {future.result():.1f} s")
    else:
        for spec in missing:
            seconds = _train_and_save(adapter, spec, schedule, store)
            log(f"{spec.label}: {spec.steps} steps in {seconds:.1f} s")
    trained = []
    for spec in specs:
        network, seconds = store.load(_recipe(adapter, spec, schedule))
        trained.append(TrainedModel(spec, network, seconds))
    return trained


def evaluate_models(adapter: TaskAdapter, models: Sequence[TrainedModel], yoto_space: LossSpace,
                    lambdas: Sequence[float]) -> list[dict]:
    """One result row per (model, evaluation lambda); see the module docstring."""
    rows = []
    for trained in models:
        spec = trained.spec
        own = None
        if spec.approach == "fixed":
            own = adapter.evaluate(trained.network, spec.loss_space.default())
        for value in lambdas:
            lam = yoto_space.make(**{adapter.coefficient: value})
            measurements = own if own is not None else adapter.evaluate(trained.network, lam)
            rows.append({
                "task": adapter.name, "model": spec.label, "approach": spec.approach,
                "width_multiplier": spec.width_multiplier,
                "trained_lambda": "" if spec.trained_lambda is None else spec.trained_lambda,
                "eval_lambda": value, "metric_name": adapter.metric_name,
                "metric": adapter.metric(measurements, lam, yoto_space),
                "train_seconds": trained.train_seconds, "steps": spec.steps,
                **measurements,
            })
    return rows


def summarize(rows: Sequence[dict], lambdas: Sequence[float], yoto_labels: Sequence[str]) -> list[dict]:
    """Per lambda: the metric of the fixed model trained at it, and of each YOTO model
    (``<label>_metric``) with its ratio to the fixed model (``<label>_ratio``)."""
    summary = []
    for value in lambdas:
        fixed = next(r for r in rows if r["approach"] == "fixed"
                     and r["trained_lambda"] == value and r["eval_lambda"] == value)
        entry = {"eval_lambda": value, "fixed_metric": fixed["metric"]}
        for label in yoto_labels:
            yoto = next(r for r in rows if r["model"] == label and r["eval_lambda"] == value)
            entry[f"{label}_metric"] = yoto["metric"]
            entry[f"{label}_ratio"] = yoto["metric"] / fixed["metric"]
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


def _yoto_name(spec: ModelSpec, steps: int) -> str:
    """The plot / timing name of a YOTO model (its steps shown if not the common ``steps``)."""
    name = f"YOTO w x{spec.width_multiplier:g}"
    return name if spec.steps == steps else f"{name}, {spec.steps} steps"


def plot(summary: Sequence[dict], timing: Mapping[str, float], yoto: Mapping[str, str],
         metric_name: str, tolerance: float, title: str, path: str) -> None:
    """Left: the metric of every approach at every lambda; middle: YOTO / fixed; right: the
    total training time per approach. ``yoto`` maps each YOTO label to its legend name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (values, ratios, times) = plt.subplots(
        1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 3, 2]})
    lambdas = [s["eval_lambda"] for s in summary]
    values.plot(lambdas, [s["fixed_metric"] for s in summary], marker="s", color="C7",
                label="fixed model trained at lambda")
    for i, (label, name) in enumerate(yoto.items()):
        values.plot(lambdas, [s[f"{label}_metric"] for s in summary], marker="o", color=f"C{i}", label=name)
        ratios.plot(lambdas, [s[f"{label}_ratio"] for s in summary], marker="o", color=f"C{i}", label=name)
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
    equal_compute_yoto: bool = False,
    learning_rate: float = 1e-3,
    cosine_decay: bool = False,
    tolerance: float = 0.03,
    workers: int = 1,
    settings: HarnessSettings = HarnessSettings(),
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Runs the whole experiment and writes the CSVs and the plot; returns the summary rows.

    Trained networks go to ``<out_dir>/models`` (see :class:`ModelStore`): rerunning the same
    experiment reuses every model that finished.

    Args:
      task: a name in ``ADAPTERS`` (built with ``settings``) or an adapter instance.
      equal_compute_yoto: also train a YOTO model of the fixed models' width for K x
        ``steps``, the fixed models' total.
      cosine_decay: decay every model's learning rate to 0 over its steps (cosine).
      workers: train up to this many models at once in separate processes (tasks of
        ``ADAPTERS`` only); worth it on a GPU or a many-core machine.

    Raises:
      ValueError: unknown task, fewer than 2 lambdas, or a lambda outside the YOTO range
        (the message names the range).
    """
    lambdas = check_lambdas(lambdas)
    adapter = task if isinstance(task, TaskAdapter) else make_adapter(task, settings)
    task = adapter.name
    low, high = yoto_range or (None, None)
    yoto_space = adapter.loss_space(low, high)
    specs = plan_models(adapter, lambdas, yoto_space, steps, width_multiplier, yoto_width_multipliers,
                        equal_compute_yoto)
    os.makedirs(out_dir, exist_ok=True)
    models = train_models(adapter, specs, LearningRate(learning_rate, cosine_decay), ModelStore(os.path.join(out_dir, "models")),
                          workers=workers, log=log)

    rows = evaluate_models(adapter, models, yoto_space, lambdas)
    yoto = {m.spec.label: _yoto_name(m.spec, steps) for m in models if m.spec.approach == "yoto"}
    summary = summarize(rows, lambdas, list(yoto))
    timing = {f"{len(lambdas)} fixed (w x{width_multiplier:g})": sum(
        m.train_seconds for m in models if m.spec.approach == "fixed")}
    timing.update({yoto[m.spec.label]: m.train_seconds for m in models if m.spec.approach == "yoto"})
    _write_csv(os.path.join(out_dir, "results.csv"), rows, RESULT_COLUMNS)
    _write_csv(os.path.join(out_dir, "summary.csv"), summary, SUMMARY_COLUMNS)
    _write_csv(os.path.join(out_dir, "timing.csv"),
               [{"approach": name, "train_seconds": seconds} for name, seconds in timing.items()],
               ("approach", "train_seconds"))
    title = (f"{task}: YOTO vs {len(lambdas)} fixed models, {steps} steps each, "
             f"batch {adapter.settings.batch_size}, {adapter.settings.image_size}px, "
             f"{keras.backend.backend()} backend"
             + (f"; up to {workers} models trained at once (their times overlap)" if workers > 1 else ""))
    plot(summary, timing, yoto, adapter.metric_name, tolerance, title,
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
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_bool("cosine_decay", False, "Decay every model's learning rate to 0 over its "
                      "steps (cosine), so each ends annealed.")
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
                               f.eval_data, f.style_image, f.vgg_weights, f.train_examples,
                               cache_dir=f.out_dir)
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
        yoto_range=yoto_range, equal_compute_yoto=f.equal_compute_yoto, learning_rate=f.learning_rate,
        cosine_decay=f.cosine_decay,
        tolerance=f.tolerance, workers=f.workers, settings=settings,
    )


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
