"""Guarantees of a run: same numbers every time, multi-process equals one process, a killed run
loses nothing it wrote and resumes without duplicates, and long runs do not leak memory.

All through the real ``lmms-eval`` command. The multi-process, interruption and soak tests are
marked ``slow``; CI runs them too (``make test`` runs everything).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_wrappers.trace import read_trace
from tests.support.cli import base_env, lmms_eval_command, read_run, run_lmms_eval, stable_results

pytestmark = pytest.mark.e2e

ACCELERATE = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
ADAPT_VIS = "method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3"


def _assert_same_metrics(got: dict, expected: dict) -> None:
    """Metric values equal exactly; their bootstrap/CLT stderrs up to float summation order."""
    assert got.keys() == expected.keys()
    for task, metrics in expected.items():
        assert got[task].keys() == metrics.keys()
        for key, value in metrics.items():
            if "stderr" in key and isinstance(value, float):
                assert got[task][key] == pytest.approx(value, rel=1e-9), (task, key)
            else:
                assert got[task][key] == value, (task, key)


def _model_args(checkpoint: Path, trace: Path, *extra: str) -> str:
    return ",".join([f"pretrained={checkpoint}", "device=cpu", ADAPT_VIS, f"trace={trace}", *extra])


def test_the_same_command_twice_writes_byte_identical_samples_and_results(tmp_path, tiny_llava, synthetic_mirror):
    output, trace = tmp_path / "out", tmp_path / "trace.jsonl"
    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    command = lmms_eval_command(
        "llava_adaptvis",
        _model_args(tiny_llava, trace),
        "whatsup_controlled_a,vsr_zeroshot",
        output,
        "--batch_size",
        "3",
        "--log_samples",
    )
    first = run_lmms_eval(command, env, output)
    trace_after_first = trace.read_bytes()
    first_files = {p.name: p.read_bytes() for p in output.rglob("*.json*")}
    time.sleep(1.1)  # lmms-eval names its files by the second
    subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
    second_files = {p.name: p.read_bytes() for p in output.rglob("*.json*") if p.name not in first_files}
    second = read_run(output)  # the newest results file
    assert stable_results(first.results) == stable_results(second.results)
    for task in ("whatsup_controlled_a", "vsr_zeroshot"):
        [old] = [content for name, content in first_files.items() if name.endswith(f"_samples_{task}.jsonl")]
        [new] = [content for name, content in second_files.items() if name.endswith(f"_samples_{task}.jsonl")]
        assert old == new
    assert trace.read_bytes() == trace_after_first  # the rerun added no duplicate lines


@pytest.mark.slow
def test_two_processes_give_the_same_metrics_answers_and_a_complete_trace(tmp_path, tiny_llava, synthetic_mirror):
    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    tasks = "whatsup_controlled_a,vsr_zeroshot"
    single_out = tmp_path / "single"
    single = run_lmms_eval(
        lmms_eval_command(
            "llava_adaptvis", _model_args(tiny_llava, tmp_path / "single.jsonl"), tasks, single_out, "--log_samples"
        ),
        env,
        single_out,
    )
    multi_out, multi_trace = tmp_path / "multi", tmp_path / "multi.jsonl"
    # On a CPU-only machine `--multi_gpu` is what makes accelerate start N gloo processes.
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "-m", "lmms_eval"]
    command += lmms_eval_command(
        "llava_adaptvis", _model_args(tiny_llava, multi_trace), tasks, multi_out, "--log_samples"
    )[1:]
    multi = run_lmms_eval(command, env, multi_out)
    assert "Running on rank 1" in multi.log  # really two processes
    _assert_same_metrics(multi.results["results"], single.results["results"])
    assert multi.results["n-samples"] == single.results["n-samples"]
    for task in ("whatsup_controlled_a", "vsr_zeroshot"):
        assert multi.answers(task) == single.answers(task)
    ranks = [list(read_trace(tmp_path / f"multi.rank{r}.jsonl")) for r in (0, 1)]
    keys = [{(r["task"], r["doc_id"]) for r in rank} for rank in ranks]
    assert keys[0].isdisjoint(keys[1]) and all(len(k) == len(rank) for k, rank in zip(keys, ranks, strict=True))
    merged = list(read_trace(multi_trace))
    expected = {(r["task"], r["doc_id"]) for r in read_trace(tmp_path / "single.jsonl")}
    assert {(r["task"], r["doc_id"]) for r in merged} == expected == keys[0] | keys[1]
    assert len(merged) == len(expected)


@pytest.mark.slow
def test_a_killed_run_keeps_whole_trace_lines_and_resumes_from_the_cache_without_duplicates(
    tmp_path, tiny_llava, make_mirror
):
    mirror = make_mirror({"Controlled_A": 48})
    env = base_env(mirror.data_dir, mirror.image_root)
    trace, cache, output = tmp_path / "trace.jsonl", tmp_path / "cache", tmp_path / "out"
    command = lmms_eval_command(
        "llava_adaptvis",
        _model_args(tiny_llava, trace, "resume=true"),
        "whatsup_controlled_a",
        output,
        "--use_cache",
        str(cache),
        "--gen_kwargs",
        "max_new_tokens=60",
    )
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not trace.exists() or trace.read_text().count("\n") < 8):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = trace.read_bytes()
    assert written.endswith(b"\n")
    lines_before = [json.loads(line) for line in written.decode().splitlines()]  # every line is whole JSON
    assert 8 <= len(lines_before) < 48
    assert not list(output.rglob("*_results.json"))

    rerun = run_lmms_eval(command, env, output)
    records = list(read_trace(trace))
    assert sorted(r["doc_id"] for r in records) == list(range(48))  # one line per document, none twice
    assert records[: len(lines_before)] == lines_before  # what the killed run wrote is kept as it was
    assert f"resumed {len(lines_before)} of 48 answers" in rerun.log  # those were not recomputed
    fresh_out = tmp_path / "fresh"
    fresh_command = lmms_eval_command(
        "llava_adaptvis",
        _model_args(tiny_llava, tmp_path / "fresh.jsonl"),
        "whatsup_controlled_a",
        fresh_out,
        "--gen_kwargs",
        "max_new_tokens=60",
    )
    fresh = run_lmms_eval(fresh_command, env, fresh_out)
    assert rerun.results["results"] == fresh.results["results"]

    again = run_lmms_eval(command, env, output)
    assert "all 48 requests served from cache" in again.log
    assert list(read_trace(trace)) == records
    assert again.results["results"] == fresh.results["results"]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


SOAK_DOCUMENTS = 2000
SOAK_RSS_GROWTH_BOUND_MIB = 64
"""Stated bound on resident-memory growth between 10% and 100% of the soak run (see README)."""


@pytest.mark.slow
def test_soak_2000_documents_one_answer_each_and_bounded_memory(tmp_path, tiny_llava, make_mirror):
    mirror = make_mirror({"COCO_one_obj": SOAK_DOCUMENTS})
    env = base_env(mirror.data_dir, mirror.image_root)
    trace, output = tmp_path / "trace.jsonl", tmp_path / "out"
    command = lmms_eval_command(
        "llava_adaptvis",
        _model_args(tiny_llava, trace),
        "whatsup_coco_one",
        output,
        "--batch_size",
        "8",
        "--gen_kwargs",
        "max_new_tokens=4",
    )
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[int, float]] = []
    while process.poll() is None:
        done = trace.read_text().count("\n") if trace.exists() else 0
        if 0 < done < SOAK_DOCUMENTS:
            samples.append((done, _rss_mib(process.pid)))
        time.sleep(0.2)
    log = process.stdout.read()
    run = read_run(output, log)
    warm = [rss for done, rss in samples if done >= SOAK_DOCUMENTS // 10]
    growth = max(warm) - warm[0]
    print(
        f"soak: RSS {warm[0]:.0f} MiB at 10% -> peak {max(warm):.0f} MiB; "
        f"growth {growth:.1f} MiB over {len(warm)} samples"
    )
    assert len(warm) > 20
    assert growth < SOAK_RSS_GROWTH_BOUND_MIB
    records = list(read_trace(trace))
    assert sorted(r["doc_id"] for r in records) == list(range(SOAK_DOCUMENTS))
    assert run.results["n-samples"]["whatsup_coco_one"] == {"original": SOAK_DOCUMENTS, "effective": SOAK_DOCUMENTS}
    assert all(isinstance(r["answer"], str) for r in records)
