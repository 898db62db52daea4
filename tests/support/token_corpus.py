"""A committed corpus of every LLaVA-1.5 prompt shape the suite sends, built through the tasks' own code.

The authors' prompt files cannot be redistributed (``tests/support/tools/check_token_parity.py`` checks them
where they are available), so the token-id tests use prompts made the way the tasks make them:

* the six WhatsUp subsets from ``adaptvis_tasks.synthetic`` -- every published option wording
  (``left, right, on or under``, ``... front or behind``, ``... top or bottom``, the Oxford-comma
  ``... above, or below`` and ``... top, or bottom``, VG's six options and ``behind or front``) and
  the published quirks (double space after ``USER:``, a newline before ``Answer with``,
  ``\\n\\nASSISTANT:``), through ``whatsup.doc_to_text`` with ``prompt_format=llava15_paper``;
* the Appendix E.7/E.8 variants the tasks produce (two options, six options, reversed entities);
* the VSR zero-shot template with varied captions, through ``vsr.doc_to_text``;
* a few hand-written questions with punctuation, digits and non-ASCII text (byte fallback).
"""

from __future__ import annotations

from pathlib import Path

from adaptvis_tasks import vsr, whatsup
from adaptvis_tasks.data import VSR_SUBSET, WHATSUP_SUBSETS
from adaptvis_tasks.prompts import format_llava15_prompt
from adaptvis_tasks.synthetic import make_rows

PAPER = {"prompt_format": "llava15_paper"}
ROWS_PER_SUBSET = 12
"""Enough rows for every quirk the synthetic generator places (they sit at fixed row positions < 12)."""

HAND_WRITTEN = (
    "Where is the café's crème brûlée in relation to the 2 mugs? Answer with left, right, front or behind.",
    "Where are the people's umbrellas (red/blue) in relation to bus #12? Answer with left, right, above or below.",
    "Where is the 猫 in relation to the 犬? Answer with left, right, on or under.",
    "Where is the TV-stand in relation to the sofa?  Answer with left, right, front, behind, above or below.",
)


def _variant_prompts(subset: str, rows: list[dict]) -> list[tuple[str, str]]:
    variants = []
    builders = []
    if subset in whatsup.TWO_OPTIONS:
        builders.append(("two_options", whatsup._two_options))
    if subset in whatsup.SIX_OPTIONS:
        builders.append(("six_options", whatsup._six_options))
    if subset in whatsup.TWO_OBJECT_SUBSETS:
        builders.append(("reversed", whatsup._reversed))
    for name, build in builders:
        for index, row in enumerate(rows):
            question, _gold = build(subset, row)
            doc = {**row, "question": question}
            variants.append((f"{subset} {name} row {index}", whatsup.doc_to_text(doc, PAPER)))
    return variants


def build_corpus(image_root: Path) -> list[tuple[str, str]]:
    """``(label, prompt)`` for every prompt shape; images of the synthetic rows go under ``image_root``."""
    corpus: list[tuple[str, str]] = []
    for subset in WHATSUP_SUBSETS:
        rows = make_rows(subset, ROWS_PER_SUBSET, seed=0, image_root=image_root, image_size=8)
        corpus += [(f"{subset} row {i}", whatsup.doc_to_text(row, PAPER)) for i, row in enumerate(rows)]
        corpus += _variant_prompts(subset, rows)
    vsr_rows = make_rows(VSR_SUBSET, ROWS_PER_SUBSET, seed=0, image_root=image_root, image_size=8)
    corpus += [(f"VSR row {i}", vsr.doc_to_text(row, PAPER)) for i, row in enumerate(vsr_rows)]
    corpus += [(f"hand-written {i}", format_llava15_prompt(q)) for i, q in enumerate(HAND_WRITTEN)]
    return corpus
