"""PAI, "Paying More Attention to Image" (Liu et al., ECCV 2024; code ``LALBJ/PAI``), greedy.

Two parts, both as in the authors' ``attention.py`` and ``CFG.py``:

1. **Attention**: in decoder layers ``[pai_start_layer, pai_end_layer)``, the *last query row of
   every forward call* -- the prompt's last token in the prefill, then every generated token --
   gets ``A' = A + pai_alpha * |A|`` on the image columns, after the mask is added and before the
   softmax. Here the last prompt token is a step of its own over the cached prefix, so "the last
   row of every call" is "every query row at or after the last prompt token"
   (:meth:`Pai.attention_edit`); the prefix prefill is not edited, as in the authors' code.
2. **Contrast with the text-only prompt** (the prompt without its image, own KV cache, no attention
   edit): ``out = gamma * (log_softmax(s) - log_softmax(u)) + log_softmax(u)``, with ``-inf`` where
   ``log_softmax(s) < log(0.1) + max log_softmax(s)`` (:func:`contrast`). As in ``CFG.py``,
   ``gamma == 1`` skips the text-only pass and uses ``log_softmax(s)`` alone.

Defaults: ``pai_alpha=0.2``, ``pai_gamma=1.1``, ``pai_start_layer=2``, ``pai_end_layer`` = the
number of decoder layers (the authors' README runs ``--alpha 0.2 --gamma 1.1 --start-layer 2
--end-layer 32`` on 32-layer LLaVA-1.5-7B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from model_wrappers.architectures import PromptBatch, num_text_layers, prompt_batch
from model_wrappers.errors import MethodArgumentError
from model_wrappers.intervention import first_token_confidence, require_adaptvis_backend
from model_wrappers.logit_edit import LogitEdit, attention_logit_edit
from model_wrappers.methods.arguments import as_float
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, StepOutput
from model_wrappers.methods.registry import MethodParameters, register_method

PLAUSIBILITY = 0.1
"""``torch.log(torch.tensor(0.1))`` in ``CFG.py``: tokens below ``log(0.1) + max`` get ``-inf``."""


def _layer_index(name: str, value: object) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise MethodArgumentError(f"{name}={value!r} must be a decoder-layer index >= 0, e.g. {name}=2")
    return int(value)


@dataclass(frozen=True)
class PaiParameters(MethodParameters):
    """``method=pai``: ``pai_alpha`` (>= 0), ``pai_gamma`` (> 0), edited layers ``[pai_start_layer, pai_end_layer)``.

    The defaults are the authors' README commands (``--alpha 0.2 --gamma 1.1 --start-layer 2
    --end-layer 32``); ``pai_end_layer=None`` means the model's number of decoder layers (32 for
    LLaVA-1.5-7B).
    """

    pai_alpha: float = 0.2
    pai_gamma: float = 1.1
    pai_start_layer: int = 2
    pai_end_layer: int | None = None
    layers_hint: ClassVar[str] = " (PAI's layers are pai_start_layer / pai_end_layer)"

    @classmethod
    def parse(cls, raw) -> PaiParameters:
        """Defaults for what is not given; :class:`MethodArgumentError` naming a bad argument."""
        default = cls()
        alpha = default.pai_alpha if raw["pai_alpha"] is None else as_float("pai_alpha", raw["pai_alpha"])
        if alpha < 0:
            raise MethodArgumentError(
                f"pai_alpha={raw['pai_alpha']!r} must be >= 0 (0 = no attention edit; PAI uses 0.2)"
            )
        gamma = default.pai_gamma if raw["pai_gamma"] is None else as_float("pai_gamma", raw["pai_gamma"])
        if gamma <= 0:
            raise MethodArgumentError(
                f"pai_gamma={raw['pai_gamma']!r} must be > 0 (1 = no text-only contrast; PAI uses 1.1)"
            )
        start = (
            default.pai_start_layer
            if raw["pai_start_layer"] is None
            else _layer_index("pai_start_layer", raw["pai_start_layer"])
        )
        end = None if raw["pai_end_layer"] is None else _layer_index("pai_end_layer", raw["pai_end_layer"])
        if end is not None and end <= start:
            raise MethodArgumentError(
                f"pai_end_layer={raw['pai_end_layer']!r} must be greater than pai_start_layer={start} "
                "(layers [start, end))"
            )
        return cls(pai_alpha=alpha, pai_gamma=gamma, pai_start_layer=start, pai_end_layer=end)

    def layers(self, num_layers: int) -> tuple[int, ...]:
        """The edited decoder layers ``[start, end)`` of a model with ``num_layers`` layers."""
        self.check_layers(num_layers)
        return tuple(range(self.pai_start_layer, num_layers if self.pai_end_layer is None else self.pai_end_layer))

    def check_layers(self, num_layers: int) -> None:
        if self.pai_start_layer >= num_layers:
            raise MethodArgumentError(
                f"pai_start_layer={self.pai_start_layer} names no layer: the language model has {num_layers} decoder "
                f"layers (0..{num_layers - 1}); give e.g. pai_start_layer={min(2, num_layers - 1)}"
            )
        if self.pai_end_layer is not None and self.pai_end_layer > num_layers:
            raise MethodArgumentError(
                f"pai_end_layer={self.pai_end_layer} is past the last layer: the language model has {num_layers} "
                f"decoder layers, so pai_end_layer may be at most {num_layers}"
            )


def contrast(conditional_logits: torch.Tensor, text_only_logits: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """``CFGLogits.__call__``: log-softmax; for ``gamma != 1`` the contrast with the text-only pass, the cutoff."""
    scores = torch.log_softmax(conditional_logits.float(), dim=-1)
    if text_only_logits is None:
        return scores
    unconditional = torch.log_softmax(text_only_logits.float(), dim=-1)
    cutoff = torch.log(torch.tensor(PLAUSIBILITY)) + scores.max(dim=-1, keepdim=True).values
    out = gamma * (scores - unconditional) + unconditional
    return out.masked_fill(scores < cutoff, -math.inf)


def image_part_token_ids(model) -> tuple[int, ...]:
    """Token ids that belong to the image: the image token, and Qwen2-VL's vision start/end markers."""
    config = model.config
    ids = [getattr(config, "image_token_id", None), getattr(config, "image_token_index", None)]
    ids += [getattr(config, "vision_start_token_id", None), getattr(config, "vision_end_token_id", None)]
    return tuple(sorted({int(i) for i in ids if i is not None}))


