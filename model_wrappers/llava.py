"""``llava_adaptvis``: LLaVA-1.5 (``llava``) and LLaVA-1.6 (``llava_next``) checkpoints."""

from __future__ import annotations

from model_wrappers.base import AdaptVisLMM
from model_wrappers.prompting import chat_prompt, llava15_prompt


class LlavaAdaptVis(AdaptVisLMM):
    """LLaVA with the AdaptVis family of interventions; the checkpoint's config picks 1.5 or 1.6.

    LLaVA-1.5 always gets the paper's prompt ``<image>\\nUSER: {question}\\nASSISTANT:`` (a context
    that already is a LLaVA-1.5 prompt is used verbatim) with the authors' token ids
    (``loading.paper_tokenizer``). LLaVA-1.6 uses its processor's chat template by default
    (``prompt_style=chat``); ``prompt_style=paper`` feeds it the same verbatim paper prompt and
    tokenization as LLaVA-1.5 (the authors' LLaVA-1.6 code was never published).
    """

    wrapper_name = "llava_adaptvis"

    def format_prompt(self, context: str, where: str) -> str:
        if self.prompt_style == "paper":
            return llava15_prompt(context, where)
        return chat_prompt(self.processor, context, where)
