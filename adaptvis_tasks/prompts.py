"""Prompt text: the LLaVA-1.5 conversation format of the paper, option clauses, and prompt variants.

The published WhatsUp ``question`` column already holds the whole LLaVA-1.5 prompt,
``<image>\\nUSER: {question} Answer with ....\\nASSISTANT:``; VSR prompts are built as
``User: <image>\\n {instruction} {caption} Assistant:``. A model with its own chat template needs
the *bare* text in between, which :func:`split_llava15_prompt` returns for both forms (and for
text that is already bare). Everything about that format lives here so the model wrappers and the
tasks agree on it.

Pure functions only; invalid input raises ``ValueError`` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

IMAGE_TOKEN = "<image>"
#: Values of the ``prompt_format`` task kwarg (``lmms_eval_specific_kwargs``).
PROMPT_FORMATS = ("bare", "llava15_paper")
VSR_INSTRUCTION = (
    "Determine whether the description about the spatial relationship is correct or not. Answer with yes or no:"
)

_ROLE = re.compile(r"\b(?:USER|User|ASSISTANT|Assistant):")
_TEMPLATED = re.compile(
    r"\s*(?:<image>\s*)?(?:USER|User):[ \t]*(?:<image>)?(?P<body>.*?)(?:ASSISTANT|Assistant):\s*",
    re.DOTALL,
)
_OPTIONS_CLAUSE = re.compile(r"Answer with (?P<options>[^.\n]*)\.")
_OPTION_SEPARATOR = re.compile(r"\s*,\s*(?:or\s+)?|\s+or\s+")
_WHERE_RELATION = re.compile(r"Where (?P<verb>is|are) (?P<x>.+?) in relation to (?P<y>.+?)\?")

#: The converse of each spatial relation (used for reversed-entity questions).
CONVERSE: dict[str, str] = {
    "left": "right",
    "right": "left",
    "on": "under",
    "under": "on",
    "above": "below",
    "below": "above",
    "top": "bottom",
    "bottom": "top",
    "front": "behind",
    "behind": "front",
}


def prompt_format(lmms_eval_specific_kwargs: Mapping[str, Any] | None) -> str:
    """The requested prompt format: ``bare`` unless the model's task kwargs say ``llava15_paper``."""
    chosen = (lmms_eval_specific_kwargs or {}).get("prompt_format", "bare")
    if chosen not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt_format {chosen!r}; expected one of {', '.join(PROMPT_FORMATS)}")
    return chosen


def is_templated(text: str) -> bool:
    """True when ``text`` carries LLaVA conversation roles (``USER:``/``ASSISTANT:`` or ``User:``/``Assistant:``)."""
    return bool(_ROLE.search(text))


def split_llava15_prompt(text: str) -> str:
    """The bare question (with its option instruction) from a LLaVA-1.5 prompt or from bare text.

    Accepts exactly three forms: ``<image>\\nUSER: {bare}\\nASSISTANT:`` (WhatsUp; extra spaces or
    newlines around the roles as in the published data are fine), ``User: <image>\\n {bare} Assistant:``
    (VSR), and bare text without ``<image>`` or role markers. Only surrounding whitespace is removed;
    the text inside is kept as published. Raises ValueError for anything else (missing role, role
    not at the edges, zero or several ``<image>`` in a templated prompt, ``<image>`` in bare text,
    empty question).
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a prompt string, got {type(text).__name__}")
    images = text.count(IMAGE_TOKEN)
    if not is_templated(text):
        if images:
            raise ValueError(f"has {images} {IMAGE_TOKEN} placeholder(s) but no USER:/ASSISTANT: roles")
        body = text.strip()
    else:
        if images != 1:
            raise ValueError(f"is a templated prompt with {images} {IMAGE_TOKEN} placeholders (expected exactly 1)")
        match = _TEMPLATED.fullmatch(text)
        if match is None:
            raise ValueError(
                "is not a LLaVA-1.5 prompt of the form '<image>\\nUSER: ...\\nASSISTANT:' "
                "or 'User: <image>\\n ... Assistant:'"
            )
        body = match.group("body").strip()
        if IMAGE_TOKEN in body or is_templated(body):
            raise ValueError("has an <image> placeholder or a role marker inside the question")
    if not body:
        raise ValueError("is empty")
    return body


def format_llava15_prompt(bare: str) -> str:
    """The paper's LLaVA-1.5 prompt for WhatsUp: ``<image>\\nUSER: {bare}\\nASSISTANT:``."""
    return f"{IMAGE_TOKEN}\nUSER: {_require_bare(bare)}\nASSISTANT:"


