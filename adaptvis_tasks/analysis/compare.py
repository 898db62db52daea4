"""``adaptvis compare RUN_A RUN_B [...]``: every shared task and metric side by side, with paired tests.

A RUN is an lmms-eval output folder or its ``<date>_results.json``; the samples logs
``<date>_samples_<task>.jsonl`` next to it (``--log_samples``) are used when present. The first
run is the reference; every later run is compared with it.

Statistics, per task x metric x later run, on the documents both runs evaluated:

* per-document values that are all 0/1 (``accuracy``, GQA's ``exact_match``, ...): the exact
  McNemar test -- a two-sided binomial test (p = 0.5, as ``scipy.stats.binomtest``) on the
  discordant pairs;
* other numeric per-document values: a seeded paired bootstrap of the mean difference (documents
  resampled with replacement, the same draw for both runs);
* per-document records that a task aggregates itself (F1s, POPE's metrics): the same paired
  bootstrap over the task's own aggregation function, when it can be imported; for Controlled
  pair/set accuracy (defined per object pair) whole object pairs are resampled (cluster bootstrap).

Bootstrap p-value: twice the smaller share of resampled differences on either side of 0 (capped
at 1). All p-values of one invocation are Holm-corrected together.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from adaptvis_tasks.analysis.common import (
    AnalysisError,
    add_format_argument,
    csv_table,
    emit,
    json_text,
    markdown_table,
    read_jsonl,
    run_tool,
)

RESULTS_SUFFIX = "_results.json"
TRUSTED_PACKAGES = ("adaptvis_tasks", "lmms_eval")
"""Aggregation functions named in a results file are imported only from these packages."""


@dataclass
class RunFiles:
    """One lmms-eval run: its results JSON and, per task, its samples log (if written)."""

    name: str
    results_path: Path
    results: dict
    samples_paths: dict[str, Path] = field(default_factory=dict)
    _samples: dict[str, dict[int, dict]] = field(default_factory=dict)

    def samples(self, task: str) -> dict[int, dict] | None:
        """doc_id -> logged sample for ``task``; None when no samples log was written."""
        if task not in self.samples_paths:
            return None
        if task not in self._samples:
            by_doc: dict[int, dict] = {}
            for line, sample in read_jsonl(self.samples_paths[task], "samples log"):
                if "doc_id" not in sample:
                    raise AnalysisError(f"{self.samples_paths[task]}:{line}: sample without doc_id")
                doc_id = int(sample["doc_id"])
                if doc_id in by_doc:
                    raise AnalysisError(f"{self.samples_paths[task]}:{line}: doc_id {doc_id} logged twice")
                by_doc[doc_id] = sample
            self._samples[task] = by_doc
        return self._samples[task]

    def metrics(self) -> dict[tuple[str, str], float]:
        """(task, metric) -> value for every numeric metric (``metric`` or ``metric,filter`` if not ``none``)."""
        out: dict[tuple[str, str], float] = {}
        for task, values in self.results.get("results", {}).items():
            for key, value in values.items():
                if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                metric, filter_name = key.split(",", 1)
                if metric.endswith("_stderr") or "_stderr_" in metric:
                    continue
                out[(task, metric if filter_name == "none" else key)] = float(value)
        return out

    def higher_is_better(self, task: str, metric: str) -> bool:
        return bool(self.results.get("higher_is_better", {}).get(task, {}).get(metric.split(",")[0], True))


def load_run(path: str | Path) -> RunFiles:
    """Find the results JSON (a folder must hold exactly one) and its samples logs."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.rglob(f"*{RESULTS_SUFFIX}"))
        if not found:
            raise AnalysisError(f"{path}: no *{RESULTS_SUFFIX} below this folder; is it an lmms-eval --output_path?")
        if len(found) > 1:
            listing = "\n  ".join(str(p) for p in found)
            raise AnalysisError(f"{path} holds {len(found)} results files; pass one of them:\n  {listing}")
        path = found[0]
    if not path.is_file():
        raise AnalysisError(f"{path} does not exist")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise AnalysisError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise AnalysisError(f"{path}: no 'results' object; is this an lmms-eval results JSON?")
    stem = path.name[: -len(RESULTS_SUFFIX)] if path.name.endswith(RESULTS_SUFFIX) else path.stem
    samples = {}
    for candidate in sorted(path.parent.glob(f"{stem}_samples_*.jsonl")):
        samples[candidate.name[len(f"{stem}_samples_") : -len(".jsonl")]] = candidate
    return RunFiles(name=str(path), results_path=path, results=results, samples_paths=samples)


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------


