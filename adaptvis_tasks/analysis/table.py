"""``adaptvis table RUN ...``: runs in the layout of the paper's Table 1, or leaderboard rows.

Rows are runs (named with ``--names`` or from their method and coefficients); columns are the
WhatsUp subsets present in the runs (Table 1 order first: Controlled_A, Controlled_B, COCO_one,
COCO_two, VG_one, VG_two; then any other ``whatsup_*`` task, e.g. synthetic subsets), each with
Acc and, where the task reports them, P-Acc / S-Acc; then VSR with Acc and F1 (``paper_f1``, the
paper's Table 2 F1). Values are x100 as in the paper; ``--baseline`` adds deltas against one row.

``--leaderboard`` writes one JSON line per run with its metrics and full provenance instead.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptvis_tasks.analysis.common import AnalysisError, csv_table, emit, json_text, run_tool
from adaptvis_tasks.analysis.compare import RunFiles, load_run

PAPER_SUBSETS = {
    "controlled_a": "Controlled_A",
    "controlled_b": "Controlled_B",
    "coco_one": "COCO_one",
    "coco_two": "COCO_two",
    "vg_one": "VG_one",
    "vg_two": "VG_two",
}
"""``whatsup_<key>`` task -> the paper's column name, in Table 1 order."""

WHATSUP_METRICS = (("accuracy", "Acc"), ("pair_accuracy", "P-Acc"), ("set_accuracy", "S-Acc"))
VSR_METRICS = (("accuracy", "Acc"), ("paper_f1", "F1"))
INTERVENTION_ARGS = ("method", "alpha", "alpha1", "alpha2", "threshold", "alphas", "layers", "confidence_rule")
SPLIT_SUFFIXES = {"_val": "val", "_test": "test"}


def spatial_column(task: str, per_category: bool) -> tuple[str, tuple[tuple[str, str], ...], tuple[int, str]] | None:
    """The column of one of lmms-eval's spatial tasks (``adaptvis_tasks.spatial``): its headline metric first,
    then, with ``per_category``, every other metric its ``metric_list`` reports (per-category accuracies)."""
    from adaptvis_tasks.spatial import SPATIAL_TASKS, TaskScoring, base_task_of

    base = base_task_of(task)
    if base is None:
        return None
    headline = SPATIAL_TASKS[base].headline_metric
    metrics = [(headline, headline)]
    if per_category:
        metrics += [(m, m) for m in TaskScoring(task).metrics if m != headline]
    return task, tuple(metrics), (len(PAPER_SUBSETS) + 2000 + list(SPATIAL_TASKS).index(base), task)


def column_of(task: str, per_category: bool = False) -> tuple[str, tuple[tuple[str, str], ...], tuple[int, str]] | None:
    """(column label, metrics, sort key) of a task, or None if the table has no place for it."""
    if (spatial := spatial_column(task, per_category)) is not None:
        return spatial
    base, split = task, None
    for suffix, name in SPLIT_SUFFIXES.items():
        if task.endswith(suffix):
            base, split = task[: -len(suffix)], name
    where = f" ({split})" if split else ""
    if base == "vsr_zeroshot":
        return f"VSR{where}", VSR_METRICS, (len(PAPER_SUBSETS) + 1000, task)
    if not base.startswith("whatsup_") or base in ("whatsup_val", "whatsup_test"):
        return None
    key = base[len("whatsup_") :]
    if key in PAPER_SUBSETS:
        return f"{PAPER_SUBSETS[key]}{where}", WHATSUP_METRICS, (list(PAPER_SUBSETS).index(key), task)
    return f"{key}{where}", WHATSUP_METRICS, (len(PAPER_SUBSETS), task)


