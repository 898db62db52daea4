"""``adaptvis curves TRACE``: accuracy per gold relation against alpha, from one sweep trace (Figure 8).

For every task in the trace and every gold relation (WhatsUp: the gold answer word; VSR: the
caption's ``relation``), the accuracy of the sweep answers at each alpha (scored by the task's own
``process_results``, metric ``accuracy``), and the mean confidence ``C`` of those documents.

The trace records ``C`` under alpha = 1 only (the value AdaptVis thresholds; the decoder does not
compute first-token probabilities for the other alphas), so ``mean_confidence`` is that of the
unintervened model, one value per relation. Writes ``curves.csv`` and ``curves.png`` into
``--output-dir`` and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptvis_tasks.analysis.common import (
    AnalysisError,
    add_format_argument,
    csv_table,
    emit,
    json_text,
    markdown_table,
    run_tool,
)
from adaptvis_tasks.analysis.tune import SweepTask, load_sweep, scoring_module
from adaptvis_tasks.scoring import mean

COLUMNS = ["task", "relation", "alpha", "n", "accuracy", "mean_confidence"]


def relation_of(doc: dict[str, Any]) -> str:
    """The gold relation a document is grouped by (lowercased)."""
    if doc.get("subset") == "vsr_zeroshot":
        return str(doc.get("relation", "?")).strip().lower()
    return str(doc["answer"][0]).strip().lower()


def curve_rows(task: SweepTask) -> list[dict[str, Any]]:
    """One row per (relation, alpha), relations sorted, plus ``all``; alphas ascending."""
    module = scoring_module(task)
    alphas = sorted(set.intersection(*(set(d.answers) for d in task.docs)))
    groups: dict[str, list] = {}
    for doc in task.docs:
        groups.setdefault(relation_of(doc.doc), []).append(doc)
    groups["all"] = list(task.docs)
    rows = []
    for relation in [*sorted(k for k in groups if k != "all"), "all"]:
        docs = groups[relation]
        confidence = mean(d.confidence for d in docs)
        for alpha in alphas:
            correct = [float(module.process_results(d.doc, [d.answers[alpha]])["accuracy"]) for d in docs]
            rows.append(
                {
                    "task": task.task,
                    "relation": relation,
                    "alpha": alpha,
                    "n": len(docs),
                    "accuracy": mean(correct),
                    "mean_confidence": confidence,
                }
            )
    return rows


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel per task: accuracy against alpha, one line per relation (legend: mean C at alpha = 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        relations = list(dict.fromkeys(r["relation"] for r in rows if r["task"] == task))
        for relation in relations:
            points = [r for r in rows if r["task"] == task and r["relation"] == relation]
            style = {"color": "black", "linewidth": 2.5} if relation == "all" else {}
            label = f"{relation} (n={points[0]['n']}, C={points[0]['mean_confidence']:.2f})"
            axis.plot([p["alpha"] for p in points], [p["accuracy"] for p in points], marker="o", label=label, **style)
        axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        axis.set_title(task)
        axis.set_xlabel("alpha (image-attention scaling)")
        axis.set_ylabel("accuracy")
        axis.set_ylim(-0.02, 1.02)
        axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adaptvis curves``."""
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("trace", type=Path, help="trace JSONL of a method=sweep run")
    parser.add_argument("--output-dir", type=Path, default=Path("."), help="where curves.csv/png go (default .)")
    parser.add_argument("--run", help="the run fingerprint to use when the trace holds several sweep runs")
    add_format_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``adaptvis curves``."""

    def body() -> int:
        rows = [row for task in load_sweep(args.trace, args.run) for row in curve_rows(task)]
        if not rows:
            raise AnalysisError(f"{args.trace}: no documents to plot")
        csv_path = args.output_dir / "curves.csv"
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        csv_path.write_text(csv_table(rows, COLUMNS), encoding="utf-8")
        png = plot(rows, args.output_dir / "curves.png")
        text = {"markdown": markdown_table, "csv": lambda r, c: csv_table(r, c)}.get(args.format)
        emit(text(rows, COLUMNS) if text else json_text(rows), args.output)
        print(f"wrote {csv_path} and {png}", file=sys.stderr)
        return 0

    return run_tool(body)
