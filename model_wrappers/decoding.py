"""Greedy decoding that shares the prompt prefix, driving any method through one step contract.

Every method runs the same three phases on a left-padded batch (``generate``):

1. **Prefill** the prompt without its last token (vision inputs included) into a KV cache, for
   the physical rows the method asks for (VCD: the real and a noised image per sample). This is
   where ~all the compute is, and it is done once per sample and image variant.
2. **Last-token step(s)**: the method's ``first_token`` runs the last prompt token alone over the
   cached prefix through :class:`_Prompt` -- the only place Eq. 2 acts
   (``model_wrappers.intervention``). AdaptVis first runs it with ``alpha = 1`` to read the
   confidence, drops that token from the cache and runs it again with the chosen alpha; a sweep
   repeats the prefix cache once per alpha and runs all variants as one batch.
3. **Greedy decoding** of every answer row until EOS, a stop condition or ``max_new_tokens``:
   each step the method turns the step's output into next-token scores (``next_scores``), the
   argmax is fed to all of that answer's physical rows.

The methods themselves live in ``model_wrappers.methods`` (contract: ``methods/contract.py``).
The paper's code regenerates everything from scratch per variant at batch size 1; here the
prefix is never recomputed, which is why AdaptVis costs about one extra single-token step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from model_wrappers.architectures import PromptBatch
from model_wrappers.intervention import ImageKeyScaling, image_attention_scaling
from model_wrappers.logit_edit import attention_logit_edit
from model_wrappers.methods import MethodConfig
from model_wrappers.methods.contract import DecodingMethod, SampleOutput, StepOutput

__all__ = ["DecodeSettings", "SampleOutput", "StopCondition", "eos_and_pad", "first_token_logits", "generate"]

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


def eos_and_pad(
    model, tokenizer=None, eos_token_id: int | Sequence[int] | None = None, pad_token_id: int | None = None
) -> tuple[tuple[int, ...], int]:
    """The end-of-sequence ids and the padding id a decode uses; the one place they are chosen.

    EOS: ``eos_token_id`` if given, else the model's ``generation_config.eos_token_id``, plus the
    ``tokenizer``'s EOS token when a tokenizer is given (the lmms-eval wrappers pass theirs).
    Padding: ``pad_token_id`` if given, else the tokenizer's pad token (with a tokenizer) or the
    generation config's, else the first EOS id, else 0.
    """
    if eos_token_id is None:
        eos_token_id = model.generation_config.eos_token_id
    eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    if tokenizer is not None and tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    if pad_token_id is None:
        pad_token_id = tokenizer.pad_token_id if tokenizer is not None else model.generation_config.pad_token_id
    if pad_token_id is None:
        pad_token_id = eos[0] if eos else 0
    return tuple(eos), int(pad_token_id)


def _repeat_rows(tensor: torch.Tensor, repeats: int, row_dim: int) -> torch.Tensor:
    return tensor if repeats == 1 else tensor.repeat_interleave(repeats, dim=row_dim)


class _Prompt:
    """A prefilled prompt and its cache: the :class:`~model_wrappers.methods.contract.PromptState` of ``generate``.

    Holds the per-row tensors every later step needs (mask, last position, image-token mask) and
    runs single-token steps over the cache.
    """

    def __init__(self, model, batch: PromptBatch, hidden_states: bool) -> None:
        from transformers import DynamicCache

        if bool(batch.image_token_mask[:, -1].any()):
            raise ValueError("the last prompt token is an image token; the prompt must end with text")
        self.model = model
        self.batch = batch
        self.hidden_states = hidden_states
        self.attention_mask = batch.attention_mask
        self.last_position = batch.position_ids[..., -1:]
        self.position_row_dim = batch.position_ids.ndim - 2
        self.image_token_mask = batch.image_token_mask
        self.last_prompt_token = batch.input_ids[:, -1:]
        self.steps = 0
        text_config = getattr(model.config, "text_config", None) or model.config
        self.cache = DynamicCache(config=text_config)
        model(
            input_ids=batch.input_ids[:, :-1],
            attention_mask=batch.attention_mask[:, :-1],
            position_ids=batch.position_ids[..., :-1],
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
            **batch.vision_inputs,
        )

    def _forward(self, tokens, attention_mask, position_ids, scaling: ImageKeyScaling | None) -> StepOutput:
        context = image_attention_scaling(scaling) if scaling is not None else nullcontext()
        with context:
            output = self.model(
                input_ids=tokens,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=self.cache,
                use_cache=True,
                output_hidden_states=self.hidden_states or None,
            )
        hidden = None
        if self.hidden_states:
            hidden = tuple(state[:, -1, :] for state in output.hidden_states)
        return StepOutput(logits=output.logits[:, -1, :].float(), hidden_states=hidden)

    def last_token(self, alphas: torch.Tensor | None = None, layers: tuple[int, ...] | None = None) -> StepOutput:
        scaling = None if alphas is None else ImageKeyScaling.build(self.image_token_mask, alphas, layers)
        return self._forward(self.last_prompt_token, self.attention_mask, self.last_position, scaling)

    def retract(self) -> None:
        self.cache.crop(-1)

    def repeat_rows(self, repeats: int) -> None:
        self.cache.batch_repeat_interleave(repeats)
        self.attention_mask = _repeat_rows(self.attention_mask, repeats, 0)
        self.last_position = _repeat_rows(self.last_position, repeats, self.position_row_dim)
        self.image_token_mask = _repeat_rows(self.image_token_mask, repeats, 0)
        self.last_prompt_token = _repeat_rows(self.last_prompt_token, repeats, 0)

    def companion(self, batch: PromptBatch) -> _Prompt:
        """Prefill another set of prompts (e.g. PAI's text-only prompts) into a cache of their own."""
        return _Prompt(self.model, batch, hidden_states=False)

    def next_token(self, tokens: torch.Tensor) -> StepOutput:
        """Feed one generated token per row (``[rows]``) after the last prompt token."""
        self.steps += 1
        self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones((tokens.shape[0], 1))], 1)
        return self._forward(tokens[:, None], self.attention_mask, self.last_position + self.steps, None)


