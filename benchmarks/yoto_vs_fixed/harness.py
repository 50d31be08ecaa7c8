"""The experiment: plan the models, choose each one's learning rate (an optional sweep),
train every model with every seed (or reuse the saved ones; see ``training``), evaluate them
at every lambda, and write the report."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from yoto_tf.coefficients import Coefficient, LossSpace
from yoto_tf.files import write_text_atomically

from benchmarks.yoto_vs_fixed.adapters import HarnessSettings, TaskAdapter, make_adapter
from benchmarks.yoto_vs_fixed.report import (
    BD_COLUMNS, EXAMPLE_COLUMNS, RESULT_COLUMNS, SUMMARY_COLUMNS, SWEEP_COLUMNS, Examples, bd_rate_lines,
    bd_rate_rows, example_rows, plot, summarize, verdict_lines, write_csv,
)
from benchmarks.yoto_vs_fixed.training import LearningRate, ModelSpec, ModelStore, TrainedModel, train_models


def fixed_loss_space(space: LossSpace, coefficient: str, value: float) -> LossSpace:
    """``space`` with ``coefficient`` fixed at ``value`` and every other one fixed at its
    default: the LossSpace of a model trained for that single weighting."""
    space.make(**{coefficient: value})  # ValueError naming the range if outside
    return LossSpace([
        Coefficient.fixed(c.name, value if c.name == coefficient else c.default)
        for c in space.coefficients
    ])


def plan_models(adapter: TaskAdapter, lambdas: Sequence[float], yoto_space: LossSpace, steps: int,
                width_multiplier: float, yoto_width_multipliers: Sequence[float],
                equal_compute_yoto: bool, kl_warmup_steps: int = 0) -> list[ModelSpec]:
    """The K fixed models, one YOTO model per width (all ``steps`` steps), and optionally a
    YOTO model of the fixed models' width trained K x ``steps`` (the fixed models' total);
    seed and learning rate at their defaults (the caller sets them)."""
    specs = [ModelSpec(f"fixed_{value:g}", "fixed", width_multiplier, value,
                       fixed_loss_space(yoto_space, adapter.coefficient, value), steps)
             for value in lambdas]
    specs += [ModelSpec(f"yoto_w{width:g}", "yoto", width, None, yoto_space, steps)
              for width in yoto_width_multipliers]
    if equal_compute_yoto:
        long_steps = len(lambdas) * steps
        specs.append(ModelSpec(f"yoto_w{width_multiplier:g}_{long_steps}steps", "yoto",
                               width_multiplier, None, yoto_space, long_steps))
    return [dataclasses.replace(spec, kl_warmup_steps=kl_warmup_steps) for spec in specs]


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """The grid sorted; raises ValueError unless it has at least 2 distinct values."""
    lambdas = sorted(float(v) for v in lambdas)
    if len(lambdas) < 2 or len(set(lambdas)) != len(lambdas):
        raise ValueError(f"Give at least 2 distinct lambdas, got {lambdas}.")
    return lambdas


def parse_seeds(values: Sequence[str], first: int = 0) -> list[int]:
    """The training seeds from ``--seeds``: one number N means N seeds ``first .. first +
    N - 1``; several numbers are the seeds themselves. Raises ValueError naming the form."""
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--seeds must be a count N or a list of seeds, got {list(values)}.") from None
    if len(numbers) == 1:
        if numbers[0] < 1:
            raise ValueError(f"--seeds N needs N >= 1, got {numbers[0]}.")
        return list(range(first, first + numbers[0]))
    return numbers


def check_options(adapter: TaskAdapter, steps: int, seeds: Sequence[int], learning_rates: Sequence[float],
                  sweep_steps: int | None, kl_warmup_steps: int) -> tuple[list[int], list[float], int]:
    """Validates the seeds, learning rates, sweep length and KL warm-up before any training.

    Returns:
      The seeds, the learning rates (as floats) and the sweep steps (``sweep_steps``, or
      ``steps // 5`` if None or 0; only used with 2 or more learning rates).

    Raises:
      ValueError: repeated or no seeds or rates, a rate <= 0, a sweep longer than the
        training, a negative warm-up or one not shorter than ``steps``, or a warm-up for a
        task without a KL term.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Give one or more distinct seeds, got {seeds}.")
    rates = [float(r) for r in learning_rates]
    if not rates or len(set(rates)) != len(rates) or min(rates) <= 0:
        raise ValueError(f"Give one or more distinct positive learning rates, got {rates}.")
    sweep_steps = sweep_steps or max(1, steps // 5)
    if len(rates) > 1 and not 1 <= sweep_steps <= steps:
        raise ValueError(f"--sweep_steps must be in [1, --steps = {steps}], got {sweep_steps}.")
    if kl_warmup_steps:
        if not adapter.supports_kl_warmup:
            raise ValueError(f"--kl_warmup_steps: the {adapter.name} task has no KL term (beta_vae has).")
        if not 0 < kl_warmup_steps < steps:
            raise ValueError(f"--kl_warmup_steps must be in [0, --steps = {steps}), got {kl_warmup_steps}.")
    return seeds, rates, sweep_steps


def evaluate_models(adapter: TaskAdapter, models: Sequence[TrainedModel], yoto_space: LossSpace,
                    lambdas: Sequence[float]) -> tuple[list[dict], dict]:
    """Every model on the held-out examples at every lambda of the grid (a fixed model runs
    at its own lambda, its terms weighted by the evaluation lambda).

    Returns:
      One result row per (model, seed, evaluation lambda), with the means over examples,
      and the per-example arrays (``report.Examples``).
    """
    rows, examples = [], {}
    for trained in models:
        spec = trained.spec
        own = None
        if spec.approach == "fixed":
            own = adapter.evaluate(trained.network, spec.loss_space.default())
        for value in lambdas:
            lam = yoto_space.make(**{adapter.coefficient: value})
            measurements = own if own is not None else adapter.evaluate(trained.network, lam)
            metric = np.asarray(adapter.metric(measurements, lam, yoto_space), np.float64)
            examples[(spec.label, spec.seed, value)] = {"metric": metric, **measurements}
            rows.append({
                "task": adapter.name, "model": spec.label, "approach": spec.approach, "seed": spec.seed,
                "width_multiplier": spec.width_multiplier,
                "trained_lambda": "" if spec.trained_lambda is None else spec.trained_lambda,
                "eval_lambda": value, "metric_name": adapter.metric_name, "metric": float(metric.mean()),
                "learning_rate": spec.learning_rate.initial, "kl_warmup_steps": spec.kl_warmup_steps,
                "train_seconds": trained.train_seconds, "steps": spec.steps,
                **{name: float(np.mean(values)) for name, values in measurements.items()},
            })
    return rows, examples


def validation_score(adapter: TaskAdapter, trained: TrainedModel, yoto_space: LossSpace,
                     lambdas: Sequence[float]) -> float:
    """The learning-rate sweep's criterion on the validation split (lower is better): a fixed
    model's metric at its own lambda; a YOTO model's geometric mean of its metric over the
    grid (each lambda counts relatively: the metric's scale changes by orders of magnitude
    across it). ``inf`` if a metric is not finite (a diverged model)."""
    spec = trained.spec
    logs = []
    for value in [spec.trained_lambda] if spec.approach == "fixed" else lambdas:
        lam = yoto_space.make(**{adapter.coefficient: value})
        own = spec.loss_space.default() if spec.approach == "fixed" else lam
        measured = adapter.evaluate(trained.network, own, split="validation")
        mean = float(np.mean(adapter.metric(measured, lam, yoto_space)))
        if not math.isfinite(mean):
            return math.inf
        if mean <= 0:
            raise ValueError(f"The sweep's geometric mean needs a positive metric, got {mean} "
                             f"for {spec.description} at lambda {value:g}.")
        logs.append(math.log(mean))
    return math.exp(sum(logs) / len(logs))


def choose_learning_rates(adapter: TaskAdapter, specs: Sequence[ModelSpec], rates: Sequence[float],
                          fraction: float, seed: int, store: ModelStore, yoto_space: LossSpace,
                          lambdas: Sequence[float], workers: int = 1,
                          log: Callable[[str], None] = print) -> tuple[dict[str, LearningRate], list[dict]]:
    """The learning-rate sweep: every model of ``specs`` trained at every rate of ``rates``
    with ``seed``, each run its recipe shortened to ``fraction`` (see
    ``ModelSpec.shortened``: the same budget for fixed and YOTO models), then scored with
    :func:`validation_score`.

    Returns:
      Each label's chosen learning rate (the lowest score; ties: the first rate), and the
      rows of ``sweep.csv`` (one per model and rate).
    """
    sweep = [dataclasses.replace(spec.shortened(fraction), seed=seed,
                                 learning_rate=dataclasses.replace(spec.learning_rate, initial=rate))
             for spec in specs for rate in rates]
    trained = train_models(adapter, sweep, store, workers=workers, log=log)
    rows = [{"model": t.spec.label, "approach": t.spec.approach, "learning_rate": t.spec.learning_rate.initial,
             "steps": t.spec.steps, "kl_warmup_steps": t.spec.kl_warmup_steps, "seed": seed,
             "validation_score": validation_score(adapter, t, yoto_space, lambdas),
             "train_seconds": t.train_seconds} for t in trained]
    chosen = {}
    for spec in specs:
        best = min((row for row in rows if row["model"] == spec.label), key=lambda row: row["validation_score"])
        chosen[spec.label] = dataclasses.replace(spec.learning_rate, initial=best["learning_rate"])
        log(f"{spec.label}: learning rate {best['learning_rate']:g} (validation score "
            f"{best['validation_score']:.5g})")
    for row in rows:
        row["chosen"] = row["learning_rate"] == chosen[row["model"]].initial
    return chosen, rows


def _yoto_name(spec: ModelSpec, steps: int) -> str:
    """The plot / timing name of a YOTO model (its steps shown if not the common ``steps``)."""
    name = f"YOTO w x{spec.width_multiplier:g}"
    return name if spec.steps == steps else f"{name}, {spec.steps} steps"


def _timing(models: Sequence[TrainedModel], sweep_rows: Sequence[dict], yoto: Mapping[str, str],
            fixed_name: str) -> tuple[dict[str, float], dict[str, float]]:
    """Per approach: the training seconds per seed (mean over seeds; the fixed approach: its
    K models together), and the learning-rate sweep's total seconds."""
    def name(label, approach):
        return fixed_name if approach == "fixed" else yoto[label]

    seeds = {m.spec.seed for m in models}
    timing = {fixed_name: 0.0, **{n: 0.0 for n in yoto.values()}}
    for m in models:
        timing[name(m.spec.label, m.spec.approach)] += m.train_seconds / len(seeds)
    sweep = {n: 0.0 for n in timing}
    for row in sweep_rows:
        sweep[name(row["model"], row["approach"])] += row["train_seconds"]
    return timing, sweep


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
    seeds: Sequence[int] | None = None,
    learning_rates: Sequence[float] = (1e-3,),
    sweep_steps: int | None = None,
    cosine_decay: bool = False,
    kl_warmup_steps: int = 0,
    tolerance: float = 0.03,
    workers: int = 1,
    settings: HarnessSettings = HarnessSettings(),
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Runs the whole experiment and writes the CSVs and the plot; returns the summary rows.

    Trained networks go to ``<out_dir>/models`` (the sweep's to ``models/sweep``; see
    ``training.ModelStore``): rerunning the same experiment reuses every model that finished.

    Args:
      task: a name in ``ADAPTERS`` (built with ``settings``) or an adapter instance.
      equal_compute_yoto: also train a YOTO model of the fixed models' width for K x
        ``steps``, the fixed models' total.
      seeds: every model is trained once per seed (default: ``settings.seed`` only); the
        held-out and validation data stay those of ``settings.seed``.
      learning_rates: one rate for every model, or 2+ to sweep: each model is trained at
        each rate for ``sweep_steps`` (default ``steps // 5``) with the first seed, the best
        on the validation split is kept (see :func:`choose_learning_rates`).
      cosine_decay: decay every model's learning rate to 0 over its steps (cosine).
      kl_warmup_steps: beta-VAE: the KL weight ramps from 0 to its value over this many
        steps, in the fixed and YOTO models alike (0: no warm-up).
      tolerance: the margin of the verdicts and of the plot's band (see ``bootstrap.verdict``).
      workers: train up to this many models at once in separate processes (tasks of
        ``ADAPTERS`` only); worth it on a GPU or a many-core machine.

    Raises:
      ValueError: unknown task, fewer than 2 lambdas, a lambda outside the YOTO range
        (the message names the range), or bad seeds, rates, sweep or warm-up (see
        :func:`check_options`).
    """
    lambdas = check_lambdas(lambdas)
    adapter = task if isinstance(task, TaskAdapter) else make_adapter(task, settings)
    task = adapter.name
    seeds, rates, sweep_steps = check_options(
        adapter, steps, [adapter.settings.seed] if seeds is None else seeds, learning_rates,
        sweep_steps, kl_warmup_steps)
    low, high = yoto_range or (None, None)
    yoto_space = adapter.loss_space(low, high)
    specs = [dataclasses.replace(spec, learning_rate=LearningRate(rates[0], cosine_decay))
             for spec in plan_models(adapter, lambdas, yoto_space, steps, width_multiplier,
                                     yoto_width_multipliers, equal_compute_yoto, kl_warmup_steps)]
    os.makedirs(out_dir, exist_ok=True)
    store = ModelStore(os.path.join(out_dir, "models"))
    sweep_rows = []
    if len(rates) > 1:
        chosen, sweep_rows = choose_learning_rates(
            adapter, specs, rates, sweep_steps / steps, seeds[0], ModelStore(os.path.join(store.directory, "sweep")),
            yoto_space, lambdas, workers=workers, log=log)
        specs = [dataclasses.replace(spec, learning_rate=chosen[spec.label]) for spec in specs]
        write_csv(os.path.join(out_dir, "sweep.csv"), sweep_rows, SWEEP_COLUMNS)
    # Seed by seed: an interrupted run has whole comparisons for its first seeds.
    models = train_models(adapter, [dataclasses.replace(spec, seed=seed) for seed in seeds for spec in specs],
                          store, workers=workers, log=log)

    rows, examples = evaluate_models(adapter, models, yoto_space, lambdas)
    yoto = {spec.label: _yoto_name(spec, steps) for spec in specs if spec.approach == "yoto"}
    summary = summarize(rows, examples, lambdas, list(yoto), tolerance)
    timing, sweep_timing = _timing(models, sweep_rows, yoto, f"{len(lambdas)} fixed (w x{width_multiplier:g})")
    _write_report(out_dir, rows, examples, summary, timing, sweep_timing)
    title = (f"{task}: YOTO vs {len(lambdas)} fixed models, {steps} steps each, {len(seeds)} seed(s), "
             f"batch {adapter.settings.batch_size}, {adapter.settings.image_size}px, "
             f"{keras.backend.backend()} backend"
             + (f", KL warm-up {kl_warmup_steps} steps" if kl_warmup_steps else "")
             + (f"; lr from {{{', '.join(f'{r:g}' for r in rates)}}} by a {sweep_steps}-step sweep"
                if len(rates) > 1 else "")
             + (f"; up to {workers} models trained at once (their times overlap)" if workers > 1 else ""))
    plot(summary, timing, yoto, adapter.metric_name, tolerance, title,
         os.path.join(out_dir, "yoto_vs_fixed.png"), sweep_timing if sweep_rows else None)
    lines = verdict_lines(summary, yoto, tolerance)
    if adapter.rate_quality:
        bd_rows = bd_rate_rows(rows, list(yoto), *adapter.rate_quality)
        write_csv(os.path.join(out_dir, "bd_rates.csv"), bd_rows, BD_COLUMNS)
        lines += bd_rate_lines(bd_rows, yoto, adapter.rate_quality[1])
    write_text_atomically(os.path.join(out_dir, "verdicts.txt"), "\n".join(lines) + "\n")
    for line in lines:
        log(line)
    return summary


def _write_report(out_dir: str, rows: Sequence[dict], examples: Examples, summary: Sequence[dict],
                  timing: Mapping[str, float], sweep_timing: Mapping[str, float]) -> None:
    write_csv(os.path.join(out_dir, "results.csv"), rows, RESULT_COLUMNS)
    write_csv(os.path.join(out_dir, "examples.csv"), example_rows(examples), EXAMPLE_COLUMNS)
    write_csv(os.path.join(out_dir, "summary.csv"), summary, SUMMARY_COLUMNS)
    write_csv(os.path.join(out_dir, "timing.csv"),
              [{"approach": name, "train_seconds": seconds, "sweep_seconds": sweep_timing[name]}
               for name, seconds in timing.items()],
              ("approach", "train_seconds", "sweep_seconds"))
