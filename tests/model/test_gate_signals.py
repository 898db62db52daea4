"""AdaptVis with other uncertainty signals (gate_signal=): computed right, applied per row, tunable from one sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from adaptvis_tasks.analysis import tune
from adaptvis_tasks.confidence import GATE_SIGNALS, adaptvis_alpha, gate_values
from model_wrappers.intervention import first_token_confidence
from model_wrappers.methods import MethodArgumentError, MethodConfig
from model_wrappers.methods.scaling import first_token_gate_values
from tests.model.test_tune import _answers, _args, _doc, _record, _write
from tests.support.decoding_helpers import Harness


def test_signals_match_a_hand_computation():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    values = gate_values(p)
    entropy = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert values == pytest.approx(
        {"max_prob": 0.5, "normalized_entropy": 1 - entropy / math.log(4), "top2_margin": 0.2}, abs=1e-12
    )
    assert gate_values(np.array([1.0, 0.0, 0.0]))["normalized_entropy"] == 1.0
    assert gate_values(np.full(8, 1 / 8))["normalized_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert set(values) == set(GATE_SIGNALS)


def test_the_decoders_signals_equal_the_numpy_definition_and_max_prob_is_c():
    logits = torch.randn(5, 600, generator=torch.Generator().manual_seed(0)) * 3
    ours = first_token_gate_values(logits)
    for row, values in zip(logits, ours, strict=True):
        expected = gate_values(torch.softmax(row.double(), -1).numpy())
        assert values == pytest.approx(expected, abs=1e-5)
    assert [v["max_prob"] for v in ours] == first_token_confidence(logits).tolist()


def test_gate_signal_is_an_adapt_vis_argument():
    config = MethodConfig.from_model_args(
        method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3, gate_signal="top2_margin"
    )
    assert config.describe()["gate_signal"] == "top2_margin"
    default = MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3)
    assert default.gate_signal == "max_prob" and "gate_signal" not in default.describe()  # old fingerprints hold
    with pytest.raises(MethodArgumentError, match="gate_signal='entropy' is not supported; allowed: max_prob"):
        MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3, gate_signal="entropy")
    with pytest.raises(MethodArgumentError, match="gate_signal is not used by method=scaling_vis"):
        MethodConfig.from_model_args(method="scaling_vis", alpha=0.5, gate_signal="top2_margin")


@pytest.fixture(scope="module")
def harness(tiny_llava) -> Harness:
    return Harness(tiny_llava, "llava")


@pytest.mark.parametrize("signal", ["normalized_entropy", "top2_margin", "max_prob"])
def test_one_sweep_predicts_adapt_vis_under_every_signal(harness, signal):
    indices = list(range(8))
    sweep = harness.generate(indices, "sweep", alphas="0.5|1.5")
    values = [out.gate_values[signal] for out in sweep]
    assert all(out.gate_values["max_prob"] == out.confidence for out in sweep)
    threshold = float(np.median(values))  # some rows below, some above
    expected_alphas = [adaptvis_alpha(v, threshold, 0.5, 1.5, "unrounded") for v in values]
    assert 0 < expected_alphas.count(0.5) < len(indices)
    real = harness.generate(
        indices,
        "adapt_vis",
        alpha1=0.5,
        alpha2=1.5,
        threshold=threshold,
        gate_signal=signal,
        confidence_rule="unrounded",
    )
    assert [out.alpha for out in real] == expected_alphas
    assert [out.tokens for out in real] == [s.sweep[a] for s, a in zip(sweep, expected_alphas, strict=True)]
    for mine, swept in zip(real, sweep, strict=True):
        assert mine.gate_values == pytest.approx(swept.gate_values, abs=1e-6)


def test_tune_chooses_the_threshold_of_another_signal_from_the_same_trace(tmp_path):
    answers = [
        _answers("Left", "Left", "Right", "Right", "Right", "Right"),
        _answers("Top", "Top", "Bottom", "Bottom", "Bottom", "Bottom"),
    ]
    gold = ["Right", "Top"]
    # max_prob 0.5 for both; the margin separates them: doc 1 (margin 0.05) wants alpha1 (0.5 -> Top)
    gates = [
        {"max_prob": 0.5, "normalized_entropy": 0.4, "top2_margin": 0.45},
        {"max_prob": 0.5, "normalized_entropy": 0.3, "top2_margin": 0.05},
    ]
    records = [_record(i, 0.5, answers[i], _doc(i, gold[i]), gate_values=gates[i]) for i in range(2)]
    trace = _write(tmp_path / "sweep.jsonl", records)
    report = tune.tune(_args(trace, "--gate-signal", "top2_margin", "--alpha1s", "0.5", "--alpha2s", "1.2"))
    task = report["tasks"]["whatsup_coco_one_val"]
    assert report["gate_signal"] == "top2_margin" and task["betas"][0] == 0.05 and len(task["betas"]) == 19
    chosen = task["chosen"]["adapt_vis"]
    assert chosen["metrics"]["accuracy"] == 1.0 and 0.05 < chosen["params"]["threshold"] <= 0.45
    assert "gate_signal=top2_margin" in chosen["model_args"]
    by_c = tune.tune(_args(trace, "--betas", "0.3,0.6", "--alpha1s", "0.5", "--alpha2s", "1.2"))
    assert by_c["tasks"]["whatsup_coco_one_val"]["chosen"]["adapt_vis"]["metrics"]["accuracy"] == 0.5
    old = _write(tmp_path / "old.jsonl", [_record(0, 0.5, answers[0], _doc(0, "Right"))])
    with pytest.raises(tune.AnalysisError, match=r"old.jsonl:1: the sweep record has no gate_values\['top2_margin'\]"):
        tune.tune(_args(old, "--gate-signal", "top2_margin"))
    assert json.loads(trace.read_text().splitlines()[0])["gate_values"] == gates[0]


@pytest.mark.e2e  # real lmms-eval runs (simple_evaluate), as in test_tune
def test_a_real_sweep_trace_tunes_another_signal_and_the_tuned_run_scores_as_predicted(
    tmp_path, tiny_llava, make_mirror, monkeypatch
):
    from adaptvis_tasks.data import DATA_DIR_ENV, IMAGE_ROOT_ENV
    from adaptvis_tasks.synthetic import SMALL_ROWS
    from tests.model.test_tune import _evaluate

    mirror = make_mirror(rows={**SMALL_ROWS, "Controlled_A": 80})  # 16 validation documents
    monkeypatch.setenv(DATA_DIR_ENV, str(mirror.data_dir))
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(mirror.image_root))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    task = "whatsup_controlled_a_val"
    trace = tmp_path / "val_sweep.jsonl"
    _evaluate(tiny_llava, f"method=sweep,trace={trace}", task)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert all(set(r["gate_values"]) == set(GATE_SIGNALS) for r in records)
    assert all(r["gate_values"]["max_prob"] == r["confidence"] for r in records)
    report = tune.tune(_args(trace, "--gate-signal", "top2_margin"))["tasks"][task]
    adapt = [r for r in report["configurations"] if r["method"] == "adapt_vis"]
    mixed = [r for r in adapt if 0 < r["n_alpha1"] < 16]
    assert mixed, "the tiny model's margins should straddle some beta of the grid"
    for params in (report["chosen"]["adapt_vis"]["params"], {k: mixed[len(mixed) // 2][k] for k in mixed[0]}):
        params = {k: params[k] for k in ("alpha1", "alpha2", "threshold")}
        predicted = next(r for r in adapt if all(r[k] == v for k, v in params.items()))
        model_args = ",".join(
            ["method=adapt_vis", "gate_signal=top2_margin", *(f"{k}={v!r}" for k, v in params.items())]
        )
        real = _evaluate(tiny_llava, model_args, task)
        assert {k: predicted[k] for k in real} == real, params