def text_only_batch(model, batch: PromptBatch) -> PromptBatch:
    """Each prompt without its image tokens (and image markers), left-padded again, positions recomputed."""
    drop = torch.isin(batch.input_ids, torch.tensor(image_part_token_ids(model), device=batch.input_ids.device))
    keep = batch.attention_mask.bool() & ~drop
    rows = [ids[mask] for ids, mask in zip(batch.input_ids, keep, strict=True)]
    width = max(int(row.numel()) for row in rows)
    input_ids = batch.input_ids.new_zeros((len(rows), width))
    attention_mask = batch.attention_mask.new_zeros((len(rows), width))
    for index, row in enumerate(rows):
        if row.numel():
            input_ids[index, width - row.numel() :] = row
            attention_mask[index, width - row.numel() :] = 1
    return prompt_batch(model, {"input_ids": input_ids, "attention_mask": attention_mask})


@register_method("pai", PaiParameters)
class Pai(DecodingMethod):
    """``method=pai``: the attention edit at every step plus the text-only contrast."""

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence)
        require_adaptvis_backend(model, "pai")
        self.layers = config.parameters.layers(num_text_layers(model))
        self.text_only: PromptState | None = None

    def attention_edit(self, batch: PromptBatch) -> LogitEdit | None:
        if self.config.pai_alpha == 0:
            return None  # A + 0 * |A| == A: the plain fused kernel, bit for bit
        rows, length = batch.input_ids.shape
        last_prompt_token = torch.full((rows,), length - 1, dtype=torch.long, device=batch.input_ids.device)
        gain = batch.image_token_mask.float() * self.config.pai_alpha
        return LogitEdit.build(last_prompt_token, torch.ones_like(gain), gain, self.layers)

    def first_token(self, prompt: PromptState) -> FirstToken:
        confidence = None
        if self.need_confidence:  # C of the unedited model, as every method records it
            with attention_logit_edit(None):
                confidence = first_token_confidence(prompt.last_token().logits).tolist()
            prompt.retract()
        output = prompt.last_token()
        text_only_logits = None
        if self.config.pai_gamma != 1:
            with attention_logit_edit(None):
                self.text_only = prompt.companion(text_only_batch(self.model, prompt.batch))
                text_only_logits = self.text_only.last_token().logits
        scores = contrast(output.logits, text_only_logits, self.config.pai_gamma)
        return FirstToken(scores, confidence, [None] * prompt.batch.batch_size)

    def next_scores(self, step: StepOutput, generated: torch.Tensor | None) -> torch.Tensor:
        text_only_logits = None
        if self.text_only is not None:
            assert generated is not None
            with attention_logit_edit(None):
                text_only_logits = self.text_only.next_token(generated[:, -1]).logits
        return contrast(step.logits, text_only_logits, self.config.pai_gamma)
