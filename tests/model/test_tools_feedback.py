"""What a researcher reads: the failure message once, the dtype in the log, the main job's summary and next steps."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from loguru import logger

from adaptvis_tasks.analysis import tune
from model_wrappers.lmms_plugin import failure_exit
from model_wrappers.methods import MethodArgumentError

ROOT = Path(__file__).resolve().parents[2]


def _fail(error: Exception) -> None:
    try:
        raise error
    except Exception as raised:
        failure_exit._exit_after(
            raised, failure_exit.explain_failure(raised, "pretrained=x,alpah=0.5", ["whatsup_controlled_a"])
        )


def test_a_suite_error_is_printed_once_without_a_traceback(capsys):
    message = "llava_adaptvis: unknown model argument(s) alpah (alpah: did you mean alpha?); allowed: alpha"
    with pytest.raises(SystemExit) as caught:
        _fail(MethodArgumentError(message))
    assert caught.value.code == 1
    printed = capsys.readouterr()
    log = printed.out + printed.err
    assert log.count("unknown model argument(s) alpah") == 1, log
    assert "Traceback" not in log
    assert "Error during evaluation -- adaptvis-eval: the evaluation FAILED (MethodArgumentError)" in printed.err


def test_an_unexpected_error_keeps_its_traceback(capsys):
    with pytest.raises(SystemExit):
        _fail(KeyError("image_sizes"))
    err = capsys.readouterr().err
    assert "Traceback" in err and "adaptvis-eval: the evaluation FAILED (KeyError)" in err


def test_the_log_states_the_dtype_in_use(tiny_llava):
    from model_wrappers.llava import LlavaAdaptVis

    messages: list[str] = []
    sink = logger.add(messages.append, level="INFO")
    try:
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu")
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", dtype="bfloat16")
    finally:
        logger.remove(sink)
    loaded = [m for m in messages if "llava_adaptvis:" in m and str(tiny_llava) in m]
    assert "on cpu, dtype float32 (dtype=auto)," in loaded[0], loaded
    assert "on cpu, dtype bfloat16," in loaded[1], loaded


def _main_job():
    spec = importlib.util.spec_from_file_location("main_job", ROOT / "scripts" / "main_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sweep_record(doc_id: int, answers: dict[str, str], doc: dict) -> dict:
    return {
        "task": "whatsup_synthetic_a_val",
        "split": "val",
        "doc_id": doc_id,
        "method": "sweep",
        "confidence": 0.9,
        "alpha": 1.0,
        "answer": answers["1.0"],
        "run": "r",
        "pretrained": "ckpt",
        "model_type": "llava",
        "layers": "all",
        "answers": answers,
        "doc": doc,
    }


def test_main_job_prints_the_baseline_beside_the_choices_and_the_next_commands(tmp_path):
    from adaptvis_tasks.data import load_descriptors, load_rows

    rows = load_rows(load_descriptors()["Synthetic_A"]).rows[:2]
    wrong = {"0.5": "Under", "0.8": "Under", "1.2": "Under", "1.5": "Under", "2.0": "Under"}
    records = [_sweep_record(i, {"1.0": row["answer"][0], **wrong}, row) for i, row in enumerate(rows)]
    trace = tmp_path / "val_sweep.trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in records))
    parser = __import__("argparse").ArgumentParser()
    tune.add_arguments(parser)
    report = tune.tune(parser.parse_args([str(trace), "--no-progress"]))
    chosen = report["tasks"]
    job = _main_job()
    lines = job.tuned_summary("A", chosen["whatsup_synthetic_a_val"]["chosen"])
    assert lines[0].startswith(
        "  subset A: validation accuracy: baseline (alpha = 1) 1.000; ScalingVis alpha=0.5 0.000"
    )
    assert (
        "no configuration of either grid beats the baseline on validation (ScalingVis best -1.000; AdaptVis" in lines[1]
    )
    adapt_trace = tmp_path / "adapt_vis_a.trace.jsonl"
    adapt = {**records[1], "task": "whatsup_synthetic_a_test", "method": "adapt_vis", "answer": "Under"}
    adapt_trace.write_text(json.dumps(adapt) + "\n")
    runs = [("Baseline", tmp_path / "baseline"), ("ScalingVis", tmp_path / "s"), ("AdaptVis", tmp_path / "a")]
    commands = job.next_commands(tmp_path, runs, [adapt_trace], chosen)
    assert commands[0].startswith(f"adaptvis compare {tmp_path / 'baseline'} {tmp_path / 'a'}")
    assert commands[1].startswith(f"adaptvis curves {trace} --output-dir {tmp_path / 'curves'}")
    image = commands[2].split("--image ")[1].split(" ")[0]
    assert Path(image).is_file() and "--method adapt_vis --alpha1 0.5 --alpha2 1.2 --threshold 0.2" in commands[2]
    assert "AdaptVis answered 'Under'" in commands[2]
    sys.modules.pop("main_job", None)
