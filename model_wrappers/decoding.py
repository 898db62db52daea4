"""Greedy decoding with the intervention, sharing the prompt prefix between variants.

Every method runs the same three phases on a left-padded batch:

1. **Prefill** the prompt without its last token (vision inputs included) into a KV cache.
   This is where ~all the compute is, and it is done once per sample whatever the method.
2. **Last-token step(s)**: the last prompt token is processed alone over the cached prefix --
   the only place Eq. 2 acts (``model_wrappers.intervention``). AdaptVis first runs it with
   ``alpha = 1`` to read the confidence, drops that token from the cache and runs it again
   with the chosen alpha; a sweep repeats the prefix cache once per alpha and runs all variants
   as one batch.
3. **Greedy decoding** of every row until EOS, a stop condition or ``max_new_tokens``.

The paper's code regenerates everything from scratch per variant at batch size 1; here the
prefix is never recomputed, which is why AdaptVis costs about one extra single-token step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from model_wrappers.architectures import PromptBatch
from model_wrappers.intervention import (
    ImageKeyScaling,
    adaptvis_alpha,
    first_token_confidence,
    image_attention_scaling,
)
from model_wrappers.methods import MethodConfig

StopCondition = Callable[[list[int]], bool]
"""Called with a row's generated token ids so far; True ends that row (e.g. a stop string)."""


@dataclass(frozen=True)
class DecodeSettings:
    max_new_tokens: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    stop_condition: StopCondition | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class SampleOutput:
    """What one prompt produced.

    ``tokens``: the answer handed back (for a sweep, the ``alpha = 1`` answer). ``alpha``: the
    alpha applied to that answer (``None`` for the baseline). ``confidence``: ``C`` under
    ``alpha = 1`` (``None`` when it was not requested and would have cost an extra step).
    ``sweep``: alpha -> answer tokens, in sweep mode only.
    """

    tokens: list[int]
    alpha: float | None
    confidence: float | None
    sweep: dict[float, list[int]] | None = None


def _step(model, tokens, attention_mask, position_ids, cache, scaling: ImageKeyScaling | None) -> torch.Tensor:
    context = image_attention_scaling(scaling) if scaling is not None else nullcontext()
    with context:
        output = model(
            input_ids=tokens,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
    return output.logits[:, -1, :].float()


def _repeat_rows(tensor: torch.Tensor, repeats: int, row_dim: int) -> torch.Tensor:
    return tensor if repeats == 1 else tensor.repeat_interleave(repeats, dim=row_dim)


class _Rows:
    """The per-row tensors of a batch, repeatable for variants."""

    def __init__(self, batch: PromptBatch) -> None:
        self.attention_mask = batch.attention_mask
        self.last_position = batch.position_ids[..., -1:]
        self.image_token_mask = batch.image_token_mask
        self.last_token = batch.input_ids[:, -1:]
        self.position_row_dim = batch.position_ids.ndim - 2

    def repeated(self, repeats: int) -> _Rows:
        other = object.__new__(_Rows)
        other.attention_mask = _repeat_rows(self.attention_mask, repeats, 0)
        other.last_position = _repeat_rows(self.last_position, repeats, self.position_row_dim)
        other.image_token_mask = _repeat_rows(self.image_token_mask, repeats, 0)
        other.last_token = _repeat_rows(self.last_token, repeats, 0)
        other.position_row_dim = self.position_row_dim
        return other


def _prefill(model, batch: PromptBatch):
    from transformers import DynamicCache

    if bool(batch.image_token_mask[:, -1].any()):
        raise ValueError("the last prompt token is an image token; the prompt must end with text")
    text_config = getattr(model.config, "text_config", None) or model.config
    cache = DynamicCache(config=text_config)
    model(
        input_ids=batch.input_ids[:, :-1],
        attention_mask=batch.attention_mask[:, :-1],
        position_ids=batch.position_ids[..., :-1],
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
        **batch.vision_inputs,
    )
    return cache


def _last_token_step(model, rows: _Rows, cache, alphas: torch.Tensor | None, layers) -> torch.Tensor:
    scaling = None
    if alphas is not None:
        scaling = ImageKeyScaling.build(rows.image_token_mask, alphas, layers)
    return _step(model, rows.last_token, rows.attention_mask, rows.last_position, cache, scaling)


def _greedy_continue(
    model, rows: _Rows, cache, first_logits: torch.Tensor, settings: DecodeSettings
) -> list[list[int]]:
    """Greedy decoding from the first-token logits; returns each row's tokens without EOS/padding."""
    eos = torch.tensor(settings.eos_token_ids, device=first_logits.device)
    num_rows = first_logits.shape[0]
    generated: list[list[int]] = [[] for _ in range(num_rows)]
    finished = torch.zeros(num_rows, dtype=torch.bool, device=first_logits.device)
    attention_mask = rows.attention_mask
    logits = first_logits
    for step in range(settings.max_new_tokens):
        next_tokens = logits.argmax(dim=-1)
        is_eos = torch.isin(next_tokens, eos)
        for row, (token, ended, stopped) in enumerate(
            zip(next_tokens.tolist(), is_eos.tolist(), finished.tolist(), strict=True)
        ):
            if stopped:
                continue
            if ended:
                finished[row] = True
                continue
            generated[row].append(token)
            if settings.stop_condition is not None and settings.stop_condition(generated[row]):
                finished[row] = True
        if bool(finished.all()) or step == settings.max_new_tokens - 1:
            break
        feed = torch.where(finished, torch.full_like(next_tokens, settings.pad_token_id), next_tokens)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((num_rows, 1))], dim=1)
        positions = rows.last_position + (step + 1)
        logits = _step(model, feed[:, None], attention_mask, positions, cache, None)
    return generated


