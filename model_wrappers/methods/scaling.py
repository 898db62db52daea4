"""The paper's methods: the baseline, ScalingVis (Eq. 2), AdaptVis (Eq. 3) and an alpha sweep.

All four act only at the last prompt token (``first_token``); afterwards they decode the plain
logits. Eq. 2 itself lives in ``model_wrappers.intervention`` and is applied by
:meth:`PromptState.last_token` when it is given per-row alphas.
"""

from __future__ import annotations

import torch

from model_wrappers.intervention import adaptvis_alpha, first_token_confidence
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, SampleOutput


class Baseline(DecodingMethod):
    """Plain greedy decoding (the contract's defaults)."""


class ScalingVis(DecodingMethod):
    """Eq. 2 with one fixed alpha at the last prompt token."""

    def chosen_alphas(self, confidence: list[float] | None, size: int) -> list[float]:
        return [float(self.config.alpha)] * size

    def first_token(self, prompt: PromptState) -> FirstToken:
        confidence = None
        if self.need_confidence:
            confidence = first_token_confidence(prompt.last_token().logits).tolist()
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
        assert confidence is not None
        c = self.config
        return [adaptvis_alpha(value, c.threshold, c.alpha1, c.alpha2, c.confidence_rule) for value in confidence]


class Sweep(DecodingMethod):
    """Every alpha of the sweep for every sample, as one batch over a repeated prefix cache."""

    def first_token(self, prompt: PromptState) -> FirstToken:
        alphas = self.config.sweep_alphas
        size = prompt.batch.batch_size
        # C is read from the un-repeated batch so that it is bit-identical to the baseline's and
        # AdaptVis's (one-pass tuning replays Eq. 3 on it); then every alpha runs as one batch.
        confidence = first_token_confidence(prompt.last_token().logits).tolist()
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
            # C at alpha = 1 is the baseline's C: the un-repeated batch's value, not the variant row's, which
            # a batch of another shape can round differently (2e-6 seen on AVX2 CPUs).
            per_alpha[1.0] = confidence
            outputs.append(
                SampleOutput(
                    tokens=answers[1.0], alpha=1.0, confidence=confidence, sweep=answers, sweep_confidence=per_alpha
                )
            )
        return outputs
