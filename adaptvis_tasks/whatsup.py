"""lmms-eval glue for the six WhatsUp subsets (``yaml_tasks/whatsup/``).

``process_docs*`` turn a task's one-row source descriptor into the published rows (all, the
validation 20%, the test 80%, or a prompt variant); they are generic over the subset, which comes
from the descriptor. ``doc_to_*`` and ``process_results`` are shared by every WhatsUp task.

Prompt variants (the appendix does not print their text; this is our documented reconstruction):

* two options (Appendix E.7, Controlled_A/B): the ``Answer with`` clause lists only the gold
  relation and its converse: ``left or right``, ``on or under`` (A), ``front or behind`` (B).
* six options (Appendix E.7, COCO): the VG wording: ``left, right, front, behind, top or bottom``
  (one object), ``left, right, front, behind, above or below`` (two objects).
* reversed entities (Appendix E.8, two-object subsets): ``Where is X in relation to Y?`` becomes
  ``Where is Y in relation to X?`` and the gold becomes its converse (left<->right, on<->under,
  above<->below, top<->bottom, front<->behind). A row whose question does not parse fails the
  load with a DataSetupError naming it; rows are never skipped.

Variant rows keep the published text in ``published_question``/``published_answer``.

The same functions serve the synthetic WhatsUp-style subsets ``Synthetic_A``/``Synthetic_B``
(``yaml_tasks/whatsup_synthetic/``, data shipped with the package). The image-shuffle control
(:func:`process_docs_shuffled_images`) shows every row the image of another row of the same
subset (a seeded derangement), leaving question, answer and ``image_path`` (hence the pair/set
keys) untouched: a model that reads the image should fall to chance.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from adaptvis_tasks import prompts, scoring
from adaptvis_tasks.data import (
    ROW_COLUMN,
    SHOWN_IMAGE_COLUMN,
    SUBSET_COLUMN,
    SYNTHETIC_SUBSETS,
    WHATSUP_SUBSETS,
    DataSetupError,
    LoadedRows,
    SourceDescriptor,
    docs_or_deferred_error,
    doctor_hint,
    image_relpath,
    load_rows,
    raise_if_deferred,
    raise_row_problems,
    resolve_image_path,
    rows_to_dataset,
)
from adaptvis_tasks.images import open_rgb
from adaptvis_tasks.splits import Split, split_indices
from adaptvis_tasks.task_functions import yaml_function

SPLIT_COLUMN = "suite_split"
"""Column every doc gets from ``process_docs``: this suite's split, ``val``, ``test`` or ``all``.

lmms-eval calls every split ``test`` (the name of the source descriptor's split), so a ``_val``
task would otherwise be indistinguishable from a ``_test`` one in a trace (docs/reference/TRACE.md)."""

SUITE_SPLIT_NAMES: dict[str, str] = {"full": "all", "val": "val", "test": "test"}


def with_split_column(rows: list[dict[str, Any]], split: Split) -> list[dict[str, Any]]:
    """``rows`` with :data:`SPLIT_COLUMN` set to the suite's name of ``split``."""
    name = SUITE_SPLIT_NAMES[split]
    return [{**row, SPLIT_COLUMN: name} for row in rows]


TWO_OBJECT_SUBSETS = ("Controlled_A", "Controlled_B", "COCO_two_obj", "VG_two_obj")

#: Two-option variant: gold relation -> the two options offered.
TWO_OPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "Controlled_A": {
        "left": ("left", "right"),
        "right": ("left", "right"),
        "on": ("on", "under"),
        "under": ("on", "under"),
    },
    "Controlled_B": {
        "left": ("left", "right"),
        "right": ("left", "right"),
        "front": ("front", "behind"),
        "behind": ("front", "behind"),
    },
}

#: Six-option variant for COCO: the VG subsets' wording.
SIX_OPTIONS: dict[str, tuple[str, ...]] = {
    "COCO_one_obj": ("left", "right", "front", "behind", "top", "bottom"),
    "COCO_two_obj": ("left", "right", "front", "behind", "above", "below"),
}


# ----------------------------------------------------------------------------------------------
# process_docs
# ----------------------------------------------------------------------------------------------


def _whatsup_descriptor(docs: Any) -> SourceDescriptor:
    descriptor = SourceDescriptor.from_docs(docs)
    known = (*WHATSUP_SUBSETS, *SYNTHETIC_SUBSETS)
    if descriptor.subset not in known:
        raise DataSetupError(
            f"WhatsUp task got the source descriptor of {descriptor.subset!r}; expected one of {', '.join(known)}."
        )
    return descriptor