@torch.inference_mode()
def generate(
    model,
    batch: PromptBatch,
    method: MethodConfig,
    settings: DecodeSettings,
    need_confidence: bool = True,
) -> list[SampleOutput]:
    """Decode every prompt of ``batch`` with ``method``; one :class:`SampleOutput` per row."""
    rows = _Rows(batch)
    cache = _prefill(model, batch)
    size = batch.batch_size
    device = batch.input_ids.device

    if method.method == "sweep":
        alphas = method.sweep_alphas
        # C is read from the un-repeated batch so that it is bit-identical to the baseline's and
        # AdaptVis's (one-pass tuning replays Eq. 3 on it); then every alpha runs as one batch.
        confidence = first_token_confidence(_last_token_step(model, rows, cache, None, method.layers)).tolist()
        cache.crop(-1)
        cache.batch_repeat_interleave(len(alphas))
        variant_rows = rows.repeated(len(alphas))
        per_row = torch.tensor(alphas, device=device, dtype=torch.float32).repeat(size)
        logits = _last_token_step(model, variant_rows, cache, per_row, method.layers)
        tokens = _greedy_continue(model, variant_rows, cache, logits, settings)
        outputs = []
        for row in range(size):
            answers = {alpha: tokens[row * len(alphas) + k] for k, alpha in enumerate(alphas)}
            outputs.append(SampleOutput(tokens=answers[1.0], alpha=1.0, confidence=confidence[row], sweep=answers))
        return outputs

    confidence: list[float] | None = None
    if method.method == "baseline":
        logits = _last_token_step(model, rows, cache, None, method.layers)
        confidence = first_token_confidence(logits).tolist()
        applied: Sequence[float | None] = [None] * size
    else:
        if method.method == "adapt_vis" or need_confidence:
            plain_logits = _last_token_step(model, rows, cache, None, method.layers)
            confidence = first_token_confidence(plain_logits).tolist()
            cache.crop(-1)
        if method.method == "scaling_vis":
            applied = [float(method.alpha)] * size
        else:
            assert confidence is not None
            applied = [
                adaptvis_alpha(c, method.threshold, method.alpha1, method.alpha2, method.confidence_rule)
                for c in confidence
            ]
        alphas_tensor = torch.tensor(applied, device=device, dtype=torch.float32)
        logits = _last_token_step(model, rows, cache, alphas_tensor, method.layers)
    tokens = _greedy_continue(model, rows, cache, logits, settings)
    return [
        SampleOutput(tokens=tokens[row], alpha=applied[row], confidence=None if confidence is None else confidence[row])
        for row in range(size)
    ]


@torch.inference_mode()
def first_token_logits(model, batch: PromptBatch, alphas: torch.Tensor | None, layers=None) -> torch.Tensor:
    """Logits of the first answer token under per-row ``alphas`` (``None`` = no intervention)."""
    rows = _Rows(batch)
    cache = _prefill(model, batch)
    return _last_token_step(model, rows, cache, alphas, layers)
