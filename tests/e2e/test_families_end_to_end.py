"""The newer families through the real ``lmms-eval`` CLI: adapt_vis on WhatsUp, a sweep, ``adaptvis tune``.

One lmms-eval start per (family, method); both runs of a family use the same tiny checkpoint.
The paper gives Qwen2.5-VL, Qwen3-VL and LLaVA-OneVision no Appendix E.3 beta range, so the tuner is
given ``--betas`` (docs/guides/FAMILIES.md).
"""

from __future__ import annotations

import argparse
import json

import pytest

from adaptvis_tasks.analysis import tune
from model_wrappers.trace import read_trace
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval

pytestmark = pytest.mark.e2e

FAMILIES = {
    "qwen2_5_vl": "qwen2_5_vl_adaptvis",
    "qwen3_vl": "qwen3_vl_adaptvis",
    "llava_onevision": "llava_onevision_adaptvis",
}
ADAPT_VIS = "method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3"


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_adapt_vis_on_whatsup_then_a_sweep_tuned(model_type, tmp_path, tiny_checkpoints, synthetic_mirror):
    env = base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root)
    model, checkpoint = FAMILIES[model_type], tiny_checkpoints[model_type]

    trace = tmp_path / "adapt_vis.jsonl"
    args = f"pretrained={checkpoint},device=cpu,{ADAPT_VIS},trace={trace}"
    command = lmms_eval_command(model, args, "whatsup_controlled_a", tmp_path / "adapt_vis", "--batch_size", "4")
    run = run_lmms_eval([*command, "--log_samples"], env, tmp_path / "adapt_vis")
    documents = run.results["n-samples"]["whatsup_controlled_a"]["effective"]
    assert documents == 16
    assert 0.0 <= run.metric("whatsup_controlled_a", "accuracy") <= 1.0
    records = list(read_trace(trace))
    assert sorted(r["doc_id"] for r in records) == list(range(documents))
    answers = run.answers("whatsup_controlled_a")
    for record in records:
        assert record["model_type"] == model_type and record["method"] == "adapt_vis"
        assert record["alpha"] == (0.5 if round(record["confidence"], 2) < 0.3 else 1.5)
        assert record["answer"] == answers[record["doc_id"]]
    prompt = run.samples["whatsup_controlled_a"][0]["input"]
    assert "<image>" not in prompt and prompt.startswith("Where ")  # the bare question; the wrapper adds the chat

    sweep = tmp_path / "sweep.jsonl"
    args = f"pretrained={checkpoint},device=cpu,method=sweep,trace={sweep}"
    command = lmms_eval_command(model, args, "whatsup_controlled_a_val", tmp_path / "sweep", "--batch_size", "4")
    run = run_lmms_eval(command, env, tmp_path / "sweep")
    swept = list(read_trace(sweep))
    assert swept and len(swept) == run.results["n-samples"]["whatsup_controlled_a_val"]["effective"]
    assert all(set(r["answers"]) == {"0.5", "0.8", "1.0", "1.2", "1.5", "2.0"} for r in swept)

    parser = argparse.ArgumentParser()
    tune.add_arguments(parser)
    report = tune.tune(parser.parse_args([str(sweep), "--no-progress", "--betas", "0.2,0.4,0.6,0.8"]))
    tuned = report["tasks"]["whatsup_controlled_a_val"]
    assert tuned["documents"] == len(swept)
    assert tuned["chosen"]["adapt_vis"]["model"] == model
    assert json.dumps(tuned)  # JSON-ready
    with pytest.raises(tune.AnalysisError, match="no beta range"):
        tune.tune(parser.parse_args([str(sweep), "--no-progress"]))
