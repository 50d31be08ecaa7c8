"""The report of the YOTO-versus-fixed harness: the CSVs, the YOTO / fixed ratios with their
bootstrap intervals and verdicts (see ``bootstrap``), the plot."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from benchmarks.yoto_vs_fixed.bootstrap import CONFIDENCE, ratio_interval, verdict
from yoto_tf.files import save_figure_atomically, write_csv_atomically

RESULT_COLUMNS = (
    "task", "model", "approach", "seed", "width_multiplier", "trained_lambda", "eval_lambda",
    "metric_name", "metric", "learning_rate", "kl_warmup_steps", "train_seconds", "steps",
)
EXAMPLE_COLUMNS = ("model", "seed", "eval_lambda", "example", "metric")  # then the terms
# then per YOTO label: <label>_metric, _ratio, _ratio_low, _ratio_high, _verdict
SUMMARY_COLUMNS = ("eval_lambda", "seeds", "examples", "fixed_metric")
SWEEP_COLUMNS = ("model", "approach", "learning_rate", "steps", "kl_warmup_steps", "seed",
                 "validation_score", "chosen", "train_seconds")
BD_COLUMNS = ("model", "seed", "bd_rate_percent", "points", "note")

# (model label, seed, evaluation lambda) -> per-example arrays [N]: "metric" and every term.
Examples = Mapping[tuple[str, int, float], Mapping[str, np.ndarray]]


def summarize(rows: Sequence[dict], examples: Examples, lambdas: Sequence[float],
              yoto_labels: Sequence[str], tolerance: float) -> list[dict]:
    """Per lambda: the metric of the fixed model trained at it and of each YOTO model
    (``<label>_metric``, means over seeds and examples), the ratio YOTO / fixed
    (``<label>_ratio``: mean over seeds of the per-seed ratio), its bootstrap interval
    (``<label>_ratio_low``, ``<label>_ratio_high``) and verdict (``<label>_verdict``, see
    ``bootstrap.verdict``). Every seed of ``rows`` must hold every model."""
    seeds = sorted({r["seed"] for r in rows})
    summary = []
    for value in lambdas:
        fixed_label = next(r["model"] for r in rows if r["approach"] == "fixed" and r["trained_lambda"] == value)
        fixed = np.stack([examples[(fixed_label, seed, value)]["metric"] for seed in seeds])
        entry = {"eval_lambda": value, "seeds": len(seeds), "examples": fixed.shape[1],
                 "fixed_metric": float(fixed.mean())}
        for label in yoto_labels:
            yoto = np.stack([examples[(label, seed, value)]["metric"] for seed in seeds])
            interval = ratio_interval(yoto, fixed)
            entry.update({
                f"{label}_metric": float(yoto.mean()), f"{label}_ratio": interval.ratio,
                f"{label}_ratio_low": interval.low, f"{label}_ratio_high": interval.high,
                f"{label}_verdict": verdict(interval.low, interval.high, tolerance),
            })
        summary.append(entry)
    return summary


def bd_rate_rows(rows: Sequence[dict], yoto_labels: Sequence[str], rate: str, quality: str) -> list[dict]:
    """Bjontegaard delta rate (%) of each YOTO model's curve against the fixed models' curve,
    per seed and as the mean over seeds (``seed`` = ``"mean"``): the fixed curve has one
    point per fixed model, measured at its own lambda; the YOTO curve one per evaluation
    lambda. Points are the held-out means of ``rate`` and ``quality`` (e.g. bpp and PSNR in
    dB); negative = YOTO needs fewer bits for the same quality. A seed whose curves do not
    overlap in quality gets no value and a ``note`` (the mean then covers the other seeds); a
    curve whose quality does not rise with the rate is noted (an undertrained model)."""
    from yoto_tf.compression.evaluation import Curve, bjontegaard_row

    def curve(name, selected):
        selected = sorted(selected, key=lambda r: r[rate])
        return Curve(name, np.array([r[rate] for r in selected]), np.array([r[quality] for r in selected]), None)

    result = []
    for label in yoto_labels:
        per_seed = []
        for seed in sorted({r["seed"] for r in rows}):
            fixed = curve("fixed", (r for r in rows if r["seed"] == seed and r["approach"] == "fixed"
                                    and r["eval_lambda"] == r["trained_lambda"]))
            yoto = curve(label, (r for r in rows if r["seed"] == seed and r["model"] == label))
            bd = bjontegaard_row(yoto, fixed)  # notes a failed fit and curves that do not rise
            per_seed.append({"model": label, "seed": seed, "bd_rate_percent": bd["bd_rate_psnr_percent"],
                             "points": len(yoto.bpp), "note": bd["note"]})
        values = [r["bd_rate_percent"] for r in per_seed if r["bd_rate_percent"] is not None]
        result += per_seed + [{
            "model": label, "seed": "mean", "points": per_seed[0]["points"],
            "bd_rate_percent": float(np.mean(values)) if values else None,
            "note": f"{len(values)} of {len(per_seed)} seeds" + (
                f", range {min(values):+.2f} .. {max(values):+.2f} %" if values else "") + (
                f"; {sum(bool(r['note']) for r in per_seed)} seed(s) with a note"
                if any(r["note"] for r in per_seed) else ""),
        }]
    return result


def bd_rate_lines(bd_rows: Sequence[dict], yoto: Mapping[str, str], quality: str) -> list[str]:
    """One line per YOTO model: its mean BD-rate against the fixed models and the range."""
    return [f"BD-rate ({quality}) of {yoto[r['model']]} vs the fixed models' curve: "
            + ("undefined" if r["bd_rate_percent"] is None else f"{r['bd_rate_percent']:+.2f} %")
            + f" (mean over seeds; {r['note']})"
            for r in bd_rows if r["seed"] == "mean"]


def verdict_lines(summary: Sequence[dict], yoto: Mapping[str, str], tolerance: float) -> list[str]:
    """One line per (lambda, YOTO model): the ratio, its interval and the verdict."""
    lines = []
    for entry in summary:
        for label, name in yoto.items():
            lines.append(
                f"lambda {entry['eval_lambda']:g}: {name} / fixed = {entry[f'{label}_ratio']:.4f}, "
                f"{CONFIDENCE:.0%} interval [{entry[f'{label}_ratio_low']:.4f}, "
                f"{entry[f'{label}_ratio_high']:.4f}] ({entry['seeds']} seeds x {entry['examples']} "
                f"examples): {entry[f'{label}_verdict']} (tolerance {tolerance:.0%})")
    return lines


def example_rows(examples: Examples) -> list[dict]:
    """The rows of ``examples.csv``: one per (model, seed, evaluation lambda, example)."""
    rows = []
    for (label, seed, value), arrays in examples.items():
        names = ["metric"] + [name for name in arrays if name != "metric"]
        for i in range(len(arrays["metric"])):
            rows.append({"model": label, "seed": seed, "eval_lambda": value, "example": i,
                         **{name: float(arrays[name][i]) for name in names}})
    return rows


def write_csv(path: str, rows: Sequence[dict], first_columns: Sequence[str]) -> None:
    columns = list(first_columns)
    for row in rows:
        columns += [key for key in row if key not in columns]
    write_csv_atomically(path, rows, columns)


def plot(summary: Sequence[dict], timing: Mapping[str, float], yoto: Mapping[str, str],
         metric_name: str, tolerance: float, title: str, path: str,
         sweep_timing: Mapping[str, float] | None = None) -> None:
    """Left: the metric of every approach at every lambda; middle: YOTO / fixed with the
    bootstrap intervals and the tolerance band; right: the training time per approach and
    seed (stacked on it, the learning-rate sweep's total, if any). ``yoto`` maps each YOTO
    label to its legend name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (values, ratios, times) = plt.subplots(
        1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 3, 2]})
    lambdas = np.array([s["eval_lambda"] for s in summary])
    values.plot(lambdas, [s["fixed_metric"] for s in summary], marker="s", color="C7",
                label="fixed model trained at lambda")
    for i, (label, name) in enumerate(yoto.items()):
        values.plot(lambdas, [s[f"{label}_metric"] for s in summary], marker="o", color=f"C{i}", label=name)
        ratio = np.array([s[f"{label}_ratio"] for s in summary])
        errors = [ratio - [s[f"{label}_ratio_low"] for s in summary],
                  np.array([s[f"{label}_ratio_high"] for s in summary]) - ratio]
        shifted = lambdas * 1.04 ** (i - (len(yoto) - 1) / 2)  # side by side on the log axis
        ratios.errorbar(shifted, ratio, yerr=errors, marker="o", capsize=3, color=f"C{i}", label=name)
    values.set_ylabel(f"{metric_name} (held-out, lower is better)")
    ratios.axhline(1.0, color="k", lw=0.8)
    ratios.axhspan(1.0 - tolerance, 1.0 + tolerance, color="g", alpha=0.12,
                   label=f"within {tolerance:.0%}")
    seeds = summary[0]["seeds"] if summary else 0
    ratios.set_ylabel(f"{metric_name}: YOTO / fixed model at lambda")
    ratios.set_title(f"mean over {seeds} seed(s), {CONFIDENCE:.0%} bootstrap interval "
                     "(seeds and examples)", fontsize=9)
    for ax in (values, ratios):
        ax.set_xscale("log")
        ax.set_xlabel("lambda (evaluation)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    names = list(timing)
    colors = ["C7"] + [f"C{i}" for i in range(len(names) - 1)]
    times.bar(range(len(names)), [timing[n] for n in names], color=colors, label="training")
    if sweep_timing:
        times.bar(range(len(names)), [sweep_timing.get(n, 0.0) for n in names],
                  bottom=[timing[n] for n in names], color=colors, alpha=0.35, hatch="//",
                  label="learning-rate sweep")
        times.legend(fontsize=8)
    times.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    times.set_ylabel("training time per seed [s]" + (" (+ the sweep, once)" if sweep_timing else ""))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure_atomically(fig, path, dpi=110)
    plt.close(fig)
