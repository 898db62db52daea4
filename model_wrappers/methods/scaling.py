"""The paper's methods: the baseline, ScalingVis (Eq. 2), AdaptVis (Eq. 3) and an alpha sweep.

All four act only at the last prompt token (``first_token``); afterwards they decode the plain
logits. Eq. 2 itself lives in ``model_wrappers.intervention`` and is applied by
:meth:`PromptState.last_token` when it is given per-row alphas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from adaptvis_tasks.confidence import GATE_SIGNALS
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

    def alpha_for(self, confidence: float | None, config, gates: Mapping[str, float] | None = None) -> float:
        """The alpha Eq. 2 applies to a sample with first-token confidence ``confidence``: 1 (no intervention).

        ``gates``: the sample's gate signals (:func:`first_token_gate_values`), for parameters that gate on one.
        """
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

    def alpha_for(self, confidence: float | None, config, gates: Mapping[str, float] | None = None) -> float:
        """ScalingVis: the one alpha, whatever the confidence."""
        return float(self.alpha)


@dataclass(frozen=True)
class AdaptVisParameters(MethodParameters):
    """``method=adapt_vis``: Eq. 3 -- ``alpha1`` when the gate is below ``threshold`` (in [0, 1]), else ``alpha2``.

    ``gate_signal`` (:data:`~adaptvis_tasks.confidence.GATE_SIGNALS`): what is compared with the
    threshold; ``max_prob``, the paper's ``C``, by default.
    """

    alpha1: float | None = None
    alpha2: float | None = None
    threshold: float | None = None
    gate_signal: str = "max_prob"
    required: ClassVar[tuple[str, ...]] = ("alpha1", "alpha2", "threshold")
    uses_layers: ClassVar[bool] = True

    @classmethod
    def parse(cls, raw) -> AdaptVisParameters:
        threshold = as_float("threshold", raw["threshold"])
        if not 0.0 <= threshold <= 1.0:
            raise MethodArgumentError(
                f"threshold={raw['threshold']!r} must lie in [0, 1] (it is compared with a probability)"
            )
        signal = "max_prob" if raw["gate_signal"] is None else raw["gate_signal"]
        if signal not in GATE_SIGNALS:
            raise MethodArgumentError(
                f"gate_signal={signal!r} is not supported; allowed: {', '.join(GATE_SIGNALS)} "
                "(max_prob is the paper's C)"
            )
        return cls(
            alpha1=positive("alpha1", raw["alpha1"]),
            alpha2=positive("alpha2", raw["alpha2"]),
            threshold=threshold,
            gate_signal=str(signal),
        )

    def alpha_for(self, confidence: float | None, config, gates: Mapping[str, float] | None = None) -> float:
        """Eq. 3: ``alpha1`` below the threshold, else ``alpha2`` (``config.confidence_rule`` compares).

        The compared value is ``confidence`` (``C``) for ``gate_signal=max_prob``, else ``gates[gate_signal]``.
        """
        assert confidence is not None, "AdaptVis needs the confidence under alpha = 1"
        if self.gate_signal == "max_prob":
            value = confidence
        else:
            assert gates is not None, f"gate_signal={self.gate_signal} needs the sample's gate values"
            value = gates[self.gate_signal]
        return adaptvis_alpha(value, self.threshold, self.alpha1, self.alpha2, config.confidence_rule)

    def describe(self, config) -> dict[str, object]:
        out: dict[str, object] = {
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "threshold": self.threshold,
            "confidence_rule": config.confidence_rule,
        }
        if self.gate_signal != "max_prob":  # the paper's signal is not named: old run fingerprints stay valid
            out["gate_signal"] = self.gate_signal
        return out


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


@dataclass
class GatedSampleOutput(SampleOutput):
    """A :class:`SampleOutput` of AdaptVis or a sweep, plus every gate signal of its first token.

    ``gate_values``: ``adaptvis_tasks.confidence.GATE_SIGNALS`` name -> value under alpha = 1
    (recorded in the trace, so ``adaptvis tune`` can choose the signal and its threshold).
    """

    gate_values: dict[str, float] | None = None

    def trace_fields(self) -> dict[str, object]:
        return {} if self.gate_values is None else {"gate_values": self.gate_values}


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


@register_method("baseline", BaselineParameters)
class Baseline(DecodingMethod):
    """Plain greedy decoding (the contract's defaults)."""


@register_method("scaling_vis", ScalingVisParameters)
class ScalingVis(DecodingMethod):
    """Eq. 2 with one fixed alpha at the last prompt token."""

    gates: list[dict[str, float]] | None = None
    """Per row, every gate signal under alpha = 1 (read with the confidence)."""

    def chosen_alphas(self, confidence: list[float] | None, size: int) -> list[float]:
        """Per row, the alpha the method's parameters choose (``alpha_for``)."""
        values = confidence if confidence is not None else [None] * size
        gates = self.gates if self.gates is not None else [None] * size
        return [
            self.config.parameters.alpha_for(value, self.config, gate)
            for value, gate in zip(values, gates, strict=True)
        ]

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


@register_method("adapt_vis", AdaptVisParameters)
class AdaptVis(ScalingVis):
    """Eq. 3: alpha1 or alpha2 per sample from the gate signal (default ``C``) under alpha = 1, then Eq. 2."""

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence=True)  # AdaptVis always needs C

    def results(self, tokens: list[list[int]], first: FirstToken) -> list[SampleOutput]:
        return _gated(super().results(tokens, first), self.gates)


@register_method("sweep", SweepParameters)
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
            # C at alpha = 1 is the baseline's C: the un-repeated batch's value, not the variant row's, which
            # a batch of another shape can round differently (2e-6 seen on AVX2 CPUs).
            per_alpha[1.0] = confidence
            outputs.append(
                SampleOutput(
                    tokens=answers[1.0], alpha=1.0, confidence=confidence, sweep=answers, sweep_confidence=per_alpha
                )
            )
        return _gated(outputs, self.gates)
