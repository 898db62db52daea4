"""lmms-eval glue for VSR zero-shot (``yaml_tasks/vsr/``).

Scoring follows the reference (``model_zoo/llava15.py`` ``get_judge_scores_vsr_batched``): label 1
is correct iff the generation contains ``Yes``, label 0 iff it contains ``No`` (case-sensitive).
Reported: ``accuracy`` = (TP+TN)/N, ``f1`` = positive-class F1 = 2TP/(2TP+FP+FN), ``paper_f1`` =
harmonic mean of TP/(TP+FN) and TN/(TN+FP) (what the paper's Table 2 calls F1), and our
``strict_accuracy`` (first yes/no word, any case). 0/0 ratios are 0.0.

The reference resizes every VSR image to 2300x4096 before the processor; ``vsr_zeroshot`` does not,
``vsr_zeroshot_reference_resize`` does (:func:`doc_to_visual_reference_resize`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptvis_tasks import prompts, scoring
from adaptvis_tasks.data import (
    ROW_COLUMN,
    VSR_SUBSET,
    DataSetupError,
    SourceDescriptor,
    docs_or_deferred_error,
    load_rows,
    raise_if_deferred,
    resolve_image_path,
    rows_to_dataset,
)
from adaptvis_tasks.images import open_rgb
from adaptvis_tasks.splits import Split, split_indices
from adaptvis_tasks.task_functions import yaml_function
from adaptvis_tasks.whatsup import with_split_column

#: The size the reference forces every VSR image to (PIL ``resize((width, height))``).
REFERENCE_RESIZE = (2300, 4096)


def _build(docs: Any, split: Split) -> Any:
    def build() -> Any:
        descriptor = SourceDescriptor.from_docs(docs)
        if descriptor.subset != VSR_SUBSET:
            raise DataSetupError(
                f"VSR task got the source descriptor of {descriptor.subset!r}; expected {VSR_SUBSET!r}."
            )
        loaded = load_rows(descriptor)
        rows = [loaded.rows[index] for index in split_indices(len(loaded.rows), split)]
        return rows_to_dataset(loaded, with_split_column(rows, split))

    return docs_or_deferred_error(build)


@yaml_function
def process_docs(docs: Any) -> Any:
    """All VSR zero-shot test rows (plus ``row`` and ``subset``)."""
    return _build(docs, "full")


@yaml_function
def process_docs_val(docs: Any) -> Any:
    """The 20% validation rows (same rule as WhatsUp, N = 1222 in the published split)."""
    return _build(docs, "val")


@yaml_function
def process_docs_test(docs: Any) -> Any:
    """The 80% test rows."""
    return _build(docs, "test")


def _image(doc: Mapping[str, Any]) -> Any:
    path = resolve_image_path(VSR_SUBSET, doc)
    return open_rgb(path, what=f"image of {VSR_SUBSET} row {doc[ROW_COLUMN]}")


@yaml_function
def doc_to_visual(doc: Mapping[str, Any]) -> list[Any]:
    """``[PIL.Image]`` in RGB, original size."""
    raise_if_deferred(doc)
    return [_image(doc)]


@yaml_function
def doc_to_visual_reference_resize(doc: Mapping[str, Any]) -> list[Any]:
    """``[PIL.Image]`` in RGB resized to 2300x4096 like the reference loader (a quirk, kept only here)."""
    raise_if_deferred(doc)
    return [_image(doc).resize(REFERENCE_RESIZE)]


@yaml_function
def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    """``bare``: instruction + caption; ``llava15_paper``: ``User: <image>\\n {bare} Assistant:`` (reference bytes)."""
    raise_if_deferred(doc)
    bare = prompts.vsr_bare_prompt(doc["caption"])
    if prompts.prompt_format(lmms_eval_specific_kwargs) == "llava15_paper":
        return prompts.format_vsr_llava15_prompt(bare)
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{bare}{kwargs.get('post_prompt', '')}"


@yaml_function
def doc_to_target(doc: Mapping[str, Any]) -> str:
    """``Yes`` for label 1, ``No`` for label 0."""
    raise_if_deferred(doc)
    return "Yes" if int(doc["label"]) == 1 else "No"


@yaml_function
def process_results(doc: Mapping[str, Any], results: list[str]) -> dict[str, Any]:
    """Per-doc values: reference ``accuracy``, ``strict_accuracy``, and the records the F1s aggregate."""
    raise_if_deferred(doc)
    generation = results[0] if results and isinstance(results[0], str) else ""
    label = int(doc["label"])
    correct = scoring.vsr_reference_correct(generation, label)
    record = {"row": int(doc[ROW_COLUMN]), "label": label, "correct": correct}
    return {
        "accuracy": float(correct),
        "strict_accuracy": float(scoring.vsr_strict_correct(generation, label)),
        "f1": record,
        "paper_f1": dict(record),
    }


def _confusion(items: list[Mapping[str, Any]]) -> scoring.Confusion:
    return scoring.vsr_confusion((item["label"], item["correct"]) for item in items)


@yaml_function
def aggregate_f1(items: list[Mapping[str, Any]]) -> float:
    """Positive-class F1 over the evaluated docs."""
    return _confusion(items).f1


@yaml_function
def aggregate_paper_f1(items: list[Mapping[str, Any]]) -> float:
    """The paper's F1 (harmonic mean of TPR and TNR) over the evaluated docs."""
    return _confusion(items).paper_f1