def _build(docs: Any, split: Split, variant: str | None = None) -> Any:
    def build() -> Any:
        descriptor = _whatsup_descriptor(docs)
        loaded = load_rows(descriptor)
        keep = split_indices(len(loaded.rows), split)
        rows = [loaded.rows[index] for index in keep]
        if variant is not None:
            rows = _apply_variant(loaded, rows, variant)
        return rows_to_dataset(loaded, with_split_column(rows, split))

    return docs_or_deferred_error(build)


@yaml_function
def process_docs(docs: Any) -> Any:
    """All rows of the subset named by the descriptor (published order, plus ``row`` and ``subset``)."""
    return _build(docs, "full")


@yaml_function
def process_docs_val(docs: Any) -> Any:
    """The paper's 20% validation rows (``splits.validation_indices``)."""
    return _build(docs, "val")


@yaml_function
def process_docs_test(docs: Any) -> Any:
    """The paper's 80% test rows (``splits.test_indices``)."""
    return _build(docs, "test")


SHUFFLE_SEED = 0


def derangement(n: int, seed: int = SHUFFLE_SEED) -> list[int]:
    """A seeded permutation of ``range(n)`` with no fixed point (Sattolo's algorithm: one n-cycle); n >= 2."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 rows, got {n}")
    order = list(range(n))
    rng = random.Random(f"adaptvis-shuffled-images:{seed}")
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return order


def _shuffle_images(loaded: LoadedRows, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give row i the image of row ``derangement(n)[i]`` of the same (full) subset, in ``shown_image``."""
    subset = loaded.descriptor.subset
    if len(loaded.rows) < 2:
        raise DataSetupError(
            f"{subset}: the image-shuffle control needs at least 2 rows, {loaded.origin} has {len(loaded.rows)}. "
            f"{doctor_hint(subset)}"
        )
    source = derangement(len(loaded.rows))
    shuffled = []
    for row in rows:
        donor = loaded.rows[source[row[ROW_COLUMN]]]
        shuffled.append({**row, SHOWN_IMAGE_COLUMN: str(image_relpath(subset, donor))})
    return shuffled


@yaml_function
def process_docs_shuffled_images(docs: Any) -> Any:
    """All rows, each shown another row's image (seeded derangement): the image-shuffle control."""

    def build() -> Any:
        descriptor = _whatsup_descriptor(docs)
        loaded = load_rows(descriptor)
        return rows_to_dataset(loaded, _shuffle_images(loaded, loaded.rows))

    return docs_or_deferred_error(build)


@yaml_function
def process_docs_two_options(docs: Any) -> Any:
    """All rows with the two-option prompt (Controlled_A/B)."""
    return _build(docs, "full", "two_options")


@yaml_function
def process_docs_six_options(docs: Any) -> Any:
    """All rows with the six-option prompt (COCO_one_obj/COCO_two_obj)."""
    return _build(docs, "full", "six_options")


@yaml_function
def process_docs_reversed(docs: Any) -> Any:
    """All rows with the two entities swapped and the converse gold (two-object subsets)."""
    return _build(docs, "full", "reversed")


