"""The paper's methods: the baseline, ScalingVis (Eq. 2), AdaptVis (Eq. 3) and an alpha sweep.

All four act only at the last prompt token (``first_token``); afterwards they decode the plain
logits. Eq. 2 itself lives in ``model_wrappers.intervention`` and is applied by
:meth:`PromptState.last_token` when it is given per-row alphas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from model_wrappers.errors import MethodArgumentError
from model_wrappers.intervention import adaptvis_alpha, first_token_confidence
from model_wrappers.methods.arguments import as_float, parse_alpha_list, positive
from model_wrappers.methods.contract import DecodingMethod, FirstToken, PromptState, SampleOutput
from model_wrappers.methods.registry import MethodParameters, register_method

PAPER_ALPHA_GRID = (0.5, 0.8, 1.2, 1.5, 2.0)
"""The alpha grid of the paper (Sec. 4.2, Appendix E.3); the default of ``method=sweep``."""


@dataclass(frozen=True)
class BaselineParameters(MethodParameters):
    """``method=baseline``: no parameters; ``layers=`` is accepted (and recorded) like Eq. 2's methods."""

    uses_layers: ClassVar[bool] = True

    def alpha_for(self, confidence: float | None, config) -> float:
        """The alpha Eq. 2 applies to a sample with first-token confidence ``confidence``: 1 (no intervention)."""
        return 1.0


@dataclass(frozen=True)
class ScalingVisParameters(MethodParameters):
    """``method=scaling_vis``: the one alpha of Eq. 2 (> 0; < 1 smooths, > 1 sharpens)."""

    alpha: float | None = None
    required: ClassVar[tuple[str, ...]] = ("alpha",)
    uses_layers: ClassVar[bool] = True

    @classmethod
    def parse(cls, raw) -> ScalingVisParameters:
        return cls(alpha=positive("alpha", raw["alpha"]))

    def alpha_for(self, confidence: float | None, config) -> float:
        """ScalingVis: the one alpha, whatever the confidence."""
        return float(self.alpha)


@dataclass(frozen=True)
class AdaptVisParameters(MethodParameters):
    """``method=adapt_vis``: Eq. 3 -- ``alpha1`` when ``C`` is below ``threshold`` (in [0, 1]), else ``alpha2``."""

    alpha1: float | None = None
    alpha2: float | None = None
    threshold: float | None = None
    required: ClassVar[tuple[str, ...]] = ("alpha1", "alpha2", "threshold")
    uses_layers: ClassVar[bool] = True

    @classmethod
    def parse(cls, raw) -> AdaptVisParameters:
        threshold = as_float("threshold", raw["threshold"])
        if not 0.0 <= threshold <= 1.0:
            raise MethodArgumentError(
                f"threshold={raw['threshold']!r} must lie in [0, 1] (it is compared with a probability)"
            )
        return cls(
            alpha1=positive("alpha1", raw["alpha1"]), alpha2=positive("alpha2", raw["alpha2"]), threshold=threshold
        )

    def alpha_for(self, confidence: float | None, config) -> float:
        """Eq. 3: ``alpha1`` below the threshold, else ``alpha2`` (``config.confidence_rule`` compares)."""
        assert confidence is not None, "AdaptVis needs the confidence under alpha = 1"
        return adaptvis_alpha(confidence, self.threshold, self.alpha1, self.alpha2, config.confidence_rule)

    def describe(self, config) -> dict[str, object]:
        return {
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "threshold": self.threshold,
            "confidence_rule": config.confidence_rule,
        }


@dataclass(frozen=True)
class SweepParameters(MethodParameters):
    """``method=sweep``: the alphas to decode besides 1 (default: the paper's grid)."""

    alphas: tuple[float, ...] = field(default=PAPER_ALPHA_GRID)
    uses_layers: ClassVar[bool] = True

    @classmethod
    def parse(cls, raw) -> SweepParameters:
        return cls() if raw["alphas"] is None else cls(alphas=parse_alpha_list(raw["alphas"]))

    @property
    def sweep_alphas(self) -> tuple[float, ...]:
        """Alphas decoded in sweep mode: 1 first (the answer returned), then the listed ones."""
        return (1.0, *(a for a in self.alphas if a != 1.0))

    def describe(self, config) -> dict[str, object]:
        return {"alphas": list(self.sweep_alphas)}


@register_method("baseline", BaselineParameters)
class Baseline(DecodingMethod):
    """Plain greedy decoding (the contract's defaults)."""


@register_method("scaling_vis", ScalingVisParameters)
class ScalingVis(DecodingMethod):
    """Eq. 2 with one fixed alpha at the last prompt token."""

    def chosen_alphas(self, confidence: list[float] | None, size: int) -> list[float]:
        """Per row, the alpha the method's parameters choose (``alpha_for``)."""
        values = confidence if confidence is not None else [None] * size
        return [self.config.parameters.alpha_for(value, self.config) for value in values]

    def first_token(self, prompt: PromptState) -> FirstToken:
        confidence = None
        if self.need_confidence:
            confidence = first_token_confidence(prompt.last_token().logits).tolist()
            prompt.retract()
        alphas = self.chosen_alphas(confidence, prompt.batch.batch_size)
        device = prompt.batch.input_ids.device
        output = prompt.last_token(torch.tensor(alphas, device=device, dtype=torch.float32), self.config.layers)
        return FirstToken(output.logits, confidence, list(alphas))


@register_method("adapt_vis", AdaptVisParameters)
class AdaptVis(ScalingVis):
    """Eq. 3: alpha1 or alpha2 per sample from the confidence under alpha = 1, then Eq. 2."""

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence=True)  # AdaptVis always needs C


@register_method("sweep", SweepParameters)
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
