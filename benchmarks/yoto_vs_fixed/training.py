"""Training the harness's models: what determines one (:class:`ModelSpec`), training it,
and the store that keeps finished models so an interrupted run resumes without retraining
them (in worker processes with ``workers > 1``)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import time
from typing import Callable, Sequence

import keras

from yoto_tf.coefficients import LossSpace
from yoto_tf.files import save_keras_atomically, write_json_atomically

from benchmarks.yoto_vs_fixed.adapters import ADAPTERS, HarnessSettings, TaskAdapter, make_adapter


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """A model's learning rate: ``initial`` throughout, or with ``cosine_decay`` decayed to 0
    over the model's own steps (so every model ends annealed, whatever its length)."""

    initial: float = 1e-3
    cosine_decay: bool = False

    def for_steps(self, steps: int):
        """A float or a schedule, as ``adapter.optimizer`` takes."""
        if not self.cosine_decay:
            return self.initial
        return keras.optimizers.schedules.CosineDecay(self.initial, decay_steps=steps)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment: everything that determines it besides the task settings.

    Attributes:
      label: its name in the CSVs (``fixed_<lambda>``, ``yoto_w<width>``, or
        ``yoto_w<width>_<steps>steps`` for the equal-compute YOTO model), the same for
        every seed and learning rate.
      approach: ``"fixed"`` or ``"yoto"``.
      width_multiplier: network width multiplier.
      trained_lambda: the lambda a fixed model trains at (None for YOTO).
      loss_space: its LossSpace (fixed at ``trained_lambda``, or the YOTO range).
      steps: its training steps.
      seed: seed of its weights, lambda sampling and training batches.
      learning_rate: its learning rate.
      kl_warmup_steps: the KL warm-up length (beta-VAE; 0: none).
    """

    label: str
    approach: str
    width_multiplier: float
    trained_lambda: float | None
    loss_space: LossSpace
    steps: int
    seed: int = 0
    learning_rate: LearningRate = LearningRate()
    kl_warmup_steps: int = 0

    @property
    def key(self) -> str:
        """Its file name in a :class:`ModelStore`: label, seed and learning rate."""
        return f"{self.label}_seed{self.seed}_lr{self.learning_rate.initial:g}"

    @property
    def description(self) -> str:
        return f"{self.label} (seed {self.seed}, lr {self.learning_rate.initial:g})"

    def shortened(self, fraction: float) -> ModelSpec:
        """This recipe at ``fraction`` of its length: steps and KL warm-up scaled alike (a
        cosine decay then spans the shorter run too). A learning-rate sweep trains these."""
        return dataclasses.replace(self, steps=max(1, round(self.steps * fraction)),
                                   kl_warmup_steps=round(self.kl_warmup_steps * fraction))


@dataclasses.dataclass
class TrainedModel:
    spec: ModelSpec
    network: keras.Model
    train_seconds: float


def train_one(adapter: TaskAdapter, spec: ModelSpec) -> tuple[keras.Model, float]:
    """Trains one model; returns its network and the fit wall time (s)."""
    keras.utils.set_random_seed(spec.seed)
    # Only the beta-VAE has a KL warm-up: other adapters keep the three-argument builder.
    options = {"kl_warmup_steps": spec.kl_warmup_steps} if spec.kl_warmup_steps else {}
    model = adapter.build_model(spec.loss_space, spec.width_multiplier, spec.seed, **options)
    model.compile(optimizer=adapter.optimizer(spec.learning_rate.for_steps(spec.steps)))
    dataset = adapter.train_dataset(adapter.settings.batch_size, spec.seed)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=spec.steps, epochs=1, shuffle=False, verbose=0)
    return model.network, time.perf_counter() - start


def recipe(adapter: TaskAdapter, spec: ModelSpec) -> dict:
    """What determines a trained model: a saved one is reused only if this matches."""
    settings = dataclasses.asdict(adapter.settings)
    for unrelated in ("eval_examples", "eval_data", "cache_dir"):
        settings.pop(unrelated)
    defaults = HarnessSettings()
    for adapter_class in ADAPTERS.values():
        for name in adapter_class.own_settings:
            # Other tasks' own settings do not matter here; this task's count only when not
            # at their defaults, so adding a setting keeps the saved models reusable.
            if adapter_class.name != adapter.name or settings[name] == getattr(defaults, name):
                settings.pop(name, None)
    settings["data_seed"] = settings.pop("seed")
    return {"task": adapter.name, "key": spec.key, "label": spec.label, "seed": spec.seed,
            "width_multiplier": spec.width_multiplier, "loss_space": spec.loss_space.get_config(),
            "steps": spec.steps, "learning_rate": dataclasses.asdict(spec.learning_rate),
            "kl_warmup_steps": spec.kl_warmup_steps, "backend": keras.backend.backend(), **settings}


class ModelStore:
    """Trained networks saved under ``directory`` as ``<key>.keras`` plus ``<key>.json``
    (the recipe and the training seconds; the key names label, seed and learning rate), so
    a rerun of the same experiment (e.g. after it was killed) reuses every model that
    already finished. Files are written atomically."""

    def __init__(self, directory: str):
        self.directory = directory

    def _paths(self, key: str) -> tuple[str, str]:
        base = os.path.join(self.directory, key)
        return base + ".keras", base + ".json"

    def has(self, recipe: dict) -> bool:
        """Whether a network trained with exactly ``recipe`` is saved."""
        model_path, info_path = self._paths(recipe["key"])
        if not (os.path.exists(model_path) and os.path.exists(info_path)):
            return False
        with open(info_path) as f:
            return json.load(f).get("recipe") == json.loads(json.dumps(recipe))

    def load(self, recipe: dict) -> tuple[keras.Model, float]:
        """The saved network of ``recipe`` (see :meth:`has`) and its training seconds."""
        model_path, info_path = self._paths(recipe["key"])
        with open(info_path) as f:
            seconds = float(json.load(f)["train_seconds"])
        return keras.saving.load_model(model_path, compile=False), seconds

    def save(self, recipe: dict, network: keras.Model, train_seconds: float) -> None:
        os.makedirs(self.directory, exist_ok=True)
        model_path, info_path = self._paths(recipe["key"])
        save_keras_atomically(network, model_path)
        # last: it marks the model as finished
        write_json_atomically(info_path, {"recipe": recipe, "train_seconds": train_seconds}, indent=1)


def _train_and_save(adapter: TaskAdapter, spec: ModelSpec, store: ModelStore) -> float:
    network, seconds = train_one(adapter, spec)
    store.save(recipe(adapter, spec), network, seconds)
    return seconds


def _train_in_worker(task: str, settings: HarnessSettings, spec: ModelSpec, store_directory: str) -> float:
    """A worker process's job: build the task's adapter, train one model, save it."""
    return _train_and_save(make_adapter(task, settings), spec, ModelStore(store_directory))


def train_models(adapter: TaskAdapter, specs: Sequence[ModelSpec], store: ModelStore,
                 workers: int = 1, log: Callable[[str], None] = print) -> list[TrainedModel]:
    """Trains every model of ``specs`` not already in ``store`` (in order, or in ``workers``
    parallel processes), then loads them all from the store."""
    missing = [spec for spec in specs if not store.has(recipe(adapter, spec))]
    for spec in specs:
        if spec not in missing:
            log(f"{spec.description}: reusing the model saved in {store.directory}")
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
            futures = {pool.submit(_train_in_worker, adapter.name, adapter.settings, spec,
                                   store.directory): spec for spec in missing}
            for future in concurrent.futures.as_completed(futures):
                spec = futures[future]
                log(f"{spec.description}: {spec.steps} steps in {future.result():.1f} s")
    else:
        for spec in missing:
            seconds = _train_and_save(adapter, spec, store)
            log(f"{spec.description}: {spec.steps} steps in {seconds:.1f} s")
    trained = []
    for spec in specs:
        network, seconds = store.load(recipe(adapter, spec))
        trained.append(TrainedModel(spec, network, seconds))
    return trained
