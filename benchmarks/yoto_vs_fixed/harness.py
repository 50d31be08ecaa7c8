"""The experiment: plan the models, train them (or reuse the saved ones; in worker processes
with --workers), evaluate them at every lambda, and write the report."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import time
from typing import Callable, Sequence

import keras

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.files import save_keras_atomically, write_atomically

from benchmarks.yoto_vs_fixed.adapters import ADAPTERS, HarnessSettings, TaskAdapter, make_adapter
from benchmarks.yoto_vs_fixed.report import RESULT_COLUMNS, SUMMARY_COLUMNS, plot, summarize, write_csv


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


def _yoto_name(spec: ModelSpec, steps: int) -> str:
    """The plot / timing name of a YOTO model (its steps shown if not the common ``steps``)."""
    name = f"YOTO w x{spec.width_multiplier:g}"
    return name if spec.steps == steps else f"{name}, {spec.steps} steps"


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
    write_csv(os.path.join(out_dir, "results.csv"), rows, RESULT_COLUMNS)
    write_csv(os.path.join(out_dir, "summary.csv"), summary, SUMMARY_COLUMNS)
    write_csv(os.path.join(out_dir, "timing.csv"),
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

