"""The decoding-step contract between ``decoding.generate`` and a method.

``generate`` owns the KV cache, padding, positions and the greedy loop; a method only says

1. which physical rows to prefill (:meth:`DecodingMethod.prefill_batch`; VCD adds a noised copy
   of every sample, so 2 physical rows per answer: :attr:`DecodingMethod.rows_per_answer`),
2. what happens at the last prompt token (:meth:`DecodingMethod.first_token`; where Eq. 2 acts,
   AdaptVis reads its confidence, a sweep repeats the cache per alpha) -- through the
   :class:`PromptState` handle,
3. the next-token scores of every answer row from one step's output (:meth:`DecodingMethod.next_scores`;
   plain logits by default, VCD's contrast, DoLa's layer contrast),
4. how answer rows become :class:`SampleOutput` (:meth:`DecodingMethod.results`).

``generate`` takes the argmax of the scores, so every method here is greedy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from model_wrappers.architectures import PromptBatch
from model_wrappers.intervention import first_token_confidence
from model_wrappers.logit_edit import LogitEdit


@dataclass
class SampleOutput:
    """What one prompt produced.

    ``tokens``: the answer handed back (for a sweep, the ``alpha = 1`` answer). ``alpha``: the
    alpha applied to that answer (``None`` when no Eq. 2 acted). ``confidence``: ``C`` of the
    unmodified first-token distribution (``alpha = 1``, real image, final layer; ``None`` when it
    was not requested and would have cost an extra step). ``sweep``: alpha -> answer tokens, in
    sweep mode only; ``sweep_confidence``: alpha -> the largest first-token probability under that
    alpha (the paper's Figure 8 measure), in sweep mode only.
    """

    tokens: list[int]
    alpha: float | None
    confidence: float | None
    sweep: dict[float, list[int]] | None = None
    sweep_confidence: dict[float, float] | None = None

    def trace_fields(self) -> dict[str, object]:
        """Extra fields a method records in this sample's trace record (none by default; AdaptVis: ``gate_values``)."""
        return {}


@dataclass
class StepOutput:
    """One single-token step of every physical row.

    ``logits``: ``[rows, vocab]`` float32 next-token logits. ``hidden_states`` (only when the
    method sets ``wants_hidden_states``): ``hidden_states[i]`` is ``[rows, hidden]``, the residual
    stream after ``i`` decoder layers (0 = embedding output) -- transformers' ``hidden_states``
    at the step's position, whose last entry is already final-normed.
    """

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


class PromptState(Protocol):
    """The prefilled prompt (all but its last token) in the cache; implemented by ``decoding``."""

    @property
    def batch(self) -> PromptBatch:
        """The physical rows as prefilled."""
        ...

    def last_token(self, alphas: torch.Tensor | None = None, layers: tuple[int, ...] | None = None) -> StepOutput:
        """Run the last prompt token over the cache; ``alphas`` (one per current row) applies Eq. 2."""
        ...

    def retract(self) -> None:
        """Drop the last prompt token from the cache again (to re-run it with other alphas)."""
        ...

    def repeat_rows(self, repeats: int) -> None:
        """Repeat every current row ``repeats`` times (cache included), interleaved per row."""
        ...

    def companion(self, batch: PromptBatch) -> PromptState:
        """Prefill ``batch`` (all but its last token) into a cache of its own (PAI's text-only prompts)."""
        ...

    def next_token(self, tokens: torch.Tensor) -> StepOutput:
        """Feed one token per row (``[rows]``) after the last prompt token (or the previous token)."""
        ...


@dataclass
class FirstToken:
    """The first answer token's scores (one row per answer row) and what the method records."""

    scores: torch.Tensor
    confidence: list[float] | None
    alphas: list[float | None]


class DecodingMethod:
    """One decoding method for one ``generate`` call; subclasses override what differs.

    The defaults are plain greedy decoding: one physical row per answer, the last prompt token
    run without intervention, the logits as scores.
    """

    rows_per_answer: int = 1
    """Physical rows decoded for one answer row; each receives the answer row's token."""
    wants_hidden_states: bool = False
    """Ask every step for transformers' per-layer hidden states (DoLa)."""

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        self.config = config
        self.model = model
        self.need_confidence = need_confidence

    def prefill_batch(self, batch: PromptBatch, sample_keys: list[str] | None) -> PromptBatch:
        """The physical rows to prefill; ``sample_keys`` identify each sample (seeds, not order), if given."""
        return batch

    def attention_edit(self, batch: PromptBatch) -> LogitEdit | None:
        """An attention-logit edit in force for every forward of ``generate`` over ``batch`` (PAI, VAF)."""
        return None

    def first_token(self, prompt: PromptState) -> FirstToken:
        """The last-prompt-token step(s); returns the first answer token's scores."""
        output = prompt.last_token()
        confidence = first_token_confidence(output.logits).tolist()
        return FirstToken(self.next_scores(output, None), confidence, [None] * len(confidence))

    def next_scores(self, step: StepOutput, generated: torch.Tensor | None) -> torch.Tensor:
        """``[answer rows, vocab]`` scores whose argmax is the next token.

        ``generated``: ``[answer rows, steps]`` tokens fed so far (padding for finished rows), or
        ``None`` at the first answer token.
        """
        return step.logits

    def results(self, tokens: list[list[int]], first: FirstToken) -> list[SampleOutput]:
        """One :class:`SampleOutput` per sample from the answer rows' tokens."""
        confidence = first.confidence
        return [
            SampleOutput(tokens=row, alpha=first.alphas[i], confidence=None if confidence is None else confidence[i])
            for i, row in enumerate(tokens)
        ]