def parse_model_args(text: str) -> dict[str, str]:
    """lmms-eval's ``k=v,k=v`` string as a dict (values kept as text)."""
    out = {}
    for part in (text or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def row_name(run: RunFiles) -> str:
    """``<checkpoint> <method>(<coefficients>)`` from the run's ``--model_args``."""
    args = parse_model_args(run.results.get("config", {}).get("model_args", ""))
    checkpoint = Path(args.get("pretrained", run.results.get("model_name", "?"))).name
    method = args.get("method", "baseline")
    coefficients = ",".join(
        [f"{k}={args[k]}" for k in INTERVENTION_ARGS[1:] if k in args] + _own_coefficients(args, method)
    )
    return f"{checkpoint} {method}" + (f"({coefficients})" if coefficients else "")


def _own_coefficients(args: dict[str, str], method: str) -> list[str]:
    """The run's arguments named after its method (``pai_*`` for ``method=pai``), in the order given.

    A method's own arguments carry its name as prefix (docs/guides/ADDING_A_METHOD.md), so row names need
    no list of them (this tool imports no model code, hence not the method registry).
    """
    return [f"{k}={v}" for k, v in args.items() if k.startswith(f"{method}_")]


def scale(task: str) -> float:
    """x100 for fractions; lmms-eval spatial tasks that report percentages (V*) are kept as they are."""
    from adaptvis_tasks.spatial import percent_factor

    return percent_factor(task)


def build_table(
    runs: Sequence[RunFiles], names: Sequence[str] | None, baseline: str | None, per_category: bool = False
) -> dict[str, Any]:
    """Columns present in any run, one row per run (x100), and deltas against ``baseline``."""
    if names is not None and len(names) != len(runs):
        raise AnalysisError(f"--names gives {len(names)} names for {len(runs)} runs")
    labels = list(names) if names is not None else [row_name(r) for r in runs]
    columns: dict[str, tuple[str, tuple[tuple[str, str], ...], tuple[int, str]]] = {}
    for run in runs:
        groups = {name for name, members in run.results.get("group_subtasks", {}).items() if members}
        for task, values in run.results.get("results", {}).items():
            placed = None if task in groups else column_of(task, per_category)
            if placed is None:
                continue
            label, metrics, order = placed
            if label in columns and columns[label][0] != task:
                raise AnalysisError(f"tasks {columns[label][0]} and {task} would share the column {label}")
            have = set(columns[label][1]) if label in columns else set()
            present = tuple((m, h) for m, h in metrics if (m, h) in have or f"{m},none" in values)
            columns[label] = (task, present, order)
    if not columns:
        raise AnalysisError("none of the runs has a WhatsUp or VSR task; the table has nothing to show")
    ordered = sorted(columns.items(), key=lambda item: item[1][2])
    header = [(label, task, metrics) for label, (task, metrics, _) in ordered]
    rows: list[dict[str, Any]] = []
    for label, run in zip(labels, runs, strict=True):
        cells = {}
        for column, task, metrics in header:
            values = run.results.get("results", {}).get(task, {})
            for metric, _ in metrics:
                value = values.get(f"{metric},none")
                cells[f"{column}|{metric}"] = scale(task) * value if isinstance(value, (int, float)) else None
        same = [row for row in rows if row["name"] == label]
        if same:
            _merge_into(same[0], run.name, cells)
        else:
            rows.append({"name": label, "source": run.name, "cells": cells})
    labels = [row["name"] for row in rows]
    base_index = _baseline_index(baseline, labels)
    if base_index is not None:
        base = rows[base_index]["cells"]
        for row in rows:
            row["deltas"] = {
                key: (None if value is None or base.get(key) is None else value - base[key])
                for key, value in row["cells"].items()
            }
    return {
        "columns": [
            {"label": c, "task": t, "metrics": [m for m, _ in ms], "headers": [h for _, h in ms]} for c, t, ms in header
        ],
        "rows": rows,
        "baseline": None if base_index is None else labels[base_index],
        "baseline_index": base_index,
    }


def _merge_into(row: dict[str, Any], source: str, cells: dict[str, float | None]) -> None:
    """Runs given the same ``--names`` label form one row (e.g. one method tuned per subset, run per subset);
    a column both runs report is refused rather than silently overwritten."""
    for key, value in cells.items():
        if value is None:
            continue
        if row["cells"].get(key) is not None:
            column = key.split("|", 1)[0]
            raise AnalysisError(
                f"runs {row['source']} and {source} share the row name {row['name']!r} and both report {column}; "
                "give them different --names"
            )
        row["cells"][key] = value
    row["source"] = f"{row['source']} + {source}"


def _baseline_index(baseline: str | None, labels: Sequence[str]) -> int | None:
    if baseline is None:
        return None
    if baseline.isdigit() and int(baseline) < len(labels):
        return int(baseline)
    if baseline in labels:
        return labels.index(baseline)
    raise AnalysisError(f"--baseline {baseline!r}: give a row index (0..{len(labels) - 1}) or a row name: {labels}")


def _cell(row: dict, key: str, with_delta: bool) -> str:
    value = row["cells"].get(key)
    if value is None:
        return "–"
    text = f"{value:.2f}"
    delta = row.get("deltas", {}).get(key) if with_delta else None
    return text + (f" ({delta:+.2f})" if delta is not None and with_delta else "")


def render(table: dict[str, Any], fmt: str) -> str:
    """Markdown, CSV (values and deltas in separate columns), LaTeX (booktabs) or JSON."""
    if fmt == "json":
        return json_text(table)
    keys = [(c["label"], m, h) for c in table["columns"] for m, h in zip(c["metrics"], c["headers"], strict=True)]
    rows = table["rows"]
    base = table["baseline"]
    base_index = table.get("baseline_index")
    if fmt == "csv":
        flat = []
        for row in rows:
            record = {"name": row["name"]}
            for label, metric, header in keys:
                record[f"{label} {header}"] = row["cells"].get(f"{label}|{metric}")
                if base is not None:
                    record[f"{label} {header} delta"] = row["deltas"].get(f"{label}|{metric}")
            flat.append(record)
        names = ["name"] + [
            f"{label} {header}" + suffix
            for label, _, header in keys
            for suffix in ([""] + ([" delta"] if base else []))
        ]
        return csv_table(flat, names)
    if fmt == "latex":
        spec = "l" + "".join("|" + "c" * len(c["metrics"]) for c in table["columns"])
        group = " & ".join(f"\\multicolumn{{{len(c['metrics'])}}}{{c}}{{{_tex(c['label'])}}}" for c in table["columns"])
        lines = [
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            f"Method & {group} \\\\",
            " & " + " & ".join(_tex(h) for _, _, h in keys) + " \\\\",
            "\\midrule",
        ]
        for index, row in enumerate(rows):
            cells = [
                _cell(row, f"{label}|{metric}", base is not None and index != base_index) for label, metric, _ in keys
            ]
            lines.append(_tex(row["name"]) + " & " + " & ".join(_tex(c) for c in cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines)
    header = ["Method", *(f"{label} {h}" for label, _, h in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(keys)) + "|"]
    for index, row in enumerate(rows):
        cells = [_cell(row, f"{label}|{metric}", base is not None and index != base_index) for label, metric, _ in keys]
        lines.append("| " + " | ".join([row["name"], *cells]) + " |")
    note = f"\n\nValues x100; deltas in parentheses against `{base}`." if base else "\n\nValues x100."
    return "\n".join(lines) + note


def _tex(text: str) -> str:
    return re.sub(r"([_&%#$])", r"\\\1", text).replace("–", "--")


# ----------------------------------------------------------------------------------------------
# Leaderboard
# ----------------------------------------------------------------------------------------------


def leaderboard_row(run: RunFiles, name: str) -> dict[str, Any]:
    """One run's metrics with everything needed to reproduce and trust it."""
    results = run.results
    config = results.get("config", {})
    args = parse_model_args(config.get("model_args", ""))
    suite = results.get("adaptvis_eval") or {}
    metrics = {
        task: {
            key.split(",")[0]: value
            for key, value in values.items()
            if "," in key and "stderr" not in key and isinstance(value, (int, float))
        }
        for task, values in results.get("results", {}).items()
    }
    return {
        "name": name,
        "source": run.name,
        "model": config.get("model"),
        "pretrained": args.get("pretrained", results.get("model_name")),
        "revision": args.get("revision"),
        "intervention": {k: args[k] for k in INTERVENTION_ARGS if k in args}
        | {"method": args.get("method", "baseline")},
        "dtype": args.get("dtype", "auto"),
        "attn_implementation": args.get("attn_implementation", "sdpa"),
        "batch_size": config.get("batch_size"),
        "limit": config.get("limit"),
        "model_args": config.get("model_args"),
        "adaptvis_eval_version": suite.get("version"),
        "adaptvis_eval_git_hash": suite.get("git_hash"),
        "lmms_eval_version": suite.get("lmms_eval") or results.get("lmms_eval_version"),
        "transformers_version": suite.get("transformers"),
        "torch_version": suite.get("torch"),
        "lmms_eval_git_hash_field": results.get("git_hash"),
        "task_hashes": results.get("task_hashes", {}),
        "task_versions": results.get("versions", {}),
        "n_samples": results.get("n-samples", {}),
        "date": results.get("date"),
        "metrics": metrics,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adaptvis table``."""
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("runs", nargs="+", type=Path, help="lmms-eval output folders or results JSON files")
    parser.add_argument(
        "--names",
        help="row names, comma separated, one per run (default: method and coefficients); runs given the same "
        "name (e.g. one method tuned and run per subset) form one row",
    )
    parser.add_argument("--baseline", help="row index or name to show deltas against")
    parser.add_argument("--format", choices=["markdown", "csv", "latex", "json"], default="markdown")
    parser.add_argument("--leaderboard", action="store_true", help="one JSON line per run with full provenance")
    parser.add_argument(
        "--per-category", action="store_true", help="lmms-eval spatial tasks: every metric, not just the headline one"
    )
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``adaptvis table``."""

    def body() -> int:
        runs = [load_run(path) for path in args.runs]
        names = [n.strip() for n in args.names.split(",")] if args.names else None
        if args.leaderboard:
            if names is not None and len(names) != len(runs):
                raise AnalysisError(f"--names gives {len(names)} names for {len(runs)} runs")
            labels = names or [row_name(r) for r in runs]
            lines = [json.dumps(leaderboard_row(r, n), ensure_ascii=False) for r, n in zip(runs, labels, strict=True)]
            emit("\n".join(lines), args.output)
            return 0
        table = build_table(runs, names, args.baseline, getattr(args, "per_category", False))
        emit(render(table, args.format), args.output)
        return 0

    return run_tool(body)