def mcnemar_exact(first: Sequence[float], second: Sequence[float]) -> tuple[float, int, int]:
    """Exact McNemar: (two-sided p, #first-only correct, #second-only correct)."""
    only_first = sum(1 for a, b in zip(first, second, strict=True) if a == 1 and b == 0)
    only_second = sum(1 for a, b in zip(first, second, strict=True) if a == 0 and b == 1)
    return binomial_two_sided(only_first, only_first + only_second), only_first, only_second


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial test of ``k`` successes in ``n`` trials at p = 0.5 (1.0 when n = 0).

    The distribution is symmetric, so the two-sided p (the probability of outcomes no more likely
    than ``k``, as ``scipy.stats.binomtest`` defines it) is twice the smaller tail, capped at 1;
    computed in integers (``math.comb``), so importing scipy (seconds) is not needed.
    """
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap(
    first: Sequence[Any],
    second: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float],
    iterations: int,
    seed: int,
    confidence: float = 0.95,
    clusters: Sequence[Any] | None = None,
    progress: bool = False,
) -> tuple[float, float, float]:
    """(p, CI low, CI high) of ``statistic(second) - statistic(first)`` by resampling documents in pairs.

    With ``clusters`` (one key per document) whole clusters are resampled instead -- needed for
    Controlled pair/set accuracy, which is defined per object pair; a cluster drawn twice enters
    as two distinct copies (:func:`_cluster_copy`).

    ``statistic`` is the definition. The draws are the same whichever way the resamples are then
    evaluated: when ``statistic`` is a size-weighted mean of its values on each unit (a document,
    or a cluster) -- the mean, and pair/set accuracy over whole object pairs, are -- every resample
    is evaluated at once from per-unit values (:func:`_additive_deltas`), after checking that
    property against ``statistic`` itself on the whole sample and on :data:`ADDITIVITY_CHECKS`
    resamples; otherwise ``statistic`` is called on every resample (with a progress bar).
    Differences within 1e-12 of a number are rounded to it (:data:`DELTA_DECIMALS`), so that both
    ways count an exactly-zero difference as zero.
    """
    if clusters is not None:
        members: dict[Any, list[int]] = {}
        for index, key in enumerate(clusters):
            members.setdefault(key, []).append(index)
        groups = list(members.values())
        copy: Callable[[Any, int], Any] = _cluster_copy
    else:
        groups = [[index] for index in range(len(first))]
        copy = _no_copy
    checks = np.concatenate(list(_draws(seed, len(groups), min(ADDITIVITY_CHECKS, iterations))))
    parts = _additive_parts(first, second, statistic, groups, checks, copy)
    deltas = np.empty(iterations)
    done = 0
    bar = tqdm(total=iterations, desc="bootstrap", disable=not progress or parts is not None, leave=False)
    for chunk in _draws(seed, len(groups), iterations):
        if parts is not None:
            differences, weights = parts
            deltas[done : done + len(chunk)] = differences[chunk].sum(axis=1) / weights[chunk].sum(axis=1)
        else:
            for offset, drawn in enumerate(chunk):
                sample_a, sample_b = _resample(first, groups, drawn, copy), _resample(second, groups, drawn, copy)
                deltas[done + offset] = statistic(sample_b) - statistic(sample_a)
                bar.update()
        done += len(chunk)
    bar.close()
    deltas = np.round(deltas, DELTA_DECIMALS)
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    p = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return p, float(low), float(high)


DELTA_DECIMALS = 12
"""Resampled differences are rounded to 12 decimals (floating-point noise of two ways to sum)."""
ADDITIVITY_CHECKS = 4
"""Resamples on which the per-unit evaluation is checked against the statistic before it is used."""
_DRAW_CHUNK = 1 << 21
"""Unit indices held in memory at once (16 MB of int64)."""


def _draws(seed: int, units: int, iterations: int) -> Iterator[np.ndarray]:
    """The resamples' unit indices, ``(resamples, units)`` arrays in chunks: one ``rng.integers`` per resample."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _DRAW_CHUNK // max(units, 1))
    for start in range(0, iterations, per_chunk):
        count = min(per_chunk, iterations - start)
        yield np.array([rng.integers(0, units, size=units) for _ in range(count)], dtype=np.int64).reshape(count, units)


