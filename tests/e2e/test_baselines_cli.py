"""The baselines through the real ``lmms-eval`` command: method=vcd and method=dola on the whatsup group.

One subprocess per (wrapper, method) on tiny checkpoints and the synthetic mirror. LLaVA runs the
whole group; Qwen2-VL one subset of it, to keep the module's cost down (the whole group was run
too when these methods were added).
"""

from __future__ import annotations

import pytest

from model_wrappers.trace import read_trace
from tests.e2e.test_cli_end_to_end import WHATSUP_SUBSETS
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("model", "checkpoint", "method_args", "describe", "subsets"),
    [
        ("llava_adaptvis", "llava", "method=vcd", {"vcd_alpha": 1.0, "vcd_beta": 0.1, "vcd_noise_step": 500}, None),
        ("llava_adaptvis", "llava", "method=dola", {"dola_layers": "high", "repetition_penalty": 1.2}, None),
        (
            "qwen2_vl_adaptvis",
            "qwen2_vl",
            "method=vcd,vcd_alpha=0.5,vcd_noise_step=999",
            {"vcd_alpha": 0.5},
            ("controlled_b",),
        ),
        (
            "qwen2_vl_adaptvis",
            "qwen2_vl",
            "method=dola,dola_layers=0|1,repetition_penalty=1",
            {"dola_layers": [0, 1]},
            ("controlled_b",),
        ),
    ],
)
def test_whatsup_completes_with_every_answer_traced(
    tmp_path, tiny_checkpoints, synthetic_mirror, model, checkpoint, method_args, describe, subsets
):
    trace = tmp_path / "trace.jsonl"
    args = f"pretrained={tiny_checkpoints[checkpoint]},device=cpu,{method_args},trace={trace}"
    tasks = "whatsup" if subsets is None else ",".join(f"whatsup_{s}" for s in subsets)
    command = lmms_eval_command(model, args, tasks, tmp_path / "out", "--batch_size", "4", "--log_samples")
    run = run_lmms_eval(command, base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root), tmp_path / "out")
    method = method_args.split(",")[0].removeprefix("method=")
    records = list(read_trace(trace))
    for subset in subsets or WHATSUP_SUBSETS:
        task = f"whatsup_{subset}"
        assert 0.0 <= run.metric(task, "accuracy") <= 1.0
        answers = run.answers(task)
        traced = {r["doc_id"]: r for r in records if r["task"] == task}
        assert sorted(traced) == sorted(answers) and answers
        for doc_id, record in traced.items():
            assert record["method"] == method and record["alpha"] is None
            assert 0.0 < record["confidence"] <= 1.0
            assert record["answer"] == answers[doc_id]
    assert f"'method': '{method}'" in run.log
    for name, value in describe.items():
        assert f"'{name}': {value!r}" in run.log
