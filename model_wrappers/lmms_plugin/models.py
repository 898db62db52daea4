"""This suite's lmms-eval model names and the classes behind them (a leaf: imports nothing of the suite)."""

from __future__ import annotations

MODEL_CLASSES = {
    "llava_adaptvis": "model_wrappers.llava.LlavaAdaptVis",
    "qwen2_vl_adaptvis": "model_wrappers.qwen2_vl.Qwen2VLAdaptVis",
    "qwen2_5_vl_adaptvis": "model_wrappers.qwen2_vl.Qwen2_5_VLAdaptVis",
    "qwen3_vl_adaptvis": "model_wrappers.qwen2_vl.Qwen3VLAdaptVis",
    "llava_onevision_adaptvis": "model_wrappers.llava.LlavaOnevisionAdaptVis",
}
"""lmms-eval ``--model`` name -> ``module.Class`` (the families name their model in ``adaptvis_tasks.families``)."""