def _no_copy(value: Any, copy: int) -> Any:
    return value


def _resample(values: Sequence[Any], groups: Sequence[Sequence[int]], drawn: np.ndarray, copy) -> list[Any]:
    """The documents of the drawn units, in draw order; the ``k``-th drawn unit's records are copy ``k``."""
    sample: list[Any] = []
    for position, unit in enumerate(drawn):
        sample += [copy(values[j], position) for j in groups[unit]]
    return sample


def _additive_parts(
    first: Sequence[Any],
    second: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float],
    groups: Sequence[Sequence[int]],
    checks: np.ndarray,
    copy,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-unit ``(w (v_b - v_a), w)`` when ``statistic`` is a size-weighted mean over units, else None.

    Per unit ``u`` with ``w_u`` documents: ``v_u = statistic(unit u alone)``. The claim checked,
    for both runs, on the whole sample and on the resamples ``checks``, is ``statistic(units drawn
    c_u times) = sum(c_u w_u v_u) / sum(c_u w_u)``; a resample's difference is then
    ``sum over drawn units of w (v_b - v_a)`` divided by the number of documents drawn.
    """
    weights = np.array([len(group) for group in groups], dtype=float)
    values = []
    for run in (first, second):
        values.append(np.array([statistic([copy(run[j], 0) for j in group]) for group in groups], dtype=float))
    for drawn in [np.arange(len(groups)), *checks]:
        counts = np.bincount(drawn, minlength=len(groups)).astype(float)
        for run, per_unit in zip((first, second), values, strict=True):
            direct = statistic(_resample(run, groups, drawn, copy))
            if not math.isclose(direct, float(counts @ (weights * per_unit) / (counts @ weights)), abs_tol=1e-9):
                return None
    return weights * (values[1] - values[0]), weights


def controlled_cluster(value: Any) -> Any:
    """The object pair of a Controlled pair/set record (``scoring.controlled_image_key``), else None."""
    from adaptvis_tasks.scoring import CONTROLLED_RELATIONS, controlled_image_key

    if isinstance(value, dict) and value.get("subset") in CONTROLLED_RELATIONS and "image_path" in value:
        return controlled_image_key(str(value["image_path"]))[0]
    return None


def _cluster_copy(value: Any, copy: int) -> Any:
    """A record of the ``copy``-th draw of its cluster: the pair key gets ``~copy`` so copies stay apart."""
    if controlled_cluster(value) is None:
        return value
    path = str(value["image_path"])
    dot = path.rfind(".")
    return {**value, "image_path": f"{path[:dot]}~{copy}{path[dot:]}" if dot > path.rfind("/") else f"{path}~{copy}"}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


_FUNCTION_REPR = re.compile(r"<function (\w+) at 0x[0-9a-f]+>")


def resolve_aggregation(run: RunFiles, task: str, metric: str) -> Callable[[list], float] | None:
    """The task's aggregation function for ``metric`` from the results' task config, if importable.

    A dotted path (this suite's tasks) is imported; lmms-eval's own ``<function name at ...>``
    entries are looked up by name in lmms-eval's task folder for ``task``.
    """
    config = run.results.get("configs", {}).get(task, {})
    entry = next((m for m in config.get("metric_list", []) if m.get("metric") == metric.split(",")[0]), None)
    if entry is None or not isinstance(entry.get("aggregation"), str):
        return None
    name = entry["aggregation"]
    if name == "mean":
        return _mean
    match = _FUNCTION_REPR.fullmatch(name)
    if match is None and "." in name:
        module_name, _, function = name.rpartition(".")
        if module_name.split(".")[0] not in TRUSTED_PACKAGES:
            return None
        try:
            return getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError):
            return None
    if match is not None:
        return _lmms_eval_task_function(task, match.group(1))
    return None


def _lmms_eval_task_function(task: str, function: str) -> Callable | None:
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    tasks_root = Path(next(iter(spec.submodule_search_locations))) / "tasks"
    candidates = [p for p in tasks_root.rglob("*.py") if f"def {function}(" in p.read_text(errors="ignore")]
    if len(candidates) > 1:
        pattern = re.compile(rf"^task:\s*[\"']?{re.escape(task)}[\"']?\s*$", re.MULTILINE)
        candidates = [
            p for p in candidates if any(pattern.search(y.read_text(errors="ignore")) for y in p.parent.glob("*.yaml"))
        ]
    if len(candidates) != 1:
        return None
    module = ".".join(("lmms_eval", "tasks", *candidates[0].relative_to(tasks_root).with_suffix("").parts))
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return None


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------


def paired_samples(first: RunFiles, later: RunFiles, task: str) -> tuple[list[int], dict, dict] | None:
    """Shared doc_ids and both runs' samples; AnalysisError when the runs saw different documents."""
    a, b = first.samples(task), later.samples(task)
    if a is None or b is None:
        return None
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise AnalysisError(
            f"task {task}: the samples are for different documents ({first.samples_paths[task]} has {len(a)}, "
            f"{later.samples_paths[task]} has {len(b)}; doc_ids only in the first: {only_a[:5]}, only in the "
            f"second: {only_b[:5]}); compare runs of the same task, split and --limit"
        )
    for doc_id in sorted(a):
        for key in ("target", "input"):
            if key in a[doc_id] and key in b[doc_id] and a[doc_id][key] != b[doc_id][key]:
                raise AnalysisError(
                    f"task {task} doc_id {doc_id}: the runs logged different {key}s ({a[doc_id][key]!r} vs "
                    f"{b[doc_id][key]!r}); they evaluated different documents or prompts and cannot be paired"
                )
    return sorted(a), a, b


def correctness(sample: dict, metric: str) -> float | None:
    """A 0/1 per-document correctness from ``metric``'s logged value (number, or a record's score/correct)."""
    value = sample.get(metric)
    if isinstance(value, dict):
        value = value.get("score", value.get("correct", value.get("is_correct")))  # lmms-eval tasks: is_correct
    if isinstance(value, bool):
        return float(value)
    if _is_number(value) and value in (0, 1):
        return float(value)
    return None


def compare_pair(
    first: RunFiles, later: RunFiles, task: str, metric: str, iterations: int, seed: int, progress: bool = False
) -> dict[str, Any]:
    """The paired test of one metric of one task; ``test`` says which (or why none)."""
    paired = paired_samples(first, later, task)
    if paired is None:
        return {"test": "none", "reason": "no samples log in both runs"}
    doc_ids, a, b = paired
    name = metric.split(",")[0]
    # Metrics such as accuracy_<relation> are logged only for some documents: pair those.
    in_a = [d for d in doc_ids if name in a[d]]
    in_b = [d for d in doc_ids if name in b[d]]
    if in_a != in_b:
        first_odd = sorted(set(in_a) ^ set(in_b))[0]
        return {"test": "none", "reason": f"'{name}' logged for doc_id {first_odd} in only one run"}
    if not in_a:
        return {"test": "none", "reason": f"per-document value '{name}' not logged"}
    doc_ids = in_a
    va, vb = [a[d][name] for d in doc_ids], [b[d][name] for d in doc_ids]
    if all(_is_number(v) or isinstance(v, bool) for v in va + vb):
        fa, fb = [float(v) for v in va], [float(v) for v in vb]
        if all(v in (0.0, 1.0) for v in fa + fb):
            p, only_first, only_second = mcnemar_exact(fa, fb)
            return {"test": "mcnemar_exact", "p": p, "n": len(doc_ids), "b": only_first, "c": only_second}
        p, low, high = paired_bootstrap(fa, fb, _mean, iterations, seed)
        return {"test": "paired_bootstrap", "p": p, "ci_low": low, "ci_high": high, "n": len(doc_ids)}
    aggregation = resolve_aggregation(first, task, metric)
    if aggregation is None:
        return {"test": "none", "reason": "per-document records, and the task's aggregation is not importable"}
    clusters = [controlled_cluster(v) for v in va]
    if all(c is not None for c in clusters) and [controlled_cluster(v) for v in vb] == clusters:
        p, low, high = paired_bootstrap(va, vb, aggregation, iterations, seed, clusters=clusters, progress=progress)
        return {"test": "cluster_bootstrap", "p": p, "ci_low": low, "ci_high": high, "n": len(doc_ids)}
    p, low, high = paired_bootstrap(va, vb, aggregation, iterations, seed, progress=progress)
    return {"test": "paired_bootstrap", "p": p, "ci_low": low, "ci_high": high, "n": len(doc_ids)}


def flips(first: RunFiles, later: RunFiles, task: str) -> dict[str, Any] | None:
    """Documents whose correctness changed, judged by the task's first 0/1 per-document metric."""
    paired = paired_samples(first, later, task)
    if paired is None:
        return None
    doc_ids, a, b = paired
    order = [m.get("metric") for m in first.results.get("configs", {}).get(task, {}).get("metric_list", [])]
    order += [m.split(",")[0] for (t, m) in first.metrics() if t == task]
    for metric in dict.fromkeys(m for m in order if m):
        ca = [correctness(a[d], metric) for d in doc_ids]
        cb = [correctness(b[d], metric) for d in doc_ids]
        if all(v is not None for v in ca + cb):
            lost = [d for d, x, y in zip(doc_ids, ca, cb, strict=True) if x == 1 and y == 0]
            gained = [d for d, x, y in zip(doc_ids, ca, cb, strict=True) if x == 0 and y == 1]
            return {
                "metric": metric,
                "lost": [_flip(d, a[d], b[d]) for d in lost],
                "gained": [_flip(d, a[d], b[d]) for d in gained],
            }
    return {"metric": None, "lost": [], "gained": [], "reason": "no 0/1 per-document metric"}


def _answer(sample: dict) -> str:
    response = sample.get("filtered_resps")
    while isinstance(response, list) and response:
        response = response[0]
    return str(response)


def _flip(doc_id: int, a: dict, b: dict) -> dict[str, Any]:
    return {"doc_id": doc_id, "target": a.get("target"), "first": _answer(a), "later": _answer(b)}


def compare(runs: Sequence[RunFiles], iterations: int = 10_000, seed: int = 0, progress: bool = True) -> dict:
    """Values, deltas, paired tests (Holm-corrected) and flipped documents for every shared metric."""
    if len(runs) < 2:
        raise AnalysisError("give at least two runs to compare")
    values = [run.metrics() for run in runs]
    shared = [key for key in values[0] if all(key in v for v in values[1:])]
    if not shared:
        raise AnalysisError(
            "the runs share no task and metric: "
            + "; ".join(f"{r.name}: {sorted({t for t, _ in v})}" for r, v in zip(runs, values, strict=True))
        )
    rows: list[dict[str, Any]] = []
    work = [(task, metric, k) for task, metric in shared for k in range(1, len(runs))]
    tested: dict[tuple[str, str, int], dict] = {}
    for task, metric, k in tqdm(work, desc="compare", disable=not progress, leave=False):
        tested[(task, metric, k)] = compare_pair(runs[0], runs[k], task, metric, iterations, seed, progress)
    keys = [key for key, result in tested.items() if "p" in result]
    for key, adjusted in zip(keys, holm([tested[key]["p"] for key in keys]), strict=True):
        tested[key]["p_holm"] = adjusted
    for task, metric in shared:
        row: dict[str, Any] = {"task": task, "metric": metric}
        higher = runs[0].higher_is_better(task, metric)
        row["higher_is_better"] = higher
        for k in range(len(runs)):
            row[f"run{k}"] = values[k][(task, metric)]
        for k in range(1, len(runs)):
            result = tested[(task, metric, k)]
            row[f"delta{k}"] = values[k][(task, metric)] - values[0][(task, metric)]
            row[f"test{k}"] = result["test"] if "reason" not in result else f"none ({result['reason']})"
            row[f"p{k}"] = result.get("p")
            row[f"p_holm{k}"] = result.get("p_holm")
            row[f"ci{k}"] = [result["ci_low"], result["ci_high"]] if "ci_low" in result else None
            row[f"detail{k}"] = {k2: v for k2, v in result.items() if k2 not in ("p", "p_holm", "test")}
        rows.append(row)
    tasks = list(dict.fromkeys(task for task, _ in shared))
    flipped = {f"{task}|{k}": flips(runs[0], runs[k], task) for task in tasks for k in range(1, len(runs))}
    return {
        "runs": [run.name for run in runs],
        "bootstrap": {"iterations": iterations, "seed": seed},
        "rows": rows,
        "flips": {key: value for key, value in flipped.items() if value is not None},
    }


def regressions(report: dict, fail_below: float | None, significance: float | None) -> list[str]:
    """Human descriptions of the gates that fail (empty: all pass)."""
    problems = []
    for row in report["rows"]:
        sign = 1 if row["higher_is_better"] else -1
        for k in range(1, len(report["runs"])):
            drop = -sign * row[f"delta{k}"]
            where = f"{row['task']} {row['metric']}: {report['runs'][k]} vs {report['runs'][0]}"
            if fail_below is not None and drop > fail_below:
                problems.append(f"{where} is worse by {drop:.4f} (> --fail-below {fail_below})")
            p = row.get(f"p_holm{k}")
            if significance is not None and p is not None and drop > 0 and p < significance:
                problems.append(f"{where} is significantly worse (Holm p = {p:.4g} < {significance})")
    return problems


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``adaptvis compare``."""
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("runs", nargs="+", type=Path, help="lmms-eval output folders or results JSON files")
    parser.add_argument("--fail-below", type=float, metavar="DELTA", help="exit 1 if a later run is worse by > DELTA")
    parser.add_argument(
        "--fail-if-significant", action="store_true", help="exit 1 if a later run is significantly worse (Holm)"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level for --fail-if-significant")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
    parser.add_argument("--max-flips", type=int, default=20, help="flipped documents listed per task in markdown")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_format_argument(parser)


def render(report: dict, fmt: str, max_flips: int = 20) -> str:
    """Markdown (tables and flips), CSV (the metric table) or JSON (everything)."""
    if fmt == "json":
        return json_text(report)
    later = range(1, len(report["runs"]))
    columns = ["task", "metric", *(f"run{k}" for k in range(len(report["runs"])))]
    for k in later:
        columns += [f"delta{k}", f"test{k}", f"p{k}", f"p_holm{k}"]
    if fmt == "csv":
        return csv_table(report["rows"], columns)
    parts = ["# adaptvis compare", ""]
    parts += [f"- run{k}: `{name}`" for k, name in enumerate(report["runs"])]
    parts += [
        "",
        "deltaK = runK - run0; tests: exact McNemar (0/1 per document) or paired bootstrap "
        f"({report['bootstrap']['iterations']} resamples, seed {report['bootstrap']['seed']}); "
        "p_holm: Holm-corrected over all tests below.",
        "",
        markdown_table(report["rows"], columns),
        "",
    ]
    for key, flipped in report["flips"].items():
        task, k = key.split("|")
        if not flipped["lost"] and not flipped["gained"]:
            continue
        parts += [
            f"## {task}: documents flipped between run0 and run{k} (correctness by `{flipped['metric']}`)",
            "",
            f"run0 = `{report['runs'][0]}`; run{k} = `{report['runs'][int(k)]}`. Each document: its doc_id, the "
            f"target, then run0's answer -> run{k}'s answer.",
            "",
        ]
        meaning = {"lost": f"right in run0, wrong in run{k}", "gained": f"wrong in run0, right in run{k}"}
        for label in ("lost", "gained"):
            items = flipped[label]
            shown = "; ".join(
                f"doc {f['doc_id']} (target {f['target']!r}): {f['first']!r} -> {f['later']!r}"
                for f in items[:max_flips]
            )
            more = f"; ... ({len(items) - max_flips} more, all in --format json)" if len(items) > max_flips else ""
            parts.append(f"- {label}, {meaning[label]} ({len(items)}): {shown or 'none'}{more}")
        parts.append("")
    return "\n".join(parts)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``adaptvis compare``; exit 1 when a gate fails."""

    def body() -> int:
        runs = [load_run(path) for path in args.runs]
        report = compare(runs, args.bootstrap, args.seed, progress=not args.no_progress)
        gates = regressions(report, args.fail_below, args.alpha if args.fail_if_significant else None)
        report["gate_failures"] = gates
        emit(render(report, args.format, args.max_flips), args.output)
        for problem in gates:
            print(f"adaptvis compare: REGRESSION: {problem}", file=sys.stderr)
        return 1 if gates else 0

    return run_tool(body)
