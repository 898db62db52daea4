"""Metric definitions as pure functions (no lmms-eval, no I/O); every value is a fraction in [0, 1].

WhatsUp
    * :func:`substring_correct` -- the paper's rule (reference ``model_zoo/llava15.py``): correct
      when the gold word occurs in the generation, case-insensitively, except that gold ``on`` is
      wrong whenever the generation contains ``front``. It rewards answers that list several
      options; :func:`strict_correct` (ours) takes only the first option word the answer mentions.
    * :func:`pair_set_accuracy` -- Controlled_A/B pair and set accuracy exactly as the reference
      ``Controlled_Images.evaluate_scores``.
VSR
    * :func:`vsr_reference_correct` -- case-sensitive ``'Yes' in gen`` / ``'No' in gen``.
    * :class:`Confusion` -- accuracy, positive-class F1, and the paper's "F1" (harmonic mean of the
      true-positive and true-negative rates). Undefined ratios (0/0) are defined as 0.0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

# ----------------------------------------------------------------------------------------------
# Per-answer rules
# ----------------------------------------------------------------------------------------------


def substring_correct(generation: str, gold: str) -> bool:
    """The paper's rule: gold word in the generation (case-insensitive), but gold ``on`` fails on ``front``."""
    found = gold in generation or gold.lower() in generation.lower()
    on_beaten_by_front = gold.lower() == "on" and "front" in generation.strip().lower()
    return found and not on_beaten_by_front