def format_vsr_llava15_prompt(bare: str) -> str:
    """The reference's LLaVA-1.5 prompt for VSR: ``User: <image>\\n {bare} Assistant:``."""
    return f"User: {IMAGE_TOKEN}\n {_require_bare(bare)} Assistant:"


def vsr_bare_prompt(caption: str) -> str:
    """The bare VSR question: the reference's instruction followed by the caption as published."""
    return f"{VSR_INSTRUCTION} {caption}"


def _require_bare(bare: str) -> str:
    if not isinstance(bare, str) or not bare.strip():
        raise ValueError("the bare question is empty")
    if IMAGE_TOKEN in bare or is_templated(bare):
        raise ValueError("expected a bare question, got text with <image> or role markers (split it first)")
    return bare


# ----------------------------------------------------------------------------------------------
# Option clauses
# ----------------------------------------------------------------------------------------------


def option_words(text: str) -> tuple[str, ...]:
    """The lowercased options of the prompt's single ``Answer with a, b, c or d.`` clause.

    Handles the published spellings (with or without an Oxford comma, any order). Raises
    ValueError if there is no such clause or more than one.
    """
    clauses = _OPTIONS_CLAUSE.findall(text)
    if len(clauses) != 1:
        raise ValueError(f"has {len(clauses)} 'Answer with ...' clauses (expected exactly 1)")
    words = tuple(word.strip().lower() for word in _OPTION_SEPARATOR.split(clauses[0].strip()) if word.strip())
    if len(words) < 2:
        raise ValueError(f"lists fewer than two options in 'Answer with {clauses[0]}.'")
    return words


def format_option_list(words: Sequence[str]) -> str:
    """``a or b`` / ``a, b, c or d``: the published canonical spelling (no Oxford comma)."""
    if len(words) < 2:
        raise ValueError("need at least two options")
    return f"{', '.join(words[:-1])} or {words[-1]}"


def replace_options(text: str, words: Sequence[str]) -> str:
    """``text`` with its ``Answer with ...`` clause listing ``words`` instead; everything else unchanged."""
    option_words(text)  # exactly one clause, or ValueError
    return _OPTIONS_CLAUSE.sub(lambda _match: f"Answer with {format_option_list(words)}.", text, count=1)


# ----------------------------------------------------------------------------------------------
# Reversed entities (Appendix E.8)
# ----------------------------------------------------------------------------------------------


def converse_relation(word: str) -> str:
    """The converse relation, keeping the capitalisation style (``On`` -> ``Under``, ``left`` -> ``right``)."""
    converse = CONVERSE.get(word.strip().lower())
    if converse is None:
        raise ValueError(f"{word!r} has no converse relation (known: {', '.join(CONVERSE)})")
    if word.strip().isupper() and len(word.strip()) > 1:
        return converse.upper()
    if word.strip()[:1].isupper():
        return converse.capitalize()
    return converse


def _verb_for(noun_phrase: str) -> str:
    """``are`` for a plural-looking head noun (ends in s, but not ss/us/is), else ``is``."""
    head = noun_phrase.split()[-1].lower()
    plural = head.endswith("s") and not head.endswith(("ss", "us", "is"))
    return "are" if plural else "is"


def reverse_entities(text: str) -> str:
    """Swap the entities of ``Where is X in relation to Y?`` -> ``Where is Y in relation to X?``.

    The verb is chosen for the new subject by a small rule (:func:`_verb_for`: ``sunglasses`` ->
    ``are``, ``chair``/``glass``/``bus`` -> ``is``). Everything else in ``text`` is unchanged.
    Raises ValueError unless the text has exactly one such question.
    """
    matches = list(_WHERE_RELATION.finditer(text))
    if len(matches) != 1:
        raise ValueError(f"has {len(matches)} 'Where is X in relation to Y?' questions (expected exactly 1)")
    match = matches[0]
    x, y = match.group("x"), match.group("y")
    swapped = f"Where {_verb_for(y)} {y} in relation to {x}?"
    return text[: match.start()] + swapped + text[match.end() :]
