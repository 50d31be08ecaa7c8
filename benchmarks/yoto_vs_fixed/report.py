"""The report of the YOTO-versus-fixed harness: the CSVs, the YOTO / fixed ratios, the plot."""

from __future__ import annotations

import csv
from typing import Mapping, Sequence


RESULT_COLUMNS = (
    "task", "model", "approach", "width_multiplier", "trained_lambda", "eval_lambda",
    "metric_name", "metric", "train_seconds", "steps",
)
SUMMARY_COLUMNS = ("eval_lambda", "fixed_metric")  # then yoto_w{W}_metric, yoto_w{W}_ratio


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


def write_csv(path: str, rows: Sequence[dict], first_columns: Sequence[str]) -> None:
    columns = list(first_columns)
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


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

