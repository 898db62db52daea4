"""``adaptvis tune``: one sweep run predicts every configuration's validation metrics exactly.

The end-to-end test runs lmms-eval itself (in process, to keep it fast): a ``method=sweep`` run
with a trace on ``whatsup_controlled_a_val``, then real ``adapt_vis`` and ``scaling_vis`` runs
at grid points the tuner scored; every metric must be equal, not close.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaptvis_tasks.analysis import tune
from adaptvis_tasks.data import DATA_DIR_ENV, IMAGE_ROOT_ENV
from adaptvis_tasks.synthetic import SMALL_ROWS
from model_wrappers import cli

QUESTION = "<image>\nUSER: Where is the dog in the photo? Answer with left, right, top or bottom.\nASSISTANT:"


def _doc(row: int, gold: str, subset: str = "COCO_one_obj") -> dict:
    return {"question": QUESTION, "answer": [gold], "subset": subset, "row": row, "suite_split": "val", "image_id": row}


def _record(doc_id: int, confidence: float, answers: dict[str, str], doc: dict, **extra) -> dict:
    return {
        "task": "whatsup_coco_one_val",
        "split": "val",
        "lmms_eval_split": "test",
        "doc_id": doc_id,
        "method": "sweep",
        "confidence": confidence,
        "alpha": 1.0,
        "answer": answers["1.0"],
        "run": "abc",
        "input_sha": "0" * 16,
        "pretrained": "ckpt",
        "model_type": "llava",
        "layers": "all",
        "answers": answers,
        "doc": doc,
        **extra,
    }


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _args(trace: Path, *extra: str):
    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    return parser.parse_args([str(trace), "--no-progress", *extra])


def _answers(a05: str, a08: str, a1: str, a12: str, a15: str, a2: str) -> dict[str, str]:
    return {"1.0": a1, "0.5": a05, "0.8": a08, "1.2": a12, "1.5": a15, "2.0": a2}


@pytest.fixture
def hand_trace(tmp_path) -> Path:
    """Four documents with hand-picked confidences around the rounding boundary."""
    return _write(
        tmp_path / "sweep.jsonl",
        [
            # C rounds to 0.30: == beta 0.30 -> alpha2 (not below)
            _record(0, 0.2951, _answers("Left", "Left", "Right", "Right", "Right", "Right"), _doc(0, "Right")),
            # C rounds to 0.29 -> alpha1 at beta 0.30
            _record(1, 0.2949, _answers("Top", "Top", "Bottom", "Bottom", "Bottom", "Bottom"), _doc(1, "Top")),
            _record(2, 0.9, _answers("Left", "Left", "Left", "Left", "Right", "Left"), _doc(2, "Left")),
            _record(3, 0.1, _answers("Bottom", "Top", "Top", "Top", "Top", "Top"), _doc(3, "Bottom")),
        ],
    )


def _straightforward_adaptvis_accuracy(trace: Path, alpha1: float, alpha2: float, beta: float) -> float:
    """An independent replay: round C to 2 decimals with numpy, compare, substring-score the answer."""
    correct = 0
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    for record in records:
        alpha = alpha1 if np.round(record["confidence"], 2) < beta else alpha2
        answer = record["answers"][repr(alpha)]
        correct += record["doc"]["answer"][0].lower() in answer.lower()
    return correct / len(records)


def test_replayed_adaptvis_equals_a_straightforward_replay_at_every_grid_point(hand_trace):
    report = tune.tune(_args(hand_trace))
    rows = [r for r in report["tasks"]["whatsup_coco_one_val"]["configurations"] if r["method"] == "adapt_vis"]
    assert len(rows) == 2 * 3 * 8  # the paper's grid for LLaVA-1.5
    for row in rows:
        expected = _straightforward_adaptvis_accuracy(hand_trace, row["alpha1"], row["alpha2"], row["threshold"])
        assert row["accuracy"] == expected, row


def test_confidence_equal_to_beta_after_rounding_takes_alpha2(hand_trace):
    report = tune.tune(_args(hand_trace, "--betas", "0.3", "--alpha1s", "0.5", "--alpha2s", "1.2"))
    [row] = [r for r in report["tasks"]["whatsup_coco_one_val"]["configurations"] if r["method"] == "adapt_vis"]
    # doc 0 (0.2951 -> 0.30) takes alpha2 and answers Right (correct); doc 1 (0.29) takes alpha1: Top (correct);
    # doc 2 (0.9) alpha2 Left (correct); doc 3 (0.1) alpha1 Bottom (correct)
    assert row["n_alpha1"] == 2 and row["accuracy"] == 1.0
    unrounded = tune.tune(
        _args(hand_trace, "--betas", "0.3", "--alpha1s", "0.5", "--alpha2s", "1.2", "--confidence-rule", "unrounded")
    )
    [row] = [r for r in unrounded["tasks"]["whatsup_coco_one_val"]["configurations"] if r["method"] == "adapt_vis"]
    assert row["n_alpha1"] == 3 and row["accuracy"] == 0.75  # doc 0 now below 0.3: alpha1 answers Left


def test_ties_go_to_the_first_configuration_in_grid_order_and_the_test_command_is_printed(hand_trace, capsys):
    assert cli.main(["tune", str(hand_trace), "--no-progress", "--alphas", "2.0,1.2"]) == 0
    out = capsys.readouterr().out
    # alpha 1.2 and 2.0 both answer Right, Bottom, Left, Top: accuracy 0.5 each; 1.2 comes first
    assert "**scaling_vis**: alpha=1.2 -> validation accuracy 0.5000" in out
    assert "--model_args pretrained=ckpt,method=scaling_vis,alpha=1.2 --tasks whatsup_coco_one_test" in out
    report = tune.tune(_args(hand_trace))
    adapt = [r for r in report["tasks"]["whatsup_coco_one_val"]["configurations"] if r["method"] == "adapt_vis"]
    top = max(r["accuracy"] for r in adapt)
    first = next(r for r in adapt if r["accuracy"] == top)
    chosen = report["tasks"]["whatsup_coco_one_val"]["chosen"]["adapt_vis"]["params"]
    assert chosen == {"alpha1": first["alpha1"], "alpha2": first["alpha2"], "threshold": first["threshold"]}


def test_paper_beta_grids_per_model_family():
    assert tune.beta_grid(*tune.BETA_RANGES["llava"]) == (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)
    assert tune.beta_grid(*tune.BETA_RANGES["llava_next"]) == (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)


def test_vsr_beta_is_the_mean_of_the_two_labels_average_confidences(tmp_path):
    vsr_doc = {"caption": "The cat is left of the dog.", "label": 1, "subset": "vsr_zeroshot", "row": 0}
    records = []
    for doc_id, (label, confidence) in enumerate([(1, 0.2), (1, 0.4), (0, 0.9), (0, 0.5), (0, 0.7)]):
        doc = {**vsr_doc, "label": label, "row": doc_id, "suite_split": "val"}
        records.append(_record(doc_id, confidence, _answers("Yes", "No", "Yes", "No", "Yes", "No"), doc))
    report = tune.tune(_args(_write(tmp_path / "vsr.jsonl", records)))
    [task] = report["tasks"].values()
    assert task["betas"] == [pytest.approx(((0.2 + 0.4) / 2 + (0.9 + 0.5 + 0.7) / 3) / 2)]
    assert {"accuracy", "f1", "paper_f1"} <= set(task["configurations"][0])


def test_bad_traces_are_refused_with_the_file_and_line(tmp_path, hand_trace, capsys):
    baseline = _record(0, 0.5, _answers(*"LLLLLL"), _doc(0, "Left"), method="baseline")
    assert cli.main(["tune", str(_write(tmp_path / "b.jsonl", [baseline]))]) == 2
    assert "no method=sweep records (it holds method=baseline records)" in capsys.readouterr().err
    old = _record(0, 0.5, _answers(*"LLLLLL"), _doc(0, "Left"))
    del old["doc"]
    assert cli.main(["tune", str(_write(tmp_path / "old.jsonl", [old]))]) == 2
    assert "old.jsonl:1: the record has no 'doc'" in capsys.readouterr().err
    on_test = _record(0, 0.5, _answers(*"LLLLLL"), _doc(0, "Left"), split="test")
    assert cli.main(["tune", str(_write(tmp_path / "t.jsonl", [on_test]))]) == 2
    assert "not the validation split" in capsys.readouterr().err
    assert cli.main(["tune", str(hand_trace), "--alphas", "0.7"]) == 2
    assert "has no answer for alpha=0.7" in capsys.readouterr().err
    assert cli.main(["tune", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err


def test_model_free_tools_import_no_model_code_in_a_fresh_interpreter():
    code = (
        "import sys\n"
        "import adaptvis_tasks.analysis.tune, adaptvis_tasks.analysis.compare, adaptvis_tasks.analysis.table\n"
        "import adaptvis_tasks.analysis.curves, adaptvis_tasks.confidence\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'model_wrappers'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def _evaluate(checkpoint: Path, model_args: str, task: str) -> dict:
    """One real lmms-eval evaluation (simple_evaluate, the CLI's own entry), metrics without stderrs."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from yaml_tasks import tasks_dir

    manager = TaskManager("WARNING", include_path=tasks_dir(), include_defaults=False)
    results = simple_evaluate(
        model="llava_adaptvis",
        model_args=f"pretrained={checkpoint},device=cpu,{model_args}",
        tasks=[task],
        batch_size=4,
        task_manager=manager,
    )
    return {
        key.split(",")[0]: value
        for key, value in results["results"][task].items()
        if "," in key and "stderr" not in key
    }


@pytest.mark.e2e
def test_tuned_predictions_equal_real_adaptvis_and_scalingvis_runs(tmp_path, tiny_llava, make_mirror, monkeypatch):
    mirror = make_mirror(rows={**SMALL_ROWS, "Controlled_A": 80})  # 16 validation documents
    monkeypatch.setenv(DATA_DIR_ENV, str(mirror.data_dir))
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(mirror.image_root))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = "whatsup_controlled_a_val"
    trace = tmp_path / "val_sweep.jsonl"
    sweep_metrics = _evaluate(tiny_llava, f"method=sweep,trace={trace}", task)
    first = json.loads(trace.read_text().splitlines()[0])
    assert (first["split"], first["lmms_eval_split"], first["doc"]["suite_split"]) == ("val", "test", "val")
    report = tune.tune(_args(trace))["tasks"][task]
    assert report["split"] == "val" and report["documents"] == 16
    rows = report["configurations"]
    assert {k: rows[0][k] for k in sweep_metrics} == sweep_metrics  # the baseline row is the sweep's own score
    adapt = [r for r in rows if r["method"] == "adapt_vis"]
    mixed = [r for r in adapt if 0 < r["n_alpha1"] < 16]
    assert mixed, "the tiny model's confidences should straddle some beta of the grid"
    chosen = report["chosen"]["adapt_vis"]["params"]
    picks = [
        ("adapt_vis", chosen),
        ("adapt_vis", {k: mixed[len(mixed) // 2][k] for k in ("alpha1", "alpha2", "threshold")}),
        ("scaling_vis", report["chosen"]["scaling_vis"]["params"]),
    ]
    for method, params in picks:
        predicted = next(r for r in rows if r["method"] == method and all(r[k] == v for k, v in params.items()))
        model_args = ",".join([f"method={method}", *(f"{k}={v!r}" for k, v in params.items())])
        real = _evaluate(tiny_llava, model_args, task)
        assert {k: predicted[k] for k in real} == real, (method, params)


def test_every_choice_is_shown_beside_the_baseline_and_a_losing_grid_is_said_plainly(tmp_path, capsys):
    # alpha = 1 answers everything right; every other alpha answers doc 0 wrong: no configuration beats it
    records = [
        _record(0, 0.9, _answers("Left", "Left", "Right", "Left", "Left", "Left"), _doc(0, "Right")),
        _record(1, 0.1, _answers("Top", "Top", "Top", "Top", "Top", "Top"), _doc(1, "Top")),
    ]
    trace = _write(tmp_path / "sweep.jsonl", records)
    assert cli.main(["tune", str(trace), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "**scaling_vis**: alpha=0.5 -> validation accuracy 0.5000 (baseline alpha = 1: 1.0000)" in out
    assert "Every ScalingVis configuration is WORSE than the baseline (alpha = 1): best accuracy 0.5000" in out
    assert "Every AdaptVis configuration is WORSE than the baseline (alpha = 1)" in out
    assert "the paper's grids, which exclude alpha = 1 (--include-baseline adds it)" in out
    assert (
        cli.main(["tune", str(trace), "--no-progress", "--format", "json", "--output", str(tmp_path / "t.json")]) == 0
    )
    assert "adaptvis tune: whatsup_coco_one_val: Every ScalingVis configuration is WORSE" in capsys.readouterr().err
    report = tune.tune(_args(trace))
    chosen = report["tasks"]["whatsup_coco_one_val"]["chosen"]
    assert chosen["scaling_vis"]["baseline_metrics"]["accuracy"] == 1.0
    assert chosen["scaling_vis"]["beats_baseline"] is False and chosen["adapt_vis"]["beats_baseline"] is False


def test_include_baseline_adds_alpha_1_to_every_grid_and_a_no_op_wins_ties(tmp_path):
    records = [
        _record(0, 0.9, _answers("Left", "Left", "Right", "Left", "Left", "Left"), _doc(0, "Right")),
        _record(1, 0.1, _answers("Top", "Top", "Top", "Top", "Top", "Top"), _doc(1, "Top")),
    ]
    trace = _write(tmp_path / "sweep.jsonl", records)
    report = tune.tune(_args(trace, "--include-baseline"))
    task = report["tasks"]["whatsup_coco_one_val"]
    scaling = [r["alpha"] for r in task["configurations"] if r["method"] == "scaling_vis"]
    assert scaling == [0.5, 0.8, 1.0, 1.2, 1.5, 2.0]
    adapt = [r for r in task["configurations"] if r["method"] == "adapt_vis"]
    assert len(adapt) == 3 * 4 * 8 and {r["alpha1"] for r in adapt} == {0.5, 0.8, 1.0}
    assert task["chosen"]["scaling_vis"]["params"] == {"alpha": 1.0}
    assert task["chosen"]["adapt_vis"]["params"]["alpha1"] == task["chosen"]["adapt_vis"]["params"]["alpha2"] == 1.0
    assert "No ScalingVis configuration beats the baseline" in task["chosen"]["scaling_vis"]["verdict"]
    assert report["include_baseline"] is True and "no-op configuration (alpha = 1)" in report["tie_break"]