def _apply_variant(loaded: LoadedRows, rows: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    subset = loaded.descriptor.subset
    transforms: dict[str, tuple[tuple[str, ...], Callable[[str, dict[str, Any]], tuple[str, str]]]] = {
        "two_options": (tuple(TWO_OPTIONS), _two_options),
        "six_options": (tuple(SIX_OPTIONS), _six_options),
        "reversed": (TWO_OBJECT_SUBSETS, _reversed),
    }
    allowed, transform = transforms[variant]
    if subset not in allowed:
        raise DataSetupError(
            f"the {variant} variant is defined for {', '.join(allowed)}, not {subset}. {doctor_hint()}"
        )
    out: list[dict[str, Any]] = []
    problems: list[tuple[int, str]] = []
    for row in rows:
        try:
            question, gold = transform(subset, row)
        except ValueError as err:
            problems.append((row[ROW_COLUMN], f"cannot build the {variant} prompt: question {err}"))
            continue
        out.append(
            {
                **row,
                "question": question,
                "answer": [gold, *row["answer"][1:]],
                "published_question": row["question"],
                "published_answer": row["answer"],
            }
        )
    if problems:
        raise_row_problems(loaded, problems)
    return out


def _two_options(subset: str, row: Mapping[str, Any]) -> tuple[str, str]:
    gold = row["answer"][0]
    pair = TWO_OPTIONS[subset].get(gold.strip().lower())
    if pair is None:
        raise ValueError(f"has gold {gold!r}, which has no two-option pair in {subset}")
    return prompts.replace_options(row["question"], pair), gold


def _six_options(subset: str, row: Mapping[str, Any]) -> tuple[str, str]:
    return prompts.replace_options(row["question"], SIX_OPTIONS[subset]), row["answer"][0]


def _reversed(subset: str, row: Mapping[str, Any]) -> tuple[str, str]:
    return prompts.reverse_entities(row["question"]), prompts.converse_relation(row["answer"][0])


# ----------------------------------------------------------------------------------------------
# doc_to_* and scoring
# ----------------------------------------------------------------------------------------------


def gold_answer(doc: Mapping[str, Any]) -> str:
    """The gold relation word as published (``Left``, ``On``, ...)."""
    return doc["answer"][0].strip()


@yaml_function
def doc_to_visual(doc: Mapping[str, Any]) -> list[Any]:
    """``[PIL.Image]`` in RGB from ``ADAPTVIS_IMAGE_ROOT``; ImageLoadError naming the file if it is unusable."""
    raise_if_deferred(doc)
    subset = doc[SUBSET_COLUMN]
    path = resolve_image_path(subset, doc)
    return [open_rgb(path, what=f"image of {subset} row {doc[ROW_COLUMN]}")]


@yaml_function
def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    """The prompt: ``bare`` (question + option instruction) or ``llava15_paper`` (the paper's exact prompt).

    ``bare`` also honours optional ``pre_prompt``/``post_prompt`` kwargs (lmms-eval convention; empty
    by default). ``llava15_paper`` returns a templated published question byte for byte and wraps a
    bare one as ``<image>\\nUSER: {bare}\\nASSISTANT:``.
    """
    raise_if_deferred(doc)
    question = doc["question"]
    if prompts.prompt_format(lmms_eval_specific_kwargs) == "llava15_paper":
        return question if prompts.is_templated(question) else prompts.format_llava15_prompt(question.strip())
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{prompts.split_llava15_prompt(question)}{kwargs.get('post_prompt', '')}"


@yaml_function
def doc_to_target(doc: Mapping[str, Any]) -> str:
    """The gold answer word as published."""
    raise_if_deferred(doc)
    return gold_answer(doc)


@yaml_function
def process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, Any]:
    """Per-doc metric values: substring ``accuracy``, ``strict_accuracy``, ``accuracy_<gold>``, and for
    Controlled_A/B the records that ``pair_accuracy``/``set_accuracy`` aggregate."""
    raise_if_deferred(doc)
    generation = results[0] if results and isinstance(results[0], str) else ""
    gold = gold_answer(doc)
    correct = scoring.substring_correct(generation, gold)
    strict = scoring.strict_correct(generation, gold, prompts.option_words(doc["question"]))
    values: dict[str, Any] = {
        "accuracy": float(correct),
        "strict_accuracy": float(strict),
        f"accuracy_{gold.lower()}": float(correct),
    }
    if doc[SUBSET_COLUMN] in scoring.CONTROLLED_RELATIONS:
        record = {
            "row": int(doc[ROW_COLUMN]),
            "image_path": doc["image_path"],
            "subset": doc[SUBSET_COLUMN],
            "correct": correct,
        }
        values["pair_accuracy"] = record
        values["set_accuracy"] = dict(record)
    return values


def _pair_set(items: list[Mapping[str, Any]]) -> scoring.PairSetResult:
    subsets = {item["subset"] for item in items}
    if len(subsets) > 1:
        raise ValueError(f"pair/set accuracy mixes subsets {sorted(subsets)}")
    subset = subsets.pop() if subsets else "Controlled_A"
    return scoring.pair_set_accuracy(((item["row"], item["image_path"], item["correct"]) for item in items), subset)


@yaml_function
def aggregate_pair_accuracy(items: list[Mapping[str, Any]]) -> float:
    """Controlled pair accuracy over the evaluated docs (fraction; see ``scoring.pair_set_accuracy``)."""
    return _pair_set(items).pair_accuracy


@yaml_function
def aggregate_set_accuracy(items: list[Mapping[str, Any]]) -> float:
    """Controlled set accuracy over the evaluated docs (fraction; see ``scoring.pair_set_accuracy``)."""
    return _pair_set(items).set_accuracy
