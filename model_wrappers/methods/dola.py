"""DoLa, decoding by contrasting layers (Chuang et al., ICLR 2024), greedy.

At every decoding step (the first answer token included):

1. early-exit logits of each candidate premature layer ``j``: the LM head applied to the hidden
   state after ``j`` decoder layers (0 = the embedding output) -- *without* the final norm, as
   DoLa's code and transformers' ``_dola_decoding`` do (an open question in DoLa's repository);
2. per answer row, the candidate whose distribution differs most from the final layer's
   (:func:`layer_divergence`, the divergence DoLa's code computes), :func:`choose_premature_layer`;
3. ``score = log p_final - log p_premature`` on the relative-top set ``log p_final >= max + ln 0.1``,
   ``-inf`` elsewhere (:func:`contrast`);
4. the repetition penalty (default 1.2) over the prompt's tokens and the tokens generated so far,
   as transformers' logits processor applied it to ``input_ids`` in DoLa decoding;
5. argmax (in ``decoding``).

Candidates (:func:`candidate_layers`), transformers' bucket rule: ``N`` decoder layers, start 0
for untied word embeddings (2 if the LM head shares the input embedding, 1 if also ``N == 2``);
``low = range(start, N // 2, 2)``, ``high = range(N // 2, N, 2)``; for ``N > 40``:
``low = range(start, 20, 2)``, ``high = range(N - 20, N, 2)``; or an explicit list.

Named deviation ``per-row layer choice``: DoLa's code and transformers averaged the divergence
over the batch and used one premature layer for every row; here each row chooses its own, so an
answer never depends on its batch neighbours (identical to the reference at batch size 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from transformers import RepetitionPenaltyLogitsProcessor

from model_wrappers.architectures import PromptBatch, num_text_layers
from model_wrappers.errors import MethodArgumentError
from model_wrappers.intervention import first_token_confidence
from model_wrappers.methods.arguments import as_float, parse_dola_layers
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, StepOutput
from model_wrappers.methods.registry import MethodParameters, register_method

RELATIVE_TOP = 0.1
"""DoLa's relative-top threshold (``relative_top=0.1`` in its code and in transformers)."""
DOLA_DEFAULTS = {"dola_layers": "high", "repetition_penalty": 1.2}
"""``high``: transformers' DoLa guide recommends the high bucket for short-answer tasks (WhatsUp answers
are one word); 1.2: the repetition penalty DoLa's authors recommend with DoLa."""


@dataclass(frozen=True)
class DoLaParameters(MethodParameters):
    """``method=dola``: candidate premature layers (``low``, ``high`` or indices) and the repetition penalty (> 0)."""

    dola_layers: str | tuple[int, ...] = DOLA_DEFAULTS["dola_layers"]
    repetition_penalty: float = DOLA_DEFAULTS["repetition_penalty"]
    layers_hint: ClassVar[str] = " (DoLa's early-exit layers are dola_layers=)"

    @classmethod
    def parse(cls, raw) -> DoLaParameters:
        dola_layers, repetition_penalty = raw["dola_layers"], raw["repetition_penalty"]
        layers = parse_dola_layers(DOLA_DEFAULTS["dola_layers"] if dola_layers is None else dola_layers)
        penalty_value = DOLA_DEFAULTS["repetition_penalty"] if repetition_penalty is None else repetition_penalty
        penalty = as_float("repetition_penalty", penalty_value)
        if penalty <= 0:
            raise MethodArgumentError(
                f"repetition_penalty={repetition_penalty!r} must be > 0 (1 = no penalty; DoLa recommends 1.2)"
            )
        return cls(dola_layers=layers, repetition_penalty=penalty)

    def describe(self, config) -> dict[str, object]:
        layers = self.dola_layers if isinstance(self.dola_layers, str) else list(self.dola_layers)
        return {"dola_layers": layers, "repetition_penalty": self.repetition_penalty}

    def check_layers(self, num_layers: int) -> None:
        if isinstance(self.dola_layers, tuple) and max(self.dola_layers) >= num_layers:
            raise MethodArgumentError(
                f"dola_layers={'|'.join(map(str, self.dola_layers))} names early-exit layer {max(self.dola_layers)}, "
                f"but the language model has {num_layers} decoder layers: premature layers are 0..{num_layers - 1} "
                f"(layer {num_layers} is the final, mature layer)"
            )


