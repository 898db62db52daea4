"""Naive, eager, per-sample PAI and VAF written the way their authors' code runs (the tests' reference).

Independent of the product code (``model_wrappers.logit_edit``, ``methods/pai.py``, ``methods/vaf.py``):

* one sample at a time, no padding; transformers' own KV cache and position handling, the full
  prompt prefilled in one call (the authors call ``model.generate``), then one call per token;
* an eager attention function that materialises the full attention matrix of every call and edits
  it in the authors' order -- VAF (``ClearSight/visaug/inference/AttnAdapter.py``): logits times
  the factors, then the mask; PAI (``PAI/attention.py``): logits, mask, ``max(., finfo.min)``, then
  ``A + alpha * |A|`` on the image columns of the call's last query row -- then softmax in float32;
* PAI's contrast (``PAI/CFG.py``): a second model copy fed the text-only prompt (BOS + text before
  + text after the image) with its own cache and no edit, ``log_softmax``, the ``log(0.1)`` cutoff.

The only change to the authors' code: VAF's fixed ``SYS_LEN = 35, IMG_LEN = 576`` become the
sample's real image start and length (the product's named deviation ``real positions``).
"""

from __future__ import annotations

import contextvars
import math

import torch
from transformers import AttentionInterface, AutoModelForImageTextToText, AutoProcessor
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from tests.model.test_intervention import QUESTIONS, _image

_SETTING: contextvars.ContextVar[dict | None] = contextvars.ContextVar("authors_reference", default=None)


def authors_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    groups = query.shape[1] // key.shape[1]
    key_states = key.repeat_interleave(groups, dim=1)
    value_states = value.repeat_interleave(groups, dim=1)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    setting = _SETTING.get()
    active = setting is not None and module.layer_idx in setting["layers"]
    q_len = query.shape[2]
    if active and setting["method"] == "vaf":
        sys_len, img_len = setting["image_start"], setting["image_length"]  # AttnAdapter.py: 35, 576
        if q_len > sys_len + img_len:
            attn_weights[:, :, sys_len + img_len :, sys_len : sys_len + img_len] = (
                setting["enhance"] * attn_weights[:, :, sys_len + img_len :, sys_len : sys_len + img_len]
            )
            attn_weights[:, :, sys_len + img_len :, :sys_len] = (
                setting["suppress"] * attn_weights[:, :, sys_len + img_len :, :sys_len]
            )
        else:
            attn_weights[:, :, :, sys_len : sys_len + img_len] = (
                setting["enhance"] * attn_weights[:, :, :, sys_len : sys_len + img_len]
            )
            attn_weights[:, :, :, :sys_len] = setting["suppress"] * attn_weights[:, :, :, :sys_len]
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask[:, :, :, : key_states.shape[-2]]
        if active and setting["method"] == "pai":
            attn_weights = torch.max(attn_weights, torch.tensor(torch.finfo(attn_weights.dtype).min))
    if active and setting["method"] == "pai":
        start, end = setting["image_start"], setting["image_start"] + setting["image_length"]
        attn_weights[:, :, -1, start:end] = (
            attn_weights[:, :, -1, start:end].abs() * setting["alpha"] + attn_weights[:, :, -1, start:end]
        )
    attn_weights = torch.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_output = torch.matmul(attn_weights, value_states)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


AttentionInterface.register("authors_reference", authors_attention)
AttentionMaskInterface.register("authors_reference", ALL_MASK_ATTENTION_FUNCTIONS["eager"])

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def prompt_text(processor, model_type: str, question: str) -> str:
    """LLaVA-1.5's vicuna_v1 prompt (system text before the image), Qwen2-VL's chat template."""
    if model_type == "llava":
        return f"{SYSTEM} USER: <image>\n{question} ASSISTANT:"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _load(path, attention: str):
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    model.set_attn_implementation({"text_config": attention})
    return model


class AuthorsReference:
    """A tiny checkpoint as the authors' code would run it, one sample at a time."""

    def __init__(self, path, model_type: str) -> None:
        self.model_type = model_type
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = _load(path, "authors_reference")  # conditional pass, edited
        self.text_model = _load(path, "eager")  # PAI's text-only pass: its own model state and cache
        config = self.model.config
        self.image_token = config.image_token_id
        markers = (getattr(config, name, None) for name in ("vision_start_token_id", "vision_end_token_id"))
        self.image_markers = {marker for marker in markers if marker is not None}

    def inputs(self, index: int):
        text = prompt_text(self.processor, self.model_type, QUESTIONS[index])
        return self.processor(images=[_image(index)], text=[text], return_tensors="pt")

    def _image_span(self, input_ids: torch.Tensor) -> tuple[int, int]:
        positions = (input_ids[0] == self.image_token).nonzero().flatten()
        start, length = int(positions[0]), int(positions.numel())
        assert int(positions[-1]) == start + length - 1, "one contiguous image per prompt"
        return start, length

    def _call(self, model, setting: dict | None, **kwargs):
        token = _SETTING.set(setting)
        try:
            with torch.no_grad():
                return model(use_cache=True, **kwargs)
        finally:
            _SETTING.reset(token)

    def text_only_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``model_loader.init_cfg_processor``: the prompt without the image (and its markers)."""
        drop = {self.image_token, *self.image_markers}
        return torch.tensor([[t for t in input_ids[0].tolist() if t not in drop]])

    def pai(self, index: int, alpha: float, gamma: float, layers, new_tokens: int):
        """Greedy PAI: (tokens, first-token scores)."""
        inputs = self.inputs(index)
        start, length = self._image_span(inputs["input_ids"])
        setting = {"method": "pai", "layers": set(layers), "alpha": alpha, "image_start": start, "image_length": length}
        self.model.model.rope_deltas = None
        self.text_model.model.rope_deltas = None
        out = self._call(self.model, setting, **inputs)
        uncond = None
        tokens, first = [], None
        for _ in range(new_tokens):
            scores = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # CFGLogits.__call__
            if gamma != 1:
                if uncond is None:
                    uncond = self._call(self.text_model, None, input_ids=self.text_only_ids(inputs["input_ids"]))
                else:
                    uncond = self._call(
                        self.text_model,
                        None,
                        input_ids=torch.tensor([[tokens[-1]]]),
                        past_key_values=uncond.past_key_values,
                    )
                unconditional = torch.log_softmax(uncond.logits[:, -1, :].float(), dim=-1)
                cutoff = torch.log(torch.tensor(0.1)) + scores.max(dim=-1, keepdim=True).values
                scores = (gamma * (scores - unconditional) + unconditional).masked_fill(scores < cutoff, -math.inf)
            if first is None:
                first = scores[0]
            tokens.append(int(scores.argmax(-1)))
            out = self._call(
                self.model, setting, input_ids=torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values
            )
        return tokens, first

    def vaf(self, index: int, enhance: float, suppress: float, layers, new_tokens: int):
        """Greedy VAF: (tokens, first-token probabilities)."""
        inputs = self.inputs(index)
        start, length = self._image_span(inputs["input_ids"])
        setting = {
            "method": "vaf",
            "layers": set(layers),
            "enhance": enhance,
            "suppress": suppress,
            "image_start": start,
            "image_length": length,
        }
        self.model.model.rope_deltas = None
        out = self._call(self.model, setting, **inputs)
        tokens, first = [], None
        for _ in range(new_tokens):
            logits = out.logits[:, -1, :].float()
            if first is None:
                first = torch.softmax(logits[0], dim=-1)
            tokens.append(int(logits.argmax(-1)))
            out = self._call(
                self.model, setting, input_ids=torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values
            )
        return tokens, first
