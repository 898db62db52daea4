"""lmms-eval's spatial tasks through the real ``lmms-eval`` CLI, offline, on local mirrors.

lmms-eval's own task YAML and utils.py read small copies of the datasets in their real schema
(``ADAPTVIS_LMMS_DATA_DIR``, tests/support/spatial_mirrors.py). The suite's wrappers at method=baseline
answer exactly like lmms-eval's built-in models on the same tiny checkpoints; the ``_val`` and
``_test`` layers partition every task; a sweep on ``adaptvis_spatial_val`` traces every document.
Every run passes ``--gen_kwargs max_new_tokens=8`` to both sides: the tasks ask for up to 4096 new
tokens, which a random tiny model fills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptvis_tasks.spatial import MIRROR_ENV, SPATIAL_TASKS
from model_wrappers.trace import read_trace
from tests.support.cli import Run, base_env, lmms_eval_command, run_lmms_eval
from tests.support.spatial_mirrors import write_spatial_mirrors

pytestmark = pytest.mark.e2e

TASKS = list(SPATIAL_TASKS)
GEN = ("--gen_kwargs", "max_new_tokens=8")


class SpatialRuns:
    """CLI runs shared by this module's tests, started on first use."""

    def __init__(self, root: Path, checkpoints: dict[str, Path]) -> None:
        self.root, self.checkpoints = root, checkpoints
        self.mirror = write_spatial_mirrors(root / "mirror")
        self.cache: dict[str, Run] = {}

    def get(self, key: str, model: str, model_args: str, tasks: str, *extra: str) -> Run:
        if key not in self.cache:
            output = self.root / key
            env = base_env(**{MIRROR_ENV: str(self.mirror)})
            self.cache[key] = run_lmms_eval(
                lmms_eval_command(model, model_args, tasks, output, *GEN, "--log_samples", *extra), env, output, 900
            )
        return self.cache[key]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoints) -> SpatialRuns:
    return SpatialRuns(tmp_path_factory.mktemp("spatial_cli"), tiny_checkpoints)


def _llava(runs: SpatialRuns, ours: bool) -> Run:
    path = runs.checkpoints["llava"]
    if ours:
        return runs.get(
            "llava_ours", "llava_adaptvis", f"pretrained={path},device=cpu", "adaptvis_spatial", "--batch_size", "4"
        )
    return runs.get("llava_hf", "llava_hf", f"pretrained={path},device=cpu,device_map=cpu", "adaptvis_spatial")


def _qwen(runs: SpatialRuns, ours: bool) -> Run:
    path = runs.checkpoints["qwen2_vl"]
    tasks = ",".join(TASKS)
    if ours:
        return runs.get("qwen_ours", "qwen2_vl_adaptvis", f"pretrained={path},device=cpu", tasks, "--limit", "3")
    return runs.get("qwen2_vl", "qwen2_vl", f"pretrained={path},device=cpu,device_map=cpu", tasks, "--limit", "3")


def test_llava_adaptvis_baseline_answers_like_lmms_eval_llava_hf_on_every_spatial_task(runs):
    ours, theirs = _llava(runs, True), _llava(runs, False)
    for task in TASKS:
        assert ours.answers(task) == theirs.answers(task), task
        metric = SPATIAL_TASKS[task].headline_metric
        assert ours.metric(task, metric) == theirs.metric(task, metric), task
        assert [s["input"] for s in ours.samples[task]] == [s["input"] for s in theirs.samples[task]]
    assert ours.results["group_subtasks"]["adaptvis_spatial"] == TASKS


def test_qwen2_vl_adaptvis_baseline_answers_like_lmms_eval_qwen2_vl(runs):
    ours, theirs = _qwen(runs, True), _qwen(runs, False)
    for task in TASKS:
        assert len(ours.answers(task)) == 3
        assert ours.answers(task) == theirs.answers(task), task


def test_val_and_test_layers_partition_each_task_and_tune_picks_coefficients_from_one_sweep(runs):
    import json
    import subprocess
    import sys

    path = runs.checkpoints["llava"]
    trace = runs.root / "sweep.jsonl"
    sweep = runs.get(
        "sweep",
        "llava_adaptvis",
        f"pretrained={path},device=cpu,method=sweep,trace={trace}",
        "adaptvis_spatial_val",
        "--batch_size",
        "4",
    )
    test = runs.get(
        "test", "llava_adaptvis", f"pretrained={path},device=cpu", "adaptvis_spatial_test", "--batch_size", "4"
    )
    full = _llava(runs, True)
    records = list(read_trace(trace))
    for task in TASKS:
        n_full = full.results["n-samples"][task]["effective"]
        n_val = sweep.results["n-samples"][f"{task}_val"]["effective"]
        n_test = test.results["n-samples"][f"{task}_test"]["effective"]
        assert n_val + n_test == n_full and 0 < n_val < n_test, task
        inputs = [s["input"] for s in sweep.samples[f"{task}_val"] + test.samples[f"{task}_test"]]
        assert sorted(inputs) == sorted(s["input"] for s in full.samples[task])
        traced = [r for r in records if r["task"] == f"{task}_val"]
        assert len(traced) == n_val and all(r["split"] == "val" and "1.0" in r["answers"] for r in traced)
    tuned = subprocess.run(
        [sys.executable, "-m", "model_wrappers.cli", "tune", str(trace), "--no-progress", "--format", "json"],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=600,
    )
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    report = json.loads(tuned.stdout)["tasks"]
    for task in TASKS:
        entry = report[f"{task}_val"]
        assert entry["metric"] == SPATIAL_TASKS[task].headline_metric
        assert entry["chosen"]["scaling_vis"]["test_task"] == f"{task}_test"
        baseline = next(c for c in entry["configurations"] if c["method"] == "baseline")
        # the baseline replayed from the trace scores like lmms-eval scored the run (alpha = 1 answers)
        assert baseline[entry["metric"]] == pytest.approx(sweep.metric(f"{task}_val", entry["metric"]))
