"""``adaptvis tune TRACE``: choose ScalingVis's alpha and AdaptVis's (alpha1, alpha2, beta) from ONE sweep run.

The paper (Appendix E.3) tunes on the 20% validation split by running every configuration: 5
ScalingVis runs and 2 x 3 x 8 = 48 AdaptVis runs per subset. A ``method=sweep`` run records, per
document, the confidence ``C`` under alpha = 1 and the answer under every alpha of the grid; every
configuration's answers follow from it without running the model again:

* ScalingVis(alpha): the sweep answer at ``alpha``;
* AdaptVis(alpha1, alpha2, beta): the sweep answer at ``adaptvis_alpha(C, beta, alpha1, alpha2)``
  -- the very function the decoder calls (``adaptvis_tasks.confidence``), so the choice is the
  one a real ``method=adapt_vis`` run makes.

Answers are scored with the task's own ``process_results`` and aggregation functions
(``adaptvis_tasks.whatsup`` / ``adaptvis_tasks.vsr``) on the document recorded in the trace.
The winner is the configuration with the highest ``--metric``; ties go to the configuration
that comes first in grid order (alpha ascending; AdaptVis by alpha1, then alpha2, then beta).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from adaptvis_tasks.analysis.common import (
    AnalysisError,
    add_format_argument,
    csv_table,
    emit,
    json_text,
    markdown_table,
    parse_float_list,
    read_jsonl,
    run_tool,
)
from adaptvis_tasks.confidence import CONFIDENCE_RULES, GATE_SIGNALS, adaptvis_alpha
from adaptvis_tasks.families import families
from adaptvis_tasks.scoring import mean

SCALING_VIS_GRID = (0.5, 0.8, 1.2, 1.5, 2.0)
"""ScalingVis alphas of the paper (Sec. 4.2, Appendix E.3)."""
ALPHA1_GRID = (0.5, 0.8)
"""AdaptVis smoothing coefficients (alpha1 < 1) of the paper."""
ALPHA2_GRID = (1.2, 1.5, 2.0)
"""AdaptVis sharpening coefficients (alpha2 > 1) of the paper."""
BETA_STEP = 0.05
BETA_RANGES: dict[str, tuple[float, float]] = {e.model_type: e.beta_range for e in families() if e.beta_range}
"""Appendix E.3 beta ranges per model family (``model_type`` in the trace), from the family registry."""


@dataclass
class SweepDoc:
    """One document of a sweep trace: its confidence, answers per alpha, and the task document."""

    doc_id: int
    confidence: float
    answers: dict[float, str]
    doc: dict[str, Any]
    line: int
    confidences: dict[float, float] | None = None
    """First-token confidence under each alpha (traces written since it was recorded; else None)."""
    gate_values: dict[str, float] | None = None
    """Every AdaptVis gate signal under alpha = 1 (``GATE_SIGNALS``; traces written since it was recorded)."""


@dataclass
class SweepTask:
    """All documents of one task from one sweep run."""

    task: str
    run: str
    split: str | None
    pretrained: str | None
    model_type: str | None
    layers: str | None
    docs: list[SweepDoc] = field(default_factory=list)


@dataclass
class Scored:
    """One configuration's validation metrics."""

    method: str
    params: dict[str, float]
    metrics: dict[str, float]
    n_alpha1: int | None = None


# ----------------------------------------------------------------------------------------------
# Reading the trace
# ----------------------------------------------------------------------------------------------