def _greedy(
    prompt: _Prompt, method: DecodingMethod, first_scores: torch.Tensor, settings: DecodeSettings
) -> list[list[int]]:
    """Greedy decoding from the first-token scores; returns each answer row's tokens without EOS/padding."""
    device = first_scores.device
    eos = torch.tensor(settings.eos_token_ids, device=device, dtype=torch.long)
    num_rows = first_scores.shape[0]
    generated: list[list[int]] = [[] for _ in range(num_rows)]
    finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
    fed = torch.empty((num_rows, 0), dtype=torch.long, device=device)
    scores = first_scores
    for step in range(settings.max_new_tokens):
        next_tokens = scores.argmax(dim=-1)
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
        fed = torch.cat([fed, feed[:, None]], dim=1)
        output = prompt.next_token(_repeat_rows(feed, method.rows_per_answer, 0))
        scores = method.next_scores(output, fed)
    return generated


@torch.inference_mode()
def generate(
    model,
    batch: PromptBatch,
    method: MethodConfig,
    settings: DecodeSettings,
    need_confidence: bool = True,
    sample_keys: Sequence[str] | None = None,
) -> list[SampleOutput]:
    """Decode every prompt of ``batch`` with ``method``; one :class:`SampleOutput` per row.

    ``sample_keys`` (one per row) identify each sample for methods that draw random numbers (VCD's
    noise), so answers never depend on batch composition; the lmms-eval wrapper passes its hash of
    prompt text and image pixels. Without them such a method hashes the row's prompt ids and pixels.
    """
    keys = None if sample_keys is None else list(sample_keys)
    if keys is not None and len(keys) != batch.batch_size:
        raise ValueError(f"sample_keys has {len(keys)} entries for a batch of {batch.batch_size} prompts")
    decoder = method.decoder(model, need_confidence)  # model_wrappers/methods/<scaling|vcd|dola|pai|vaf>.py
    physical = decoder.prefill_batch(batch, keys)
    # an attention-logit edit in force for every forward of this call (PAI, VAF; None for the others)
    with attention_logit_edit(decoder.attention_edit(physical)):
        # 1. prefill the physical rows the method asks for (VCD: real + noised image per sample)
        prompt = _Prompt(model, physical, hidden_states=decoder.wants_hidden_states)
        # 2. the last prompt token: where Eq. 2 acts, AdaptVis reads C, a sweep repeats the cache
        first = decoder.first_token(prompt)
        # 3. greedy decoding; the method turns every step's output into next-token scores
        tokens = _greedy(prompt, decoder, first.scores, settings)
    return decoder.results(tokens, first)


@torch.inference_mode()
def first_token_logits(model, batch: PromptBatch, alphas: torch.Tensor | None, layers=None) -> torch.Tensor:
    """Logits of the first answer token under per-row ``alphas`` (``None`` = no intervention)."""
    return _Prompt(model, batch, hidden_states=False).last_token(alphas, layers).logits
