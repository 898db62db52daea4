"""``adaptvis curves TRACE``: accuracy per gold relation against alpha, from one sweep trace (Figure 8).

For every task in the trace and every gold relation (WhatsUp: the gold answer word; VSR: the
caption's ``relation``), the accuracy of the sweep answers at each alpha (scored by the task's own
``process_results``, metric ``accuracy``), and the mean first-token confidence of those documents
under that alpha (the trace's ``confidences``; traces written before it was recorded only have
``C`` under alpha = 1, which is then used for every alpha, and the output says so). Writes
``curves.csv`` and ``curves.png`` into ``--output-dir`` and prints the table.
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
from adaptvis_tasks.analysis.tune import SweepDoc, SweepTask, load_sweep, scoring_module
from adaptvis_tasks.scoring import mean

COLUMNS = ["task", "relation", "alpha", "n", "accuracy", "mean_confidence"]


def relation_of(doc: dict[str, Any]) -> str:
    """The gold relation a document is grouped by (lowercased)."""
    if doc.get("subset") == "vsr_zeroshot":
        return str(doc.get("relation", "?")).strip().lower()
    return str(doc["answer"][0]).strip().lower()


def confidence_at(doc: SweepDoc, alpha: float) -> float:
    """The document's first-token confidence under ``alpha`` (C under alpha = 1 for older traces)."""
    if doc.confidences is not None and alpha in doc.confidences:
        return doc.confidences[alpha]
    return doc.confidence


def curve_rows(task: SweepTask) -> list[dict[str, Any]]:
    """One row per (relation, alpha), relations sorted, plus ``all``; alphas ascending."""
    module = scoring_module(task)
    alphas = sorted(set.intersection(*(set(d.answers) for d in task.docs)))
    groups: dict[str, list] = {}
    spatial = hasattr(module, "correct")  # lmms-eval spatial tasks: group by their category field
    for doc in task.docs:
        groups.setdefault(module.category(doc.doc) if spatial else relation_of(doc.doc), []).append(doc)
    groups["all"] = list(task.docs)
    rows = []
    for relation in [*sorted(k for k in groups if k != "all"), "all"]:
        docs = groups[relation]
        for alpha in alphas:
            correct = [_correct(module, d, alpha) for d in docs]
            rows.append(
                {
                    "task": task.task,
                    "relation": relation,
                    "alpha": alpha,
                    "n": len(docs),
                    "accuracy": mean(correct),
                    "mean_confidence": mean(confidence_at(d, alpha) for d in docs),
                }
            )
    return rows


def _correct(module: Any, doc: SweepDoc, alpha: float) -> float:
    """0/1 correctness of the sweep answer at ``alpha`` (headline metric for lmms-eval spatial tasks)."""
    if hasattr(module, "correct"):
        return module.correct(doc.doc, doc.answers[alpha])
    return float(module.process_results(doc.doc, [doc.answers[alpha]])["accuracy"])


ALL_COLOUR = "black"


def relation_colours(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One colour per relation for the whole figure (relations of every task, sorted; ``all`` black)."""
    from matplotlib import colormaps

    relations = sorted({r["relation"] for r in rows if r["relation"] != "all"})
    palette = colormaps["tab10" if len(relations) <= 10 else "tab20"].colors
    colours = {relation: _hex(palette[index % len(palette)]) for index, relation in enumerate(relations)}
    return {**colours, "all": ALL_COLOUR}


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgb[:3])


def figure_of(rows: Sequence[dict[str, Any]]):
    """Per task (a column): accuracy (top) and mean first-token confidence (bottom) against alpha.

    A relation has the same colour in every panel; each column's legend sits below its panels,
    outside the axes, so it never covers a point.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colours = relation_colours(rows)
    figure, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 8.5), squeeze=False)
    for column, task in enumerate(tasks):
        relations = list(dict.fromkeys(r["relation"] for r in rows if r["task"] == task))
        for row, (key, label) in enumerate((("accuracy", "accuracy"), ("mean_confidence", "mean confidence"))):
            axis = axes[row][column]
            for relation in relations:
                points = [r for r in rows if r["task"] == task and r["relation"] == relation]
                axis.plot(
                    [p["alpha"] for p in points],
                    [p[key] for p in points],
                    marker="o",
                    color=colours[relation],
                    linewidth=2.5 if relation == "all" else 1.8,
                    label=f"{relation} (n={points[0]['n']})",
                )
            axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
            axis.set_title(task if row == 0 else "")
            axis.set_xlabel("alpha (image-attention scaling)")
            axis.set_ylabel(label)
            axis.set_ylim(-0.02, 1.02)
        handles, labels = axes[1][column].get_legend_handles_labels()
        axes[1][column].legend(
            handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize="small", frameon=False
        )
    figure.tight_layout()
    return figure


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write :func:`figure_of` as a PNG."""
    import matplotlib.pyplot as plt

    figure = figure_of(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
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
