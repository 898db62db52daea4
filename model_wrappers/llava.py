"""``llava_adaptvis``: LLaVA-1.5 (``llava``) and LLaVA-1.6 (``llava_next``) checkpoints."""

from __future__ import annotations

from model_wrappers.base import AdaptVisLMM
from model_wrappers.prompting import bare_question, chat_prompt, llava15_prompt


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


LMMS_EVAL_ONEVISION_SYSTEM_PROMPT = "You are a helpful assistant."
"""The system turn of lmms-eval 0.7.3's ``llava_onevision`` (its default ``conv_template="qwen_1_5"``)."""


class LlavaOnevisionAdaptVis(AdaptVisLMM):
    """LLaVA-OneVision (``llava_onevision``, llava-hf checkpoints) with the AdaptVis interventions.

    The prompt is lmms-eval's ``qwen_1_5`` conversation: the system turn, then ``<image>\\n`` and
    the question in the user turn, rendered by the checkpoint's chat template.
    """

    wrapper_name = "llava_onevision_adaptvis"

    def format_prompt(self, context: str, where: str) -> str:
        chat_prompt(self.processor, context, where)  # the same checks (chat template present, one image)
        messages = [
            {"role": "system", "content": LMMS_EVAL_ONEVISION_SYSTEM_PROMPT},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": bare_question(context, where)}]},
        ]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
