"""``qwen2_vl_adaptvis``, ``qwen2_5_vl_adaptvis``, ``qwen3_vl_adaptvis``: Qwen-VL checkpoints (M-RoPE, dynamic grids).

Each name is lmms-eval's built-in model name plus ``_adaptvis``, so a user switches
``--model qwen2_5_vl`` to ``--model qwen2_5_vl_adaptvis``. The Qwen2.5-VL and Qwen3-VL wrappers
open the conversation with the system turn lmms-eval 0.7.3's ``qwen2_5_vl`` / ``qwen3_vl`` send
by default (``system_prompt="You are a helpful assistant."``); ``qwen2_vl_adaptvis`` keeps its
earlier convention (no system turn; docs/FAMILIES.md).
"""

from __future__ import annotations

from model_wrappers.base import AdaptVisLMM
from model_wrappers.prompting import bare_question, chat_prompt

LMMS_EVAL_SYSTEM_PROMPT = "You are a helpful assistant."
"""The ``system_prompt`` default of lmms-eval 0.7.3's ``qwen2_5_vl`` and ``qwen3_vl`` models."""


class Qwen2VLAdaptVis(AdaptVisLMM):
    """Qwen2-VL with the AdaptVis family of interventions, prompted through its chat template."""

    wrapper_name = "qwen2_vl_adaptvis"

    def format_prompt(self, context: str, where: str) -> str:
        return chat_prompt(self.processor, context, where)


class _SystemTurnQwenAdaptVis(AdaptVisLMM):
    """A Qwen-VL wrapper whose prompt is lmms-eval's: system turn, then the image(s), then the question."""

    system_prompt: str = LMMS_EVAL_SYSTEM_PROMPT

    def format_prompt(self, context: str, where: str) -> str:
        chat_prompt(self.processor, context, where)  # the same checks (chat template present, one image)
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": bare_question(context, where)}]},
        ]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class Qwen2_5_VLAdaptVis(_SystemTurnQwenAdaptVis):
    """Qwen2.5-VL (``qwen2_5_vl``) with the AdaptVis interventions."""

    wrapper_name = "qwen2_5_vl_adaptvis"


class Qwen3VLAdaptVis(_SystemTurnQwenAdaptVis):
    """Qwen3-VL (``qwen3_vl``) with the AdaptVis interventions."""

    wrapper_name = "qwen3_vl_adaptvis"
