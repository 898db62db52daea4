"""The whole picture on lmms-eval's spatial tasks: tune on every ``_val``, report every ``_test``.

For one checkpoint, every step through the real ``lmms-eval`` CLI and the ``adaptvis`` tools:

1. ``method=sweep`` with a trace on ``adaptvis_spatial_val`` (all supported tasks' 20% layers), one run;
2. ``adaptvis tune`` on that trace: per task, ScalingVis's alpha and AdaptVis's (alpha1, alpha2, beta)
   by the task's headline metric, scored with lmms-eval's own ``process_results``/aggregation;
3. the baseline on ``adaptvis_spatial_test``, then ScalingVis and AdaptVis on every ``_test`` task with
   that task's chosen coefficients (tasks with the same coefficients share one run);
4. ``adaptvis compare`` baseline vs each method run (paired tests, Holm-corrected per comparison),
   printed as one table: headline metric per task, deltas against the baseline, significance marks.

    python scripts/spatial_picture.py --pretrained PATH [--model llava_adaptvis] [--output DIR]
        [--batch-size 8] [--max-new-tokens N] [--limit N]

Without ``--pretrained`` it uses the embedded model. Datasets come from the hub, or from local copies
with ``ADAPTVIS_LMMS_DATA_DIR`` (docs/guides/TASKS.md, "Local mirrors"). A script, not a make target: the
Makefile belongs to the project's release targets, and a script takes the checkpoint and options
directly; it prints the wall time of every step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
METHODS = (("scaling_vis", "ScalingVis"), ("adapt_vis", "AdaptVis"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def lmms_eval(step: str, model: str, model_args: str, tasks: str, output: Path, extra: list[str]) -> float:
    """One lmms-eval run; returns its wall time. Stops the script when it wrote no results."""
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "lmms-eval"), "--model", model, "--model_args", model_args, "--tasks", tasks]
    command += ["--output_path", str(output), "--log_samples", *extra]
    print(f"\n[{step}] lmms-eval --model {model} --model_args {model_args} --tasks {tasks}", flush=True)
    started = time.time()
    log = output.parent / f"{output.name}.log"
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=_env())
    if code != 0 or not sorted(output.rglob("*_results.json")):
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"spatial picture: step {step!r} failed (exit {code}); last lines of {log}:\n{tail}")
    elapsed = time.time() - started
    print(f"[{step}] {elapsed:.0f} s", flush=True)
    return elapsed


def adaptvis(*args: str) -> str:
    result = subprocess.run([str(BIN / "adaptvis"), *args], capture_output=True, text=True, env=_env())
    if result.returncode != 0:
        raise SystemExit(f"spatial picture: `adaptvis {' '.join(args)}` failed:\n{result.stderr[-3000:]}")
    return result.stdout


def mark(p: float | None) -> str:
    """Significance marks on a Holm-corrected p value: ** < 0.01, * < 0.05."""
    if p is None:
        return " (n/a)"
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", help="checkpoint (default: the embedded model)")
    parser.add_argument("--model", default="llava_adaptvis", choices=("llava_adaptvis", "qwen2_vl_adaptvis"))
    parser.add_argument("--output", type=Path, default=Path("results/spatial_picture"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, help="cap every task's generation length (--gen_kwargs)")
    parser.add_argument("--limit", type=int, help="documents per task (lmms-eval --limit), for a quick look")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adaptvis_tasks.spatial import SPATIAL_TASKS, percent_factor

    if args.pretrained is None:
        from model_wrappers.embedded import checkpoint_path

        args.pretrained = str(checkpoint_path())
    started = time.time()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--batch_size", str(args.batch_size)]
    extra += ["--gen_kwargs", f"max_new_tokens={args.max_new_tokens}"] if args.max_new_tokens else []
    extra += ["--limit", str(args.limit)] if args.limit else []
    base = f"pretrained={args.pretrained},device=cpu"
    timings: dict[str, float] = {}

    trace = out / "val_sweep.trace.jsonl"
    trace.unlink(missing_ok=True)
    timings["sweep on every _val"] = lmms_eval(
        "1/4 sweep", args.model, f"{base},method=sweep,trace={trace}", "adaptvis_spatial_val", out / "val_sweep", extra
    )
    tune_json = out / "tune.json"
    tune_started = time.time()
    adaptvis("tune", str(trace), "--no-progress", "--format", "json", "--output", str(tune_json))
    timings["tune"] = time.time() - tune_started
    chosen = json.loads(tune_json.read_text())["tasks"]
    timings["baseline on every _test"] = lmms_eval(
        "3/4 baseline", args.model, base, "adaptvis_spatial_test", out / "baseline", extra
    )
    groups: list[tuple[str, Path, list[str]]] = []
    for method, label in METHODS:
        by_args: dict[str, list[str]] = {}
        for task in SPATIAL_TASKS:
            params = chosen[f"{task}_val"]["chosen"][method]["params"]
            by_args.setdefault(",".join(f"{k}={v}" for k, v in params.items()), []).append(f"{task}_test")
        for number, (coefficients, tasks) in enumerate(by_args.items()):
            folder = out / f"{method}_{number}"
            timings[f"{label} ({coefficients})"] = lmms_eval(
                f"3/4 {label} {coefficients}",
                args.model,
                f"{base},method={method},{coefficients}",
                ",".join(tasks),
                folder,
                extra,
            )
            groups.append((label, folder, tasks))

    compare_started = time.time()
    cells: dict[tuple[str, str], str] = {}
    baseline_values: dict[str, float] = {}
    for label, folder, tasks in groups:
        report = json.loads(
            adaptvis("compare", str(out / "baseline"), str(folder), "--no-progress", "--format", "json")
        )
        for row in report["rows"]:
            task = row["task"]
            if (
                task not in tasks
                or row["metric"].split(",")[0] != SPATIAL_TASKS[task.removesuffix("_test")].headline_metric
            ):
                continue
            factor = percent_factor(task)
            baseline_values[task] = factor * row["run0"]
            params = chosen[task.removesuffix("_test") + "_val"]["chosen"][
                "scaling_vis" if label == "ScalingVis" else "adapt_vis"
            ]["params"]
            shown = "/".join(f"{v:g}" for v in params.values())
            cells[(task, label)] = (
                f"{factor * row['run1']:.2f} ({factor * row['delta1']:+.2f}){mark(row.get('p_holm1'))} [{shown}]"
            )
    timings["compare"] = time.time() - compare_started

    lines = [
        "| Task (_test) | metric | Baseline | ScalingVis (delta) [alpha] | AdaptVis (delta) [alpha1/alpha2/beta] |",
        "|---|---|---:|---:|---:|",
    ]
    for task in (f"{name}_test" for name in SPATIAL_TASKS):
        metric = SPATIAL_TASKS[task.removesuffix("_test")].headline_metric
        lines.append(
            f"| {task} | {metric} | {baseline_values.get(task, float('nan')):.2f} | "
            f"{cells.get((task, 'ScalingVis'), 'n/a')} | {cells.get((task, 'AdaptVis'), 'n/a')} |"
        )
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    print("\nValues in percent; deltas against the baseline; * / ** = Holm-corrected paired p < 0.05 / 0.01.\n")
    print(table)
    print("\nWall time per step:")
    for step, seconds in timings.items():
        print(f"  {step}: {seconds:.0f} s")
    print(f"\nTotal {time.time() - started:.0f} s; everything is in {out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
