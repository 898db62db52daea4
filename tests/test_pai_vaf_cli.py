"""method=pai and method=vaf through the real ``lmms-eval`` command: whatsup and vsr_zeroshot, batched, traced.

One subprocess per (wrapper, method) on the tiny checkpoints (2 decoder layers, hence explicit
layer arguments) and the synthetic mirror.
"""

from __future__ import annotations

import pytest

from model_wrappers.trace import read_trace
from tests.cli import base_env, lmms_eval_command, run_lmms_eval
from tests.test_cli_end_to_end import WHATSUP_SUBSETS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("model", "checkpoint", "method_args", "parameters"),
    [
        (
            "llava_adaptvis",
            "llava",
            "method=pai,pai_start_layer=1",
            {"pai_alpha": 0.2, "pai_gamma": 1.1, "pai_start_layer": 1, "pai_end_layer": None},
        ),
        (
            "llava_adaptvis",
            "llava",
            "method=vaf,vaf_layers=0-1",
            {"vaf_enhance": 1.15, "vaf_suppress": 0.95, "vaf_layers": "0-1"},
        ),
        (
            "qwen2_vl_adaptvis",
            "qwen2_vl",
            "method=pai,pai_alpha=0.5,pai_start_layer=0,pai_end_layer=2",
            {"pai_alpha": 0.5, "pai_gamma": 1.1, "pai_start_layer": 0, "pai_end_layer": 2},
        ),
        (
            "qwen2_vl_adaptvis",
            "qwen2_vl",
            "method=vaf,vaf_enhance=1.3,vaf_layers=1",
            {"vaf_enhance": 1.3, "vaf_suppress": 0.95, "vaf_layers": "1"},
        ),
    ],
)
def test_whatsup_and_vsr_complete_with_every_answer_traced(
    tmp_path, tiny_checkpoints, synthetic_mirror, model, checkpoint, method_args, parameters
):
    trace = tmp_path / "trace.jsonl"
    args = f"pretrained={tiny_checkpoints[checkpoint]},device=cpu,{method_args},trace={trace}"
    command = lmms_eval_command(
        model, args, "whatsup,vsr_zeroshot", tmp_path / "out", "--batch_size", "4", "--log_samples"
    )
    run = run_lmms_eval(command, base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root), tmp_path / "out")
    method = method_args.split(",")[0].removeprefix("method=")
    records = list(read_trace(trace))
    for task in [*(f"whatsup_{s}" for s in WHATSUP_SUBSETS), "vsr_zeroshot"]:
        assert 0.0 <= run.metric(task, "accuracy") <= 1.0
        answers = run.answers(task)
        traced = {r["doc_id"]: r for r in records if r["task"] == task}
        assert sorted(traced) == sorted(answers) and answers
        for doc_id, record in traced.items():
            assert record["method"] == method and record["alpha"] is None
            assert record["method_parameters"] == {"method": method, **parameters}
            assert 0.0 < record["confidence"] <= 1.0
            assert record["answer"] == answers[doc_id]
    assert 0.0 <= run.metric("vsr_zeroshot", "paper_f1") <= 1.0
    assert f"'method': '{method}'" in run.log
