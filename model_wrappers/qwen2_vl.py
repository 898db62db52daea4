"""``qwen2_vl_adaptvis``: Qwen2-VL checkpoints (multimodal RoPE, dynamic image grids)."""

from __future__ import annotations

from model_wrappers.base import AdaptVisLMM
from model_wrappers.prompting import chat_prompt


class Qwen2VLAdaptVis(AdaptVisLMM):
    """Qwen2-VL with the AdaptVis family of interventions, prompted through its chat template."""

    wrapper_name = "qwen2_vl_adaptvis"

    def format_prompt(self, context: str, where: str) -> str:
        return chat_prompt(self.processor, context, where)
