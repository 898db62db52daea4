"""The AdaptVis confidence rule (Eq. 3), shared by the decoder and the model-free tuning tool.

One definition, imported by ``model_wrappers.intervention`` (which applies it while decoding)
and by ``adaptvis_tasks.analysis.tune`` (which replays it over a sweep trace), so a tuned
configuration picks exactly the alpha a real ``method=adapt_vis`` run picks. Pure numpy: the task
layer must not import torch or ``model_wrappers``.
"""

from __future__ import annotations

import numpy as np

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
