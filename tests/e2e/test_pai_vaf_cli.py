"""method=pai and method=vaf through the real ``lmms-eval`` command: whatsup and vsr_zeroshot, batched, traced.

One subprocess per (wrapper, method) on the tiny checkpoints (2 decoder layers, hence explicit
layer arguments) and the synthetic mirror.
"""

from __future__ import annotations

import pytest

from model_wrappers.trace import read_trace
from tests.e2e.test_cli_end_to_end import WHATSUP_SUBSETS
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval

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


ONE_SET = {
    "baseline": "method=baseline",
    "ScalingVis": "method=scaling_vis,alpha=0.5",
    "AdaptVis": "method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3",
    "VCD": "method=vcd",
    "DoLa": "method=dola,dola_layers=0",
    "PAI": "method=pai,pai_start_layer=1",
    "VAF": "method=vaf,vaf_layers=0-1",
}


def test_table_and_compare_cover_every_method_from_one_set_of_runs(tmp_path, tiny_llava, synthetic_mirror, capsys):
    from model_wrappers import cli

    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    outputs = []
    for name, method_args in ONE_SET.items():
        out = tmp_path / name
        args = f"pretrained={tiny_llava},device=cpu,{method_args}"
        command = lmms_eval_command(
            "llava_adaptvis", args, "whatsup_controlled_a", out, "--batch_size", "4", "--log_samples"
        )
        run_lmms_eval(command, env, out)
        outputs.append(str(out))
    assert cli.main(["table", *outputs, "--names", ",".join(ONE_SET), "--baseline", "baseline"]) == 0
    table = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == list(ONE_SET), table
    assert cli.main(["table", *outputs]) == 0
    default_names = capsys.readouterr().out
    assert "| llava pai(pai_start_layer=1) |" in default_names and "| llava vaf(vaf_layers=0-1) |" in default_names
    assert cli.main(["compare", outputs[0], outputs[-2], outputs[-1], "--no-progress", "--bootstrap", "200"]) == 0
    report = capsys.readouterr().out
    assert "whatsup_controlled_a" in report