def candidate_layers(dola_layers: str | tuple[int, ...], num_layers: int, tied_embeddings: bool) -> tuple[int, ...]:
    """Candidate premature layers by transformers' bucket rule (see module docstring)."""
    if tied_embeddings:
        start = 2 if num_layers > 2 else (1 if num_layers == 2 else 0)
    else:
        start = 0
    if dola_layers == "low":
        if start == num_layers // 2:
            return (start,)
        return tuple(range(start, num_layers // 2, 2) if num_layers <= 40 else range(start, 20, 2))
    if dola_layers == "high":
        return tuple(
            range(num_layers // 2, num_layers, 2) if num_layers <= 40 else range(num_layers - 20, num_layers, 2)
        )
    if not isinstance(dola_layers, tuple) or not dola_layers:
        raise MethodArgumentError(f"dola_layers={dola_layers!r} must be low, high or a tuple of layer indices")
    if max(dola_layers) >= num_layers:
        raise MethodArgumentError(
            f"dola_layers={'|'.join(map(str, dola_layers))}: premature layers must be below the final layer "
            f"{num_layers} (0..{num_layers - 1})"
        )
    return tuple(dola_layers)


def lm_head_is_tied(model) -> bool:
    """Whether the LM head shares its weight with the input embedding (the rule's ``tied``)."""
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and head.weight.data_ptr() == embedding.weight.data_ptr()


def layer_divergence(final_logits: torch.Tensor, premature_logits: torch.Tensor) -> torch.Tensor:
    """DoLa's layer distance: ``0.5 * (KL(M || p_final) + KL(M || p_premature)) / vocab``, ``M`` the mixture.

    What DoLa's code (and transformers') computes with ``F.kl_div(log p, M)`` and a mean over the
    vocabulary. ``final_logits``: ``[rows, vocab]``; ``premature_logits``: ``[layers, rows, vocab]``;
    returns ``[layers, rows]``.
    """
    mixture = 0.5 * (F.softmax(final_logits, dim=-1)[None] + F.softmax(premature_logits, dim=-1))
    kl_final = F.kl_div(F.log_softmax(final_logits, dim=-1)[None], mixture, reduction="none").mean(-1)
    kl_premature = F.kl_div(F.log_softmax(premature_logits, dim=-1), mixture, reduction="none").mean(-1)
    return 0.5 * (kl_final + kl_premature)


def choose_premature_layer(final_logits: torch.Tensor, premature_logits: torch.Tensor) -> torch.Tensor:
    """Per row, the index (into the candidates) with the largest :func:`layer_divergence`; ``[rows]``."""
    return layer_divergence(final_logits, premature_logits).argmax(dim=0)


def contrast(final_logits: torch.Tensor, premature_logits: torch.Tensor) -> torch.Tensor:
    """``log p_final - log p_premature`` on the relative-top set of the final layer, ``-inf`` elsewhere."""
    final = final_logits.log_softmax(dim=-1)
    premature = premature_logits.log_softmax(dim=-1)
    threshold = final.max(dim=-1, keepdim=True).values + math.log(RELATIVE_TOP)
    return (final - premature).masked_fill(final < threshold, -float("inf"))


@register_method("dola", DoLaParameters)
class DoLa(DecodingMethod):
    """``method=dola``: contrast the final layer with the most different candidate early exit, every step."""

    wants_hidden_states = True

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence)
        self.lm_head = model.get_output_embeddings()
        if self.lm_head is None:
            raise MethodArgumentError(f"method=dola needs an LM head; {type(model).__name__} has none")
        self.candidates = candidate_layers(config.dola_layers, num_text_layers(model), lm_head_is_tied(model))
        self.penalty = RepetitionPenaltyLogitsProcessor(penalty=float(config.repetition_penalty))
        self.chosen_layers: list[list[int]] = []
        """Per step, the premature layer each answer row contrasted with (for traces and tests)."""

    def prefill_batch(self, batch: PromptBatch, sample_keys: list[str] | None) -> PromptBatch:
        # The prompt's tokens for the repetition penalty. Padding is not part of any prompt: pad
        # positions repeat the row's last token, which the penalty counts anyway.
        last = batch.input_ids[:, -1:].expand_as(batch.input_ids)
        self.prompt_ids = torch.where(batch.attention_mask.bool(), batch.input_ids, last)
        return batch

    def first_token(self, prompt: PromptState) -> FirstToken:
        output = prompt.last_token()
        confidence = first_token_confidence(output.logits).tolist()
        return FirstToken(self.next_scores(output, None), confidence, [None] * len(confidence))

    def next_scores(self, step: StepOutput, generated: torch.Tensor | None) -> torch.Tensor:
        assert step.hidden_states is not None
        final = step.logits
        premature = torch.stack([self.lm_head(step.hidden_states[layer]).float() for layer in self.candidates])
        chosen = choose_premature_layer(final, premature)
        self.chosen_layers.append([self.candidates[i] for i in chosen.tolist()])
        base = premature[chosen, torch.arange(final.shape[0], device=final.device)]
        scores = contrast(final, base)
        seen = self.prompt_ids if generated is None else torch.cat([self.prompt_ids, generated], dim=1)
        return self.penalty(seen, scores)