@lru_cache(maxsize=256)
def _option_pattern(options: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(option) for option in sorted(options, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def first_option(generation: str, options: Sequence[str]) -> str | None:
    """The option word (lowercased) that occurs first in the generation as a whole word, or None."""
    if not options:
        return None
    match = _option_pattern(tuple(option.lower() for option in options)).search(generation)
    return match.group(0).lower() if match else None


def strict_correct(generation: str, gold: str, options: Sequence[str]) -> bool:
    """Our stricter rule: the first option word of the answer equals the gold (case-insensitive)."""
    return first_option(generation, options) == gold.strip().lower()


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def relation_accuracy(golds: Iterable[str], corrects: Iterable[bool]) -> dict[str, float]:
    """Accuracy per gold relation (lowercased), sorted by relation name."""
    totals: dict[str, list[int]] = {}
    for gold, correct in zip(golds, corrects, strict=True):
        bucket = totals.setdefault(gold.strip().lower(), [0, 0])
        bucket[0] += int(bool(correct))
        bucket[1] += 1
    return {relation: hits / count for relation, (hits, count) in sorted(totals.items())}


# ----------------------------------------------------------------------------------------------
# Controlled_A / Controlled_B pair and set accuracy
# ----------------------------------------------------------------------------------------------

#: The four relations of each Controlled subset as the file names spell them, and the second pair.
CONTROLLED_RELATIONS: dict[str, tuple[str, str, str, str]] = {
    "Controlled_A": ("left", "right", "on", "under"),
    "Controlled_B": ("left", "right", "in-front", "behind"),
    # The synthetic WhatsUp-style subsets (adaptvis_tasks.whatsup_synthetic) name files the same way.
    "Synthetic_A": ("left", "right", "on", "under"),
    "Synthetic_B": ("left", "right", "in-front", "behind"),
}


def controlled_image_key(image_path: str) -> tuple[tuple[str, str], str]:
    """``((first object, last object), relation)`` from ``<obj1>_<relation>_<obj2>.jpeg`` as the reference reads it.

    Pair key: ``name.split('_')[0]`` and ``name.split('_')[-1]`` without the extension; relation:
    ``name.split('_')[1]`` (``left``, ``right``, ``on``, ``under``, ``in-front``, ``behind``).
    """
    name = PurePosixPath(image_path.replace("\\", "/")).name
    parts = name.split("_")
    last = parts[-1]
    stem = last[: last.rfind(".")] if "." in last else last
    relation = parts[1] if len(parts) > 1 else ""
    return (parts[0], stem), relation


@dataclass(frozen=True)
class PairSetResult:
    """Counts and accuracies of the reference's pair/set evaluation."""

    n: int
    pair_correct: int
    set_correct: int

    @property
    def pair_accuracy(self) -> float:
        """pair_correct / (n / 2); 0.0 when n == 0."""
        return self.pair_correct / (self.n / 2) if self.n else 0.0

    @property
    def set_accuracy(self) -> float:
        """set_correct / (n / 4); 0.0 when n == 0."""
        return self.set_correct / (self.n / 4) if self.n else 0.0


def pair_set_accuracy(records: Iterable[tuple[int, str, bool]], subset: str) -> PairSetResult:
    """Pair and set accuracy from ``(row, image_path, correct)`` of every evaluated doc.

    As the reference: each object pair starts with its four relations not correct; docs are applied
    in dataset order (sorted by ``row`` here, so the result does not depend on how lmms-eval
    gathered them), a later doc of the same pair and relation overwriting an earlier one. A pair
    counts once when left and right are both correct and once more when on/under (A) or
    in-front/behind (B) are; a set counts when all four are. Denominators use the number of
    evaluated docs: ``N/2`` and ``N/4``. (The reference also creates entries for pairs never
    evaluated; they are all-false and cannot count, so they are left out.)
    """
    if subset not in CONTROLLED_RELATIONS:
        raise ValueError(f"pair/set accuracy is defined for {', '.join(CONTROLLED_RELATIONS)}, not {subset!r}")
    left, right, third, fourth = CONTROLLED_RELATIONS[subset]
    ordered = sorted(records, key=lambda record: record[0])
    table: dict[tuple[str, str], dict[str, bool]] = {}
    for _row, image_path, correct in ordered:
        key, relation = controlled_image_key(image_path)
        entry = table.setdefault(key, {left: False, right: False, third: False, fourth: False})
        entry[relation] = bool(correct)
    pair_correct = 0
    set_correct = 0
    for entry in table.values():
        if entry[left] and entry[right]:
            pair_correct += 1
        if entry[third] and entry[fourth]:
            pair_correct += 1
        if sum(entry.values()) == 4:
            set_correct += 1
    return PairSetResult(n=len(ordered), pair_correct=pair_correct, set_correct=set_correct)


# ----------------------------------------------------------------------------------------------
# VSR
# ----------------------------------------------------------------------------------------------


def vsr_reference_correct(generation: str, label: int) -> bool:
    """The reference's case-sensitive rule: label 1 needs ``Yes`` in the generation, label 0 needs ``No``."""
    return ("Yes" in generation) if int(label) == 1 else ("No" in generation)


def vsr_strict_correct(generation: str, label: int) -> bool:
    """Our stricter rule: the first whole word ``yes``/``no`` (any case) matches the label."""
    return first_option(generation, ("yes", "no")) == ("yes" if int(label) == 1 else "no")


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class Confusion:
    """VSR confusion counts under the reference rule (label 1 = positive)."""

    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def n(self) -> int:
        """Number of docs."""
        return self.tp + self.fn + self.tn + self.fp

    @property
    def accuracy(self) -> float:
        """(TP + TN) / N."""
        return _ratio(self.tp + self.tn, self.n)

    @property
    def true_positive_rate(self) -> float:
        """TP / (TP + FN) (the reference prints it as 'precision')."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def true_negative_rate(self) -> float:
        """TN / (TN + FP) (the reference prints it as 'recall')."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def f1(self) -> float:
        """Standard positive-class F1 = 2TP / (2TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def paper_f1(self) -> float:
        """What the paper's Table 2 calls F1: harmonic mean of the true-positive and true-negative rates."""
        tpr, tnr = self.true_positive_rate, self.true_negative_rate
        return _ratio(2 * tpr * tnr, tpr + tnr)


def vsr_confusion(records: Iterable[tuple[int, bool]]) -> Confusion:
    """Confusion counts from ``(label, correct)`` pairs, ``correct`` under the reference rule."""
    tp = fn = tn = fp = 0
    for label, correct in records:
        if int(label) == 1:
            tp, fn = (tp + 1, fn) if correct else (tp, fn + 1)
        else:
            tn, fp = (tn + 1, fp) if correct else (tn, fp + 1)
    return Confusion(tp=tp, fn=fn, tn=tn, fp=fp)