def load_sweep(path: str | Path, run: str | None = None) -> list[SweepTask]:
    """The sweep records of ``path`` grouped by task; AnalysisError naming the line if one is unusable."""
    tasks: dict[tuple[str, str], SweepTask] = {}
    others: set[str] = set()
    for line, record in read_jsonl(path, "trace"):
        if record.get("method") != "sweep":
            others.add(str(record.get("method")))
            continue
        if run is not None and record.get("run") != run:
            continue
        missing = [k for k in ("task", "doc_id", "confidence", "answers", "run") if record.get(k) is None]
        if missing:
            raise AnalysisError(f"{path}:{line}: sweep record lacks {', '.join(missing)}")
        if not isinstance(record.get("doc"), dict):
            raise AnalysisError(
                f"{path}:{line}: the record has no 'doc' (the task document), which scoring needs; the trace was "
                "written by an older version of the suite -- rerun the sweep with this version"
            )
        key = (record["task"], record["run"])
        task = tasks.get(key)
        if task is None:
            task = tasks[key] = SweepTask(
                task=record["task"],
                run=record["run"],
                split=record.get("split"),
                pretrained=record.get("pretrained"),
                model_type=record.get("model_type"),
                layers=record.get("layers"),
            )
        try:
            answers = {float(alpha): str(text) for alpha, text in record["answers"].items()}
        except (AttributeError, ValueError):
            raise AnalysisError(f"{path}:{line}: 'answers' must map alphas (e.g. \"0.5\") to answer texts") from None
        confidences = None
        if record.get("confidences") is not None:
            try:
                confidences = {float(alpha): float(value) for alpha, value in record["confidences"].items()}
            except (AttributeError, TypeError, ValueError):
                raise AnalysisError(
                    f"{path}:{line}: 'confidences' must map alphas (e.g. \"0.5\") to probabilities"
                ) from None
        task.docs.append(
            SweepDoc(
                doc_id=int(record["doc_id"]),
                confidence=float(record["confidence"]),
                answers=answers,
                doc=record["doc"],
                line=line,
                confidences=confidences,
                gate_values=record.get("gate_values"),
            )
        )
    if not tasks:
        detail = f" (it holds method={', '.join(sorted(others))} records)" if others else ""
        wanted = f" of run {run}" if run else ""
        raise AnalysisError(f"{path}: no method=sweep records{wanted}{detail}; tune needs the trace of a sweep run")
    names = [t.task for t in tasks.values()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        runs = sorted({t.run for t in tasks.values() if t.task in repeated})
        raise AnalysisError(
            f"{path}: task(s) {', '.join(repeated)} come from several sweep runs ({', '.join(runs)}); "
            "choose one with --run"
        )
    for task in tasks.values():
        ids = [d.doc_id for d in task.docs]
        if len(set(ids)) != len(ids):
            raise AnalysisError(f"{path}: task {task.task} has the same doc_id twice in run {task.run}")
        task.docs.sort(key=lambda d: d.doc_id)
    return sorted(tasks.values(), key=lambda t: t.task)


def scoring_module(task: SweepTask) -> ModuleType:
    """The suite module whose ``process_results``/``aggregate_*`` score this task's documents."""
    from adaptvis_tasks import vsr, whatsup
    from adaptvis_tasks.data import SYNTHETIC_SUBSETS, VSR_SUBSET, WHATSUP_SUBSETS

    if (spatial := spatial_scoring(task.task)) is not None:
        return spatial  # lmms-eval's own spatial tasks and their _val/_test layers
    subset = task.docs[0].doc.get("subset")
    if subset in WHATSUP_SUBSETS or subset in SYNTHETIC_SUBSETS:
        return whatsup
    if subset == VSR_SUBSET:
        return vsr
    raise AnalysisError(
        f"task {task.task}: its documents have subset={subset!r}; tune scores this suite's WhatsUp and VSR tasks"
    )


def spatial_scoring(task_name: str) -> Any:
    """lmms-eval's scoring of a supported spatial task (``adaptvis_tasks.spatial``), else None."""
    from adaptvis_tasks.spatial import TaskScoring, base_task_of

    return TaskScoring(task_name) if base_task_of(task_name) is not None else None


def task_metric(task_name: str, metric: str, available: Sequence[str]) -> str:
    """``metric``, or a spatial task's headline metric when the task has no ``metric`` (default accuracy)."""
    from adaptvis_tasks.spatial import SPATIAL_TASKS, base_task_of

    base = base_task_of(task_name)
    if metric not in available and base is not None:
        return SPATIAL_TASKS[base].headline_metric
    return metric


def aggregate(module: ModuleType, metric: str, values: list[Any]) -> float:
    """The task's aggregation of ``metric``: its ``aggregate_<metric>`` function, else the mean (the YAML's)."""
    function: Callable[[list[Any]], float] | None = getattr(module, f"aggregate_{metric}", None)
    return float(function(values)) if function is not None else float(mean(values))


# ----------------------------------------------------------------------------------------------
# Replaying configurations
# ----------------------------------------------------------------------------------------------


def beta_grid(low: float, high: float, step: float = BETA_STEP) -> tuple[float, ...]:
    """``low, low+step, ..., high`` rounded to 2 decimals (0.20..0.55 -> 8 values)."""
    if step <= 0 or high < low:
        raise AnalysisError(f"beta range {low}..{high} step {step}: need step > 0 and high >= low")
    count = round((high - low) / step) + 1
    return tuple(round(low + i * step, 2) for i in range(count))


def vsr_beta(task: SweepTask) -> float:
    """Appendix E.3 for VSR: beta = mean of the two labels' average confidences (from the trace)."""
    by_label: dict[int, list[float]] = {0: [], 1: []}
    for doc in task.docs:
        by_label[int(doc.doc["label"])].append(doc.confidence)
    if not by_label[0] or not by_label[1]:
        raise AnalysisError(f"task {task.task}: the VSR beta needs documents of both labels in the trace")
    return (mean(by_label[0]) + mean(by_label[1])) / 2


class Replay:
    """Per-document metric values under each swept alpha, computed once, then combined per configuration."""

    def __init__(self, task: SweepTask, alphas_needed: Sequence[float]) -> None:
        self.task = task
        self.module = scoring_module(task)
        self.per_alpha: dict[float, list[dict[str, Any]]] = {}
        for alpha in sorted(set(alphas_needed)):
            values = []
            for doc in task.docs:
                if alpha not in doc.answers:
                    have = ", ".join(f"{a:g}" for a in sorted(doc.answers))
                    raise AnalysisError(
                        f"task {task.task} doc_id {doc.doc_id} (trace line {doc.line}) has no answer for "
                        f"alpha={alpha:g} (swept: {have}); sweep that alpha or leave it out of the grid"
                    )
                values.append(self.module.process_results(doc.doc, [doc.answers[alpha]]))
            self.per_alpha[alpha] = values

    def metrics(self, alpha_of_doc: Sequence[float]) -> dict[str, float]:
        """Aggregated metrics when document ``i`` is answered under ``alpha_of_doc[i]``."""
        collected: dict[str, list[Any]] = {}
        for index, alpha in enumerate(alpha_of_doc):
            for metric, value in self.per_alpha[alpha][index].items():
                collected.setdefault(metric, []).append(value)
        return {metric: aggregate(self.module, metric, values) for metric, values in collected.items()}


def score_grid(
    task: SweepTask,
    scaling_alphas: Sequence[float],
    alpha1s: Sequence[float],
    alpha2s: Sequence[float],
    betas: Sequence[float],
    rule: str,
    progress: bool = True,
) -> list[Scored]:
    """Metrics of the baseline (alpha = 1), every ScalingVis alpha and every AdaptVis configuration."""
    replay = Replay(task, [1.0, *scaling_alphas, *alpha1s, *alpha2s])
    n = len(task.docs)
    scored = [Scored("baseline", {}, replay.metrics([1.0] * n))]
    for alpha in sorted(scaling_alphas):
        scored.append(Scored("scaling_vis", {"alpha": alpha}, replay.metrics([alpha] * n)))
    grid = [(a1, a2, b) for a1 in sorted(alpha1s) for a2 in sorted(alpha2s) for b in sorted(betas)]
    for a1, a2, beta in tqdm(grid, desc=f"tune {task.task}", disable=not progress, leave=False):
        chosen = [adaptvis_alpha(doc.confidence, beta, a1, a2, rule) for doc in task.docs]
        scored.append(
            Scored(
                "adapt_vis",
                {"alpha1": a1, "alpha2": a2, "threshold": beta},
                replay.metrics(chosen),
                n_alpha1=sum(1 for a in chosen if a == a1 and a1 != a2),
            )
        )
    return scored


def best(scored: Sequence[Scored], method: str, metric: str) -> Scored:
    """Highest ``metric`` among ``method``'s configurations; ties: a no-op configuration (alpha = 1,
    present only with ``--include-baseline``), else the first in grid order."""
    candidates = [s for s in scored if s.method == method]
    if not candidates:
        raise AnalysisError(f"no {method} configuration to choose from")
    if metric not in candidates[0].metrics:
        choices = ", ".join(candidates[0].metrics)
        raise AnalysisError(f"--metric {metric}: not a metric of this task; choose from {choices}")
    top = max(s.metrics[metric] for s in candidates)
    tied = [s for s in candidates if s.metrics[metric] == top]
    return next((s for s in tied if is_no_op(s)), tied[0])


def is_no_op(scored: Scored) -> bool:
    """True for a configuration that leaves attention unchanged: ScalingVis alpha = 1, AdaptVis alpha1 = alpha2 = 1."""
    return all(scored.params.get(name, 1.0) == 1.0 for name in ("alpha", "alpha1", "alpha2"))


def against_baseline(method: str, best_value: float, baseline_value: float, metric: str) -> str:
    """One plain sentence: does the best configuration of ``method`` beat the baseline (alpha = 1)?"""
    name = {"scaling_vis": "ScalingVis", "adapt_vis": "AdaptVis"}.get(method, method)
    if best_value > baseline_value:
        return f"{name} beats the baseline (alpha = 1) by {best_value - baseline_value:+.4f} {metric}."
    if best_value == baseline_value:
        return f"No {name} configuration beats the baseline (alpha = 1): the best ties it at {metric} {best_value:.4f}."
    return (
        f"Every {name} configuration is WORSE than the baseline (alpha = 1): best {metric} {best_value:.4f} against "
        f"the baseline's {baseline_value:.4f} ({best_value - baseline_value:+.4f}). On this validation split the "
        "method does not help; the chosen configuration is only the least bad of the grid."
    )


def reporting_task(task: str) -> str:
    """``whatsup_controlled_a_val`` -> ``whatsup_controlled_a_test`` (unchanged when not a ``_val`` task)."""
    return task[: -len("_val")] + "_test" if task.endswith("_val") else task


WRAPPERS = {e.model_type: e.lmms_model for e in families()}
"""The lmms-eval model of each family (``model_type`` in the trace), from the family registry."""


OTHER_SIGNAL_BETAS = beta_grid(0.05, 0.95)
"""Default beta grid for a gate signal other than ``max_prob`` (the paper gives ranges for C only)."""


def with_gate_signal(tasks: list[SweepTask], signal: str, trace: Path) -> list[SweepTask]:
    """Tasks whose documents carry ``signal`` as the value AdaptVis compares with beta."""
    if signal == "max_prob":
        return tasks
    for task in tasks:
        for doc in task.docs:
            if not isinstance(doc.gate_values, dict) or not isinstance(doc.gate_values.get(signal), (int, float)):
                raise AnalysisError(
                    f"{trace}:{doc.line}: the sweep record has no gate_values[{signal!r}] (written by an older version "
                    "of the suite); rerun the sweep with this version or tune with --gate-signal max_prob"
                )
            doc.confidence = float(doc.gate_values[signal])
    return tasks


def model_args(task: SweepTask, chosen: Scored, rule: str, signal: str = "max_prob") -> str:
    """The ``--model_args`` that reproduce ``chosen`` (with the sweep's checkpoint and layers)."""
    parts = [f"pretrained={task.pretrained or '<checkpoint>'}", f"method={chosen.method}"]
    parts += [f"{k}={v!r}" for k, v in chosen.params.items()]
    if chosen.method == "adapt_vis" and rule != "paper_rounded":
        parts.append(f"confidence_rule={rule}")
    if chosen.method == "adapt_vis" and signal != "max_prob":
        parts.append(f"gate_signal={signal}")
    if task.layers not in (None, "all"):
        parts.append(f"layers={task.layers}")
    return ",".join(parts)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adaptvis tune``."""
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("trace", type=Path, help="trace JSONL of one method=sweep run on a _val split")
    parser.add_argument("--metric", default="accuracy", help="metric to maximise (default %(default)s, the paper's)")
    parser.add_argument(
        "--alphas", default=",".join(map(str, SCALING_VIS_GRID)), help="ScalingVis grid (default %(default)s)"
    )
    parser.add_argument("--alpha1s", default=",".join(map(str, ALPHA1_GRID)), help="AdaptVis alpha1 grid (%(default)s)")
    parser.add_argument("--alpha2s", default=",".join(map(str, ALPHA2_GRID)), help="AdaptVis alpha2 grid (%(default)s)")
    parser.add_argument(
        "--betas",
        help="AdaptVis beta grid, e.g. 0.2,0.25,0.3 (default: Appendix E.3 per model family, 0.05 steps: LLaVA-1.5 "
        "0.20-0.55, LLaVA-1.6 0.30-0.65; VSR: the mean of the two labels' average confidences)",
    )
    parser.add_argument(
        "--include-baseline",
        action="store_true",
        help="also try alpha = 1 (ScalingVis alpha, AdaptVis alpha1 and alpha2), so that 'do not intervene' can be "
        "chosen; a no-op configuration wins ties. Off by default: the paper's grids exclude alpha = 1",
    )
    parser.add_argument("--confidence-rule", choices=CONFIDENCE_RULES, default="paper_rounded")
    parser.add_argument(
        "--gate-signal",
        choices=GATE_SIGNALS,
        default="max_prob",
        help="what AdaptVis compares with beta (default: the paper's C; others default to betas 0.05-0.95)",
    )
    parser.add_argument("--run", help="the run fingerprint to use when the trace holds several sweep runs")
    parser.add_argument(
        "--any-split", action="store_true", help="allow a trace of a test or full split (tuning on test leaks)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_format_argument(parser)


def _betas_for(task: SweepTask, explicit: tuple[float, ...] | None) -> tuple[tuple[float, ...], str]:
    if explicit is not None:
        return explicit, "--betas"
    if task.docs[0].doc.get("subset") == "vsr_zeroshot":
        return (vsr_beta(task),), "VSR: mean of the two labels' average confidences (Appendix E.3)"
    if task.model_type not in BETA_RANGES:
        raise AnalysisError(
            f"task {task.task}: the paper gives no beta range for model_type={task.model_type!r}; give --betas"
        )
    low, high = BETA_RANGES[task.model_type]
    return beta_grid(low, high), f"Appendix E.3 range for {task.model_type}: {low:.2f}-{high:.2f} step {BETA_STEP}"


def tune(args: argparse.Namespace) -> dict[str, Any]:
    """Score every configuration of every task in the trace; the JSON-ready report."""
    signal = getattr(args, "gate_signal", "max_prob")
    tasks = with_gate_signal(load_sweep(args.trace, args.run), signal, args.trace)
    scaling = parse_float_list(args.alphas, "--alphas")
    alpha1s = parse_float_list(args.alpha1s, "--alpha1s")
    alpha2s = parse_float_list(args.alpha2s, "--alpha2s")
    explicit_betas = parse_float_list(args.betas, "--betas") if args.betas else None
    if args.include_baseline:
        scaling, alpha1s, alpha2s = (tuple(dict.fromkeys((*grid, 1.0))) for grid in (scaling, alpha1s, alpha2s))
    report: dict[str, Any] = {"trace": str(args.trace), "metric": args.metric, "confidence_rule": args.confidence_rule}
    if signal != "max_prob":
        report["gate_signal"] = signal
    report["include_baseline"] = bool(args.include_baseline)
    report["tie_break"] = (
        f"highest {args.metric}; ties go to "
        + ("a no-op configuration (alpha = 1), else " if args.include_baseline else "")
        + "the first configuration in grid order "
        "(ScalingVis: alpha ascending; AdaptVis: alpha1, then alpha2, then beta ascending)"
    )
    report["grids"] = (
        "alpha = 1 included (--include-baseline)"
        if args.include_baseline
        else "the paper's grids, which exclude alpha = 1 (--include-baseline adds it)"
    )
    out_tasks: dict[str, Any] = {}
    for task in tasks:
        if task.split != "val" and not args.any_split:
            raise AnalysisError(
                f"{args.trace}: task {task.task} was swept on split {task.split!r}, not the validation split; tune on "
                "a _val task (e.g. whatsup_val) or pass --any-split knowingly"
            )
        if explicit_betas is None and signal != "max_prob":
            betas, beta_source = OTHER_SIGNAL_BETAS, f"gate signal {signal}: default grid 0.05-0.95 step {BETA_STEP}"
        else:
            betas, beta_source = _betas_for(task, explicit_betas)
        scored = score_grid(task, scaling, alpha1s, alpha2s, betas, args.confidence_rule, not args.no_progress)
        metric = task_metric(task.task, args.metric, list(scored[0].metrics))
        chosen = {m: best(scored, m, metric) for m in ("scaling_vis", "adapt_vis")}
        baseline = next(s for s in scored if s.method == "baseline")
        out_tasks[task.task] = {
            "run": task.run,
            "split": task.split,
            "metric": metric,
            "documents": len(task.docs),
            "pretrained": task.pretrained,
            "model_type": task.model_type,
            "betas": list(betas),
            "beta_source": beta_source,
            "configurations": [{"method": s.method, **s.params, "n_alpha1": s.n_alpha1, **s.metrics} for s in scored],
            "baseline": {"metrics": baseline.metrics},
            "chosen": {
                method: {
                    "params": s.params,
                    "metrics": s.metrics,
                    "baseline_metrics": baseline.metrics,
                    "beats_baseline": s.metrics[metric] > baseline.metrics[metric],
                    "verdict": against_baseline(method, s.metrics[metric], baseline.metrics[metric], metric),
                    "model_args": model_args(task, s, args.confidence_rule, signal),
                    "test_task": reporting_task(task.task),
                    "model": WRAPPERS.get(task.model_type or "", "<llava_adaptvis|qwen2_vl_adaptvis>"),
                }
                for method, s in chosen.items()
            },
        }
    report["tasks"] = out_tasks
    return report


def _metric_columns(configurations: Sequence[Mapping[str, Any]]) -> list[str]:
    fixed = {"method", "alpha", "alpha1", "alpha2", "threshold", "n_alpha1"}
    seen: list[str] = []
    for row in configurations:
        for key in row:
            if key not in fixed and key not in seen:
                seen.append(key)
    return seen


def render(report: dict[str, Any], fmt: str) -> str:
    """The report as markdown (every table, then the choices), CSV (one row per configuration) or JSON."""
    if fmt == "json":
        return json_text(report)
    params = ["method", "alpha", "alpha1", "alpha2", "threshold", "n_alpha1"]
    if fmt == "csv":
        rows = []
        for name, task in report["tasks"].items():
            for row in task["configurations"]:
                chosen = [m for m, c in task["chosen"].items() if m == row["method"] and c["params"] == _params(row)]
                rows.append({"task": name, **row, "chosen": bool(chosen)})
        metrics = sorted({k for t in report["tasks"].values() for k in _metric_columns(t["configurations"])})
        return csv_table(rows, ["task", *params, *metrics, "chosen"])
    parts = [f"# adaptvis tune: {report['trace']}", "", f"Selection: {report['tie_break']}.", ""]
    parts += [f"Grids: {report['grids']}.", ""]
    for name, task in report["tasks"].items():
        parts += [
            f"## {name} ({task['documents']} documents, split {task['split']}, run {task['run']})",
            "",
            f"beta grid: {', '.join(f'{b:.4g}' for b in task['betas'])} ({task['beta_source']}); "
            f"confidence rule {report['confidence_rule']}.",
            "",
            markdown_table(task["configurations"], [*params, *_metric_columns(task["configurations"])]),
            "",
        ]
        for method, choice in task["chosen"].items():
            summary = ", ".join(f"{k}={v:g}" for k, v in choice["params"].items())
            metric = task["metric"]
            parts += [
                f"**{method}**: {summary} -> validation {metric} {choice['metrics'][metric]:.4f} "
                f"(baseline alpha = 1: {choice['baseline_metrics'][metric]:.4f})",
                "",
                choice["verdict"],
                "",
                f"    lmms-eval --model {choice['model']} --model_args {choice['model_args']} "
                f"--tasks {choice['test_task']}",
                "",
            ]
    return "\n".join(parts)


def _params(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("alpha", "alpha1", "alpha2", "threshold") if row.get(k) is not None}


def run(args: argparse.Namespace) -> int:
    """Entry point of ``adaptvis tune``."""

    def body() -> int:
        report = tune(args)
        emit(render(report, args.format), args.output)
        if args.output is not None or args.format != "markdown":  # the verdicts are not on screen otherwise
            for name, task in report["tasks"].items():
                for choice in task["chosen"].values():
                    if not choice["beats_baseline"]:
                        print(f"adaptvis tune: {name}: {choice['verdict']}", file=sys.stderr)
        return 0

    return run_tool(body)
