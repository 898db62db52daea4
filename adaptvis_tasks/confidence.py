"""The AdaptVis confidence rule (Eq. 3), shared by the decoder and the model-free tuning tool.

One definition, imported by ``model_wrappers.intervention`` (which applies it while decoding)
and by ``adaptvis_tasks.analysis.tune`` (which replays it over a sweep trace), so a tuned
configuration picks exactly the alpha a real ``method=adapt_vis`` run picks. Pure numpy: the task
layer must not import torch or ``model_wrappers``.
"""

from __future__ import annotations

import numpy as np

GATE_SIGNALS = ("max_prob", "normalized_entropy", "top2_margin")
"""What AdaptVis compares with beta, each computed from the first-token distribution ``p`` under
alpha = 1 and each higher when the model is more certain: ``max_prob`` = ``max p`` (the paper's
``C``, the default); ``normalized_entropy`` = ``1 - H(p) / log V`` (1 = one token has all mass);
``top2_margin`` = ``p_1 - p_2``, the gap between the two most likely tokens."""


def gate_values(probabilities: np.ndarray) -> dict[str, float]:
    """Every :data:`GATE_SIGNALS` value of one first-token distribution (float64; ``0 log 0 = 0``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    top = np.sort(p)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -float(np.sum(np.where(p > 0, p * np.log(p), 0.0)))
    return {
        "max_prob": float(top[0]),
        "normalized_entropy": 1.0 - entropy / float(np.log(p.size)),
        "top2_margin": float(top[0] - top[1]),
    }


CONFIDENCE_RULES = ("paper_rounded", "unrounded")
"""``paper_rounded``: the reference compares ``np.round(C, 2)`` with beta; ``unrounded``: ``C`` itself."""


def compared_confidence(confidence: float, rule: str = "paper_rounded") -> float:
    """The value AdaptVis compares with beta under ``rule`` (numpy rounding, as the reference)."""
    if rule == "paper_rounded":
        return float(np.round(float(confidence), 2))
    if rule == "unrounded":
        return float(confidence)
    raise ValueError(f"confidence_rule={rule!r} is not one of {', '.join(CONFIDENCE_RULES)}")


def adaptvis_alpha(
    confidence: float, threshold: float, alpha1: float, alpha2: float, rule: str = "paper_rounded"
) -> float:
    """Eq. 3: ``alpha1`` (smooth) when the compared confidence is below beta, else ``alpha2`` (sharpen).

    ``C == beta`` is not below beta, so it gets ``alpha2``.
    """
    return alpha1 if compared_confidence(confidence, rule) < threshold else alpha2
