"""Turn an lmms-eval context into the text prompt each checkpoint family expects.

Contexts come in two shapes (see docs/guides/TASKS.md): a *bare* question with its option instruction
(what every lmms-eval task sends by default), or -- for ``llava_adaptvis`` on this suite's tasks
-- the paper's exact LLaVA-1.5 prompt, which is how the AdaptVis data stores its questions.

* LLaVA-1.5 uses a LLaVA-1.5 prompt verbatim (byte-identical to the paper) and wraps a bare
  question in the paper's template ``<image>\\nUSER: {question}\\nASSISTANT:``.
* LLaVA-1.6 and Qwen2-VL get the bare question inside their own chat templates.

Every context is validated the same way for all three (one image at most, roles only at the
edges, a non-empty question); a bad one raises :class:`PromptError` naming the request.
"""

from __future__ import annotations

from adaptvis_tasks.prompts import format_llava15_prompt, split_llava15_prompt

IMAGE_PLACEHOLDER = "<image>"
_FIX = "check the task's doc_to_text"


class PromptError(ValueError):
    """A context cannot be turned into a one-image prompt."""


def _check_placeholders(context: str, where: str) -> int:
    count = context.count(IMAGE_PLACEHOLDER)
    if count > 1:
        raise PromptError(
            f"{where}: the prompt has {count} '<image>' placeholders; these wrappers evaluate one image per "
            f"question, so give tasks with one image and at most one '<image>' ({_FIX})"
        )
    return count


def is_llava15_prompt(context: str) -> bool:
    """True for a complete LLaVA-1.5 prompt: one image placeholder and an assistant turn to fill."""
    return context.count(IMAGE_PLACEHOLDER) == 1 and context.rstrip().endswith(("ASSISTANT:", "Assistant:"))


def llava15_prompt(context: str, where: str = "prompt") -> str:
    """The paper's LLaVA-1.5 prompt for ``context`` (verbatim when it already is one)."""
    question = bare_question(context, where)  # validates a verbatim prompt too (e.g. an empty question)
    if is_llava15_prompt(context):
        return context
    return format_llava15_prompt(question)


def bare_question(context: str, where: str = "prompt") -> str:
    """The question and option instruction without any conversation template."""
    if not isinstance(context, str):
        raise PromptError(f"{where}: the prompt is a {type(context).__name__}, not text ({_FIX})")
    _check_placeholders(context, where)
    try:
        question = split_llava15_prompt(context)
    except ValueError as error:
        problem = "has an empty question" if str(error) == "is empty" else str(error)
        raise PromptError(f"{where}: the prompt {problem} ({_FIX}); prompt: {context[:200]!r}") from None
    return question


def chat_prompt(processor, context: str, where: str = "prompt") -> str:
    """The bare question in the processor's chat template, one image before the text."""
    if getattr(processor, "chat_template", None) is None:
        raise PromptError(
            f"{where}: the {type(processor).__name__} of this checkpoint has no chat template; save one with the "
            "processor (chat_template.jinja in the checkpoint folder)"
        )
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": bare_question(context, where)}]}
    ]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
