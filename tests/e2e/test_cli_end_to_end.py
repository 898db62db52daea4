"""The real ``lmms-eval`` command, as a subprocess, on tiny checkpoints and a synthetic mirror.

lmms-eval 0.7.3 exits 0 even when the evaluation fails, so every assertion reads what the run
wrote: the results JSON, the samples JSONL and the trace. Each CLI start costs ~15 s of imports,
so the runs are shared by the tests of this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptvis_tasks.prompts import format_llava15_prompt
from model_wrappers.trace import read_trace
from tests.support.cli import Run, base_env, lmms_eval_command, run_lmms_eval

pytestmark = pytest.mark.e2e

ADAPT_VIS = "method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3"
WHATSUP_SUBSETS = ("controlled_a", "controlled_b", "coco_one", "coco_two", "vg_one", "vg_two")


class Runs:
    """Lazily started CLI runs, one per key, shared by the tests of this module."""

    def __init__(self, root: Path, checkpoints: dict[str, Path], mirror) -> None:
        self.root, self.checkpoints, self.mirror = root, checkpoints, mirror
        self.cache: dict[str, Run] = {}

    def env(self) -> dict[str, str]:
        return base_env(self.mirror.data_dir, self.mirror.image_root)

    def get(self, key: str, model: str, model_args: str, tasks: str, *extra: str) -> Run:
        if key not in self.cache:
            output = self.root / key
            command = lmms_eval_command(model, model_args, tasks, output, *extra)
            self.cache[key] = run_lmms_eval(command, self.env(), output)
        return self.cache[key]

    def adapt_vis(self, batch_size: int | None) -> Run:
        key = f"adapt_vis_bs{batch_size}"
        args = f"pretrained={self.checkpoints['llava']},device=cpu,{ADAPT_VIS},trace={self.root / key}.jsonl"
        extra = ["--log_samples"] + (["--batch_size", str(batch_size)] if batch_size else [])
        return self.get(key, "llava_adaptvis", args, "whatsup_controlled_a", *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoints, synthetic_mirror) -> Runs:
    return Runs(tmp_path_factory.mktemp("cli_runs"), tiny_checkpoints, synthetic_mirror)


def _documents(mirror, subset_dir: str) -> list[dict]:
    path = mirror.data_dir / subset_dir / "test.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_adapt_vis_at_batch_size_4_writes_results_samples_and_one_trace_line_per_document(runs):
    run = runs.adapt_vis(4)
    n_docs = len(_documents(runs.mirror, "Controlled_A"))
    assert run.results["n-samples"]["whatsup_controlled_a"]["effective"] == n_docs
    for metric in ("accuracy", "strict_accuracy", "pair_accuracy", "set_accuracy"):
        assert 0.0 <= run.metric("whatsup_controlled_a", metric) <= 1.0
    assert len(run.samples["whatsup_controlled_a"]) == n_docs
    trace = list(read_trace(runs.root / "adapt_vis_bs4.jsonl"))
    assert sorted(r["doc_id"] for r in trace) == list(range(n_docs))
    for record in trace:
        assert record["task"] == "whatsup_controlled_a" and record["method"] == "adapt_vis"
        assert record["alpha"] == (0.5 if round(record["confidence"], 2) < 0.3 else 1.5)
        assert record["answer"] == run.answers("whatsup_controlled_a")[record["doc_id"]]


def test_answers_are_the_same_with_and_without_batch_size(runs):
    batched, unbatched = runs.adapt_vis(4), runs.adapt_vis(None)
    assert batched.answers("whatsup_controlled_a") == unbatched.answers("whatsup_controlled_a")
    assert batched.results["results"] == unbatched.results["results"]
    assert unbatched.results["config"]["batch_size"] in (1, "1")


def test_llava15_prompts_are_the_papers_byte_for_byte(runs):
    run = runs.adapt_vis(4)
    published = {i: row["question"] for i, row in enumerate(_documents(runs.mirror, "Controlled_A"))}
    for sample in run.samples["whatsup_controlled_a"]:
        assert sample["input"] == published[sample["doc_id"]]
        assert sample["input"].startswith("<image>\nUSER: Where ") and sample["input"].endswith("\nASSISTANT:")
    bare = published[0].removeprefix("<image>\nUSER: ").removesuffix("\nASSISTANT:")
    assert format_llava15_prompt(bare) == published[0]


def test_paper_suite_groups_report_every_metric(runs):
    tasks = "whatsup,vsr_zeroshot"
    args = f"pretrained={runs.checkpoints['llava']},device=cpu"
    run = runs.get("paper_groups", "llava_adaptvis", args, tasks, "--batch_size", "4", "--log_samples")
    for subset in WHATSUP_SUBSETS:
        assert 0.0 <= run.metric(f"whatsup_{subset}", "accuracy") <= 1.0
        assert 0.0 <= run.metric(f"whatsup_{subset}", "strict_accuracy") <= 1.0
    for subset in ("controlled_a", "controlled_b"):
        assert {"pair_accuracy,none", "set_accuracy,none"} <= set(run.results["results"][f"whatsup_{subset}"])
    for metric in ("accuracy", "f1", "paper_f1", "strict_accuracy"):
        assert 0.0 <= run.metric("vsr_zeroshot", metric) <= 1.0
    assert run.samples["vsr_zeroshot"][0]["input"].startswith(
        "User: <image>\n Determine whether the description about the spatial relationship is correct or not. "
        "Answer with yes or no: "
    )
    assert run.results["group_subtasks"]["whatsup"] == [f"whatsup_{subset}" for subset in WHATSUP_SUBSETS]


def test_qwen2_vl_runs_without_output_path_and_prints_its_table(runs):
    from subprocess import run as subprocess_run

    args = f"pretrained={runs.checkpoints['qwen2_vl']},device=cpu,method=scaling_vis,alpha=0.8"
    command = lmms_eval_command("qwen2_vl_adaptvis", args, "whatsup_controlled_b,vsr_zeroshot", Path("unused"))
    command = [*command[: command.index("--output_path")], "--batch_size", "4"]
    completed = subprocess_run(command, env=runs.env(), capture_output=True, text=True, timeout=600)
    table = [line for line in completed.stdout.splitlines() if line.startswith("|")]
    rows = {(cells[1].strip(), cells[4].strip()) for cells in (line.split("|") for line in table) if len(cells) > 5}
    assert ("whatsup_controlled_b", "accuracy") in rows and ("vsr_zeroshot", "paper_f1") in rows, completed.stdout[
        -3000:
    ]
    assert not Path("unused").exists()


def test_llava_next_sweep_traces_every_alpha(runs):
    trace = runs.root / "sweep.jsonl"
    args = f"pretrained={runs.checkpoints['llava_next']},device=cpu,method=sweep,alphas=0.5|2.0,trace={trace}"
    run = runs.get("sweep", "llava_adaptvis", args, "whatsup_coco_one", "--batch_size", "3", "--log_samples")
    records = list(read_trace(trace))
    assert len(records) == run.results["n-samples"]["whatsup_coco_one"]["effective"]
    answers = run.answers("whatsup_coco_one")
    for record in records:
        assert set(record["answers"]) == {"1.0", "0.5", "2.0"}
        assert record["answer"] == record["answers"]["1.0"] == answers[record["doc_id"]]
        assert record["alpha"] == 1.0 and 0.0 < record["confidence"] <= 1.0
