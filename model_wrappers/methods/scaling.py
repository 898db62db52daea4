"""The paper's methods: the baseline, ScalingVis (Eq. 2), AdaptVis (Eq. 3) and an alpha sweep.

All four act only at the last prompt token (``first_token``); afterwards they decode the plain
logits. Eq. 2 itself lives in ``model_wrappers.intervention`` and is applied by
:meth:`PromptState.last_token` when it is given per-row alphas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model_wrappers.intervention import adaptvis_alpha, first_token_confidence
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, SampleOutput


@dataclass
class GatedSampleOutput(SampleOutput):
    """A :class:`SampleOutput` of AdaptVis or a sweep, plus every gate signal of its first token.

    ``gate_values``: ``adaptvis_tasks.confidence.GATE_SIGNALS`` name -> value under alpha = 1
    (recorded in the trace, so ``adaptvis tune`` can choose the signal and its threshold).
    """

    gate_values: dict[str, float] | None = None


def first_token_gate_values(logits: torch.Tensor) -> list[dict[str, float]]:
    """Per row, every gate signal of the first-token distribution (float32; ``max_prob`` is exactly ``C``)."""
    probabilities = torch.softmax(logits.float(), dim=-1)
    top = probabilities.topk(2, dim=-1).values
    entropy = -torch.special.xlogy(probabilities, probabilities).sum(dim=-1)
    normalized = 1 - entropy / math.log(probabilities.shape[-1])
    return [
        {"max_prob": float(best), "normalized_entropy": float(n), "top2_margin": float(best - second)}
        for (best, second), n in zip(top.tolist(), normalized.tolist(), strict=True)
    ]


def _gated(outputs: list[SampleOutput], gates: list[dict[str, float]] | None) -> list[SampleOutput]:
    if gates is None:
        return outputs
    return [GatedSampleOutput(**vars(out), gate_values=gate) for out, gate in zip(outputs, gates, strict=True)]


class Baseline(DecodingMethod):
    """Plain greedy decoding (the contract's defaults)."""


class ScalingVis(DecodingMethod):
    """Eq. 2 with one fixed alpha at the last prompt token."""

    gates: list[dict[str, float]] | None = None

    def chosen_alphas(self, confidence: list[float] | None, size: int) -> list[float]:
        return [float(self.config.alpha)] * size

    def first_token(self, prompt: PromptState) -> FirstToken:
        confidence = None
        if self.need_confidence:
            logits = prompt.last_token().logits
            confidence = first_token_confidence(logits).tolist()
            self.gates = first_token_gate_values(logits)
            prompt.retract()
        alphas = self.chosen_alphas(confidence, prompt.batch.batch_size)
        device = prompt.batch.input_ids.device
        output = prompt.last_token(torch.tensor(alphas, device=device, dtype=torch.float32), self.config.layers)
        return FirstToken(output.logits, confidence, list(alphas))


class AdaptVis(ScalingVis):
    """Eq. 3: alpha1 or alpha2 per sample from the confidence under alpha = 1, then Eq. 2."""

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence=True)  # AdaptVis always needs C

    def chosen_alphas(self, confidence: list[float] | None, size: int) -> list[float]:
        assert confidence is not None and self.gates is not None
        c = self.config
        # the paper's signal is C itself; another gate_signal compares its own value with beta
        values = confidence if c.gate_signal == "max_prob" else [gate[c.gate_signal] for gate in self.gates]
        return [adaptvis_alpha(value, c.threshold, c.alpha1, c.alpha2, c.confidence_rule) for value in values]

    def results(self, tokens: list[list[int]], first: FirstToken) -> list[SampleOutput]:
        return _gated(super().results(tokens, first), self.gates)


class Sweep(DecodingMethod):
    """Every alpha of the sweep for every sample, as one batch over a repeated prefix cache."""

    def first_token(self, prompt: PromptState) -> FirstToken:
        alphas = self.config.sweep_alphas
        size = prompt.batch.batch_size
        # C is read from the un-repeated batch so that it is bit-identical to the baseline's and
        # AdaptVis's (one-pass tuning replays Eq. 3 on it); then every alpha runs as one batch.
        logits = prompt.last_token().logits
        confidence = first_token_confidence(logits).tolist()
        self.gates = first_token_gate_values(logits)
        prompt.retract()
        prompt.repeat_rows(len(alphas))
        per_row = torch.tensor(alphas, device=prompt.batch.input_ids.device, dtype=torch.float32).repeat(size)
        output = prompt.last_token(per_row, self.config.layers)
        # The first-token confidence under every alpha (C per alpha, the paper's Figure 8), one value per variant row.
        self.variant_confidence = first_token_confidence(output.logits).tolist()
        return FirstToken(output.logits, confidence, per_row.tolist())

    def results(self, tokens: list[list[int]], first: FirstToken) -> list[SampleOutput]:
        alphas = self.config.sweep_alphas
        assert first.confidence is not None
        outputs = []
        for row, confidence in enumerate(first.confidence):
            variants = range(row * len(alphas), (row + 1) * len(alphas))
            answers = {alpha: tokens[k] for alpha, k in zip(alphas, variants, strict=True)}
            per_alpha = {alpha: self.variant_confidence[k] for alpha, k in zip(alphas, variants, strict=True)}
            outputs.append(
                SampleOutput(
                    tokens=answers[1.0], alpha=1.0, confidence=confidence, sweep=answers, sweep_confidence=per_alpha
                )
            )
        return _gated(outputs, self.gates)
