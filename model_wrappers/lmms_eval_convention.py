"""lmms-eval's prompt and input convention, for lmms-eval's own tasks.

The supported lmms-eval spatial tasks and their ``_val``/``_test`` layers
(``adaptvis_tasks.spatial.SPATIAL_TASKS``) are prompted the way lmms-eval's own model for the
checkpoint family does it, so that ``method=baseline`` reproduces lmms-eval's numbers. Every other
task keeps this suite's convention (``prompting.py``: the paper's verbatim LLaVA-1.5 prompt and
token ids for the paper's tasks; the same rules as before for lmms-eval's POPE/GQA in
``adaptvis_general``, whose parity with lmms-eval's models is not verified here):

* ``llava_adaptvis`` (LLaVA-1.5/1.6) = lmms-eval's ``llava_hf`` (the chat class that ``--model
  llava_hf`` resolves to in 0.7.3): the checkpoint's own processor (``AutoProcessor`` defaults:
  checkpoint tokenizer, default image processor), its chat template over one user turn
  ``[image, text=context]``, the image as ``doc_to_visual`` returned it, stop at the tokenizer's
  EOS only, ``max_new_tokens`` 1024 when the task sets none, ``until`` ignored, the decoded text
  not stripped.
* ``qwen2_vl_adaptvis`` = lmms-eval's ``qwen2_vl``: system turn ``You are a helpful assistant.``,
  ``<image>`` removed from the context, the image re-encoded as JPEG (quality 85) and resized by
  ``qwen_vl_utils.process_vision_info`` with ``min_pixels=3136``, ``max_pixels=602112`` (or the
  wrapper's ``min_pixels``/``max_pixels``), the processor loaded with the same bounds, EOS =
  the tokenizer's, ``max_new_tokens`` 128 by default, text cut at ``until`` and stripped.

The differences from the paper's convention are listed in docs/guides/TASKS.md ("Prompt conventions").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

QWEN2_VL_SYSTEM_PROMPT = "You are a helpful assistant."
QWEN2_VL_MIN_PIXELS = 3136
QWEN2_VL_MAX_PIXELS = 602112
LLAVA_HF_MAX_NEW_TOKENS = 1024
QWEN2_VL_MAX_NEW_TOKENS = 128


def uses_lmms_eval_convention(task: str) -> bool:
    """True for the supported lmms-eval spatial tasks and their ``_val``/``_test`` layers."""
    from adaptvis_tasks.spatial import base_task_of

    return base_task_of(task) is not None


@dataclass
class LmmsEvalConvention:
    """How lmms-eval's model for ``family`` (``llava_hf`` or ``qwen2_vl``) builds inputs and answers."""

    family: str
    pretrained: str
    revision: str | None = None
    trust_remote_code: bool = False
    min_pixels: int | None = None
    max_pixels: int | None = None
    name: str = field(init=False, default="lmms_eval")

    def __post_init__(self) -> None:
        if self.family not in ("llava_hf", "qwen2_vl"):
            raise ValueError(f"unknown lmms-eval model family {self.family!r}")

    @cached_property
    def processor(self) -> Any:
        """The processor lmms-eval's model loads (left padding for batches)."""
        from transformers import AutoProcessor

        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.family == "qwen2_vl":
            kwargs.update(max_pixels=self.pixel_bounds[1], min_pixels=self.pixel_bounds[0])
        processor = AutoProcessor.from_pretrained(self.pretrained, **kwargs)
        processor.tokenizer.padding_side = "left"
        return processor

    @property
    def pixel_bounds(self) -> tuple[int, int]:
        return (self.min_pixels or QWEN2_VL_MIN_PIXELS, self.max_pixels or QWEN2_VL_MAX_PIXELS)

    @property
    def default_max_new_tokens(self) -> int:
        return LLAVA_HF_MAX_NEW_TOKENS if self.family == "llava_hf" else QWEN2_VL_MAX_NEW_TOKENS

    @property
    def applies_until(self) -> bool:
        """lmms-eval's ``llava_hf`` ignores the task's ``until``; ``qwen2_vl`` cuts the answer there."""
        return self.family == "qwen2_vl"

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return (int(self.processor.tokenizer.eos_token_id),)

    def messages(self, context: str, image: Any = None) -> list[dict[str, Any]]:
        """The chat messages lmms-eval's model builds for one single-image request."""
        if self.family == "llava_hf":
            return [{"role": "user", "content": [{"type": "image", "url": image}, {"type": "text", "text": context}]}]
        image_item: dict[str, Any] = {"type": "image", "min_pixels": self.pixel_bounds[0]}
        image_item.update(max_pixels=self.pixel_bounds[1])
        if image is not None:
            from lmms_eval.models.model_utils.media_encoder import encode_image_to_data_url

            image_item["image"] = encode_image_to_data_url(
                image, image_format="JPEG", mime_type="image/jpeg", convert_rgb=True, quality=85
            )
        return [
            {"role": "system", "content": QWEN2_VL_SYSTEM_PROMPT},
            {"role": "user", "content": [image_item, {"type": "text", "text": context.replace("<image>", "")}]},
        ]

    def prompt(self, context: str) -> str:
        """The prompt text of one request (``context`` = the task's ``doc_to_text``)."""
        return self.processor.apply_chat_template(self.messages(context), tokenize=False, add_generation_prompt=True)

    def image(self, visual: Any) -> Any:
        """The image handed to the processor: as returned (LLaVA), JPEG round trip and resize (Qwen2-VL)."""
        if self.family == "llava_hf":
            return visual
        from qwen_vl_utils import process_vision_info

        images, _ = process_vision_info([self.messages("", visual)])[:2]
        return images[0]

    def decode(self, tokens: list[int], until: list[str]) -> str:
        """The answer text from the generated tokens, as lmms-eval's model decodes it."""
        tokenizer = self.processor.tokenizer
        if self.family == "llava_hf":
            return tokenizer.decode(tokens, skip_special_tokens=True)
        eos = tokenizer.eos_token_id
        if eos in tokens:
            tokens = tokens[: tokens.index(eos)]
        text = self.processor.batch_decode([tokens], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
        stop = len(text)
        for term in until:
            if term and term in text:
                stop = min(stop, text.index(term))
        return text[:stop].strip()


def convention_for(wrapper: Any, task: str) -> LmmsEvalConvention | None:
    """The lmms-eval convention ``wrapper`` uses for ``task``, or None (this suite's convention).

    One convention object per wrapper (its processor is loaded on first use).
    """
    if not uses_lmms_eval_convention(task):
        return None
    convention = getattr(wrapper, "_lmms_eval_convention", None)
    if convention is None:
        family = "qwen2_vl" if wrapper.model_type == "qwen2_vl" else "llava_hf"
        pixels = wrapper.input_pipeline
        convention = LmmsEvalConvention(
            family=family,
            pretrained=wrapper.pretrained,
            revision=getattr(wrapper, "revision", None),
            trust_remote_code=bool(getattr(wrapper, "trust_remote_code", False)),
            min_pixels=pixels.get("min_pixels"),
            max_pixels=pixels.get("max_pixels"),
        )
        wrapper._lmms_eval_convention = convention
    return convention
