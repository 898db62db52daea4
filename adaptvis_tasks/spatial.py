"""lmms-eval's own spatial tasks, layered for tuning: a catalogue, 20%/80% splits, local mirrors.

* :data:`SPATIAL_TASKS` lists the lmms-eval 0.7.3 spatial tasks this suite supports (one image per
  question, ``generate_until``), with the columns that identify a document, the task's category
  field and its headline metric. The tasks themselves are lmms-eval's, unchanged.
* ``<task>_val`` / ``<task>_test`` (``yaml_tasks/spatial/``) are :class:`LayeredTask` objects: they
  load lmms-eval's own YAML (and through it its ``utils.py``) at run time, rename the task and
  wrap its ``process_docs`` with :func:`split_indices`, a deterministic 20%/80% split.
* :func:`write_mirror` saves a local copy of a task's dataset where the lmms-eval patch
  ``model_wrappers.lmms_plugin.dataset_mirror`` (``ADAPTVIS_LMMS_DATA_DIR``) finds it, for clusters
  without internet (docs/guides/TASKS.md, "Local mirrors").

The split: every document gets the key ``sha256("adaptvis-spatial-v1" NUL task NUL key)`` where the
key is the JSON of its identifying columns; within each category (the task's category field, or
one stratum when it has none) the documents are ordered by that key and the first
``floor(n / 5 + 1/2)`` form ``_val``, the rest ``_test``. The result depends only on the documents'
identifying values, never on their order, the machine or Python's hash seed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from adaptvis_tasks.task_functions import yaml_function
from model_wrappers.lmms_plugin.dataset_mirror import MIRROR_ENV, mirror_folder

SPLIT_COLUMN = "suite_split"
"""The column the split adds (the same name as the WhatsUp/VSR tasks' ``whatsup.SPLIT_COLUMN``)."""

SPLIT_SALT = "adaptvis-spatial-v1"
VALIDATION_FRACTION = Fraction(1, 5)
SpatialSplit = Literal["val", "test"]


class SpatialTaskError(RuntimeError):
    """A layered task or a mirror cannot be set up; the message names the task, column or folder."""


@dataclass(frozen=True)
class SpatialTask:
    """One lmms-eval spatial task the suite supports.

    ``base_yaml`` is relative to lmms-eval's ``tasks/`` folder. ``key_columns`` identify a document
    (their JSON is hashed for the split); ``unit`` maps a document to the unit kept together in
    one split (MMVP's image pairs); ``category`` is the field the split is stratified by and that
    ``adaptvis table --per-category`` / ``adaptvis curves`` group by.
    """

    name: str
    base_yaml: str
    headline_metric: str
    key_columns: tuple[str, ...]
    category: str | None = None
    unit: Callable[[dict[str, Any]], Any] | None = None
    percent: bool = False
    """The task's aggregations report percentages (0-100) rather than fractions (V*)."""


def _mmvp_pair(doc: dict[str, Any]) -> int:
    """MMVP's pair of a document: ``(Index - 1) // 2`` (lmms-eval's ``mmvp_process_results`` rule)."""
    return (int(doc["Index"]) - 1) // 2


SPATIAL_TASKS: dict[str, SpatialTask] = {
    spec.name: spec
    for spec in (
        SpatialTask("cv_bench", "cv_bench/cv_bench.yaml", "cv_bench_acc", ("type", "idx"), "task"),
        SpatialTask("cv_bench_2d", "cv_bench/cv_bench_2d.yaml", "cv_bench_acc", ("type", "idx"), "task"),
        SpatialTask("cv_bench_3d", "cv_bench/cv_bench_3d.yaml", "cv_bench_acc", ("type", "idx"), "task"),
        SpatialTask("blink_spatial_relation", "blink/blink_spatial_relation.yaml", "blink_acc", ("idx",)),
        SpatialTask("blink_relative_depth", "blink/blink_relative_depth.yaml", "blink_acc", ("idx",)),
        SpatialTask("embspatial", "embspatial/embspatial.yaml", "embspatial_acc", ("question_id",), "relation"),
        SpatialTask("3dsrbench", "3dsrbench/3dsrbench.yaml", "vanilla_accuracy", ("index",), "category"),
        SpatialTask("mmvp", "mmvp/mmvp.yaml", "mmvp_accuracy", ("Index",), unit=_mmvp_pair),
        SpatialTask(
            "vstar_bench",
            "vstar_bench/vstar_bench.yaml",
            "vstar_overall_acc",
            ("question_id",),
            "category",
            percent=True,
        ),
    )
}
"""Supported lmms-eval spatial tasks, by lmms-eval task name (docs/guides/TASKS.md lists all of them)."""


def spatial_task(name: str) -> SpatialTask:
    """The catalogue entry of ``name``; a clear error for anything else."""
    try:
        return SPATIAL_TASKS[name]
    except KeyError:
        raise SpatialTaskError(
            f"{name!r} is not one of the supported lmms-eval spatial tasks ({', '.join(SPATIAL_TASKS)})"
        ) from None


def base_task_of(task_name: str) -> str | None:
    """The supported lmms-eval task behind ``task_name`` (itself, or its ``_val``/``_test`` layer)."""
    for suffix in ("_val", "_test", ""):
        base = task_name.removesuffix(suffix) if suffix else task_name
        if (not suffix or task_name.endswith(suffix)) and base in SPATIAL_TASKS:
            return base
    return None


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------


def document_key(task: str, identity: object) -> str:
    """The split key of one document: hex sha256 over the salt, the task and the identity's JSON."""
    text = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{SPLIT_SALT}\0{task}\0{text}".encode()).hexdigest()


def validation_count(n: int) -> int:
    """How many of ``n`` units of a stratum go to ``_val``: ``floor(n / 5 + 1/2)``."""
    return int(VALIDATION_FRACTION * n + Fraction(1, 2))


def split_indices(task: str, identities: Sequence[object], strata: Sequence[object], split: SpatialSplit) -> list[int]:
    """Sorted positions of the ``split`` documents, given each document's identity and stratum.

    Documents with the same identity are one unit (kept in the same split). Raises for an
    unknown split name or mismatched lengths.
    """
    if split not in ("val", "test"):
        raise SpatialTaskError(f"split={split!r}: expected 'val' or 'test'")
    if len(identities) != len(strata):
        raise SpatialTaskError(f"{task}: {len(identities)} identities but {len(strata)} strata")
    units: dict[object, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for position, (identity, stratum) in enumerate(zip(identities, strata, strict=True)):
        stratum_key = json.dumps(stratum, sort_keys=True, default=str)
        units[stratum_key][document_key(task, identity)].append(position)
    chosen: list[int] = []
    for by_key in units.values():
        ordered = sorted(by_key)
        cut = validation_count(len(ordered))
        keys = ordered[:cut] if split == "val" else ordered[cut:]
        for key in keys:
            chosen.extend(by_key[key])
    return sorted(chosen)


def _column(dataset: Any, column: str, task: str) -> list[Any]:
    if column not in dataset.column_names:
        raise SpatialTaskError(
            f"{task}: the dataset has no column {column!r} (columns: {', '.join(dataset.column_names)}); the split "
            f"needs it -- the dataset's schema changed, or a local mirror ({MIRROR_ENV}) is not in the real schema"
        )
    return list(dataset[column])


def select_split(dataset: Any, spec: SpatialTask, split: SpatialSplit) -> Any:
    """The ``split`` rows of a ``datasets.Dataset`` of ``spec``'s task (images are not decoded)."""
    columns = {name: _column(dataset, name, spec.name) for name in spec.key_columns}
    strata = _column(dataset, spec.category, spec.name) if spec.category else [None] * len(dataset)
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    if spec.unit is not None:
        identities: list[object] = [spec.unit(row) for row in rows]
    else:
        identities = [[row[name] for name in spec.key_columns] for row in rows]
        seen: dict[str, int] = {}
        for position, identity in enumerate(identities):
            key = json.dumps(identity, default=str)
            if key in seen:
                raise SpatialTaskError(
                    f"{spec.name}: rows {seen[key]} and {position} have the same {'/'.join(spec.key_columns)} "
                    f"{identity!r}; the split needs a unique document key"
                )
            seen[key] = position
    selected = dataset.select(split_indices(spec.name, identities, strata, split))
    if SPLIT_COLUMN in selected.column_names:
        raise SpatialTaskError(f"{spec.name}: the dataset already has a column {SPLIT_COLUMN!r}, which the split adds")
    # The suite's split name, recorded in traces so that `adaptvis tune` knows these are validation docs.
    return selected.add_column(SPLIT_COLUMN, [split] * len(selected))


# --------------------------------------------------------------------------------------------
# Layered tasks
# --------------------------------------------------------------------------------------------


def lmms_eval_tasks_dir() -> Path:
    """lmms-eval's installed ``tasks/`` folder."""
    import lmms_eval.tasks

    return Path(lmms_eval.tasks.__file__).resolve().parent


def base_config(spec: SpatialTask) -> dict[str, Any]:
    """lmms-eval's own config of ``spec`` (its YAML with includes and ``!function`` resolved)."""
    from lmms_eval import utils

    path = lmms_eval_tasks_dir() / spec.base_yaml
    if not path.is_file():
        raise SpatialTaskError(
            f"{spec.name}: lmms-eval's task file {path} does not exist; this suite layers over lmms-eval 0.7.3's "
            "tasks -- install the lmms-eval version in constraints.txt"
        )
    config = utils.load_yaml_config(str(path), mode="full")
    if config.get("task") != spec.name:
        raise SpatialTaskError(f"{path} defines task {config.get('task')!r}, expected {spec.name!r}")
    return config


def _split_process_docs(spec: SpatialTask, split: SpatialSplit, inner: Callable[[Any], Any] | None):
    def process_docs(dataset: Any) -> Any:
        docs = inner(dataset) if inner is not None else dataset
        return select_split(docs, spec, split)

    process_docs.__qualname__ = f"{spec.name}_{split}_process_docs"
    return yaml_function(process_docs)


def layered_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config of a ``_val``/``_test`` task: lmms-eval's base config, renamed, ``process_docs`` wrapped."""
    for field in ("task", "base_task", "split"):
        if field not in config:
            raise SpatialTaskError(f"layered task config {config.get('task', '?')!r} lacks {field!r}")
    spec = spatial_task(config["base_task"])
    split = config["split"]
    if split not in ("val", "test"):
        raise SpatialTaskError(f"{config['task']}: split={split!r}: expected val or test")
    merged = base_config(spec)
    merged["task"] = config["task"]
    merged["process_docs"] = _split_process_docs(spec, split, merged.get("process_docs"))
    merged.pop("tag", None)  # lmms-eval's tags would list the layer next to the base task
    return merged


def make_layered_task_class():
    """``LayeredTask``: lmms-eval's ``ConfigurableTask`` built from :func:`layered_config`."""
    from lmms_eval.api.task import ConfigurableTask

    class _PrintsAsImportPath(type(ConfigurableTask)):
        # lmms-eval writes str(class) into results JSON; keep it free of memory addresses.
        def __repr__(cls) -> str:
            return "adaptvis_tasks.spatial.LayeredTask"

        __str__ = __repr__

    class LayeredTask(ConfigurableTask, metaclass=_PrintsAsImportPath):
        """A ``_val``/``_test`` task over one of lmms-eval's own task definitions."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config=layered_config(dict(config)))

    return LayeredTask


def __getattr__(name: str) -> Any:
    # ``class: !function adaptvis_tasks.spatial.LayeredTask`` in the YAML; built on first use so that
    # importing this module does not import lmms-eval.
    if name == "LayeredTask":
        cls = make_layered_task_class()
        globals()["LayeredTask"] = cls
        return cls
    raise AttributeError(name)


# --------------------------------------------------------------------------------------------
# Local mirrors
# --------------------------------------------------------------------------------------------


def write_mirror(root: str | os.PathLike[str], dataset_path: str, dataset_name: str | None, dataset_dict: Any) -> Path:
    """Save a ``datasets.DatasetDict`` as the local copy of ``dataset_path``/``dataset_name``."""
    folder = mirror_folder(root, dataset_path, dataset_name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    dataset_dict.save_to_disk(str(folder))
    return folder


class TaskScoring:
    """A task's own ``process_results`` and per-metric aggregations, from lmms-eval's config.

    Shaped like this suite's scoring modules (``process_results``, ``aggregate_<metric>``), so the
    analysis tools score lmms-eval's tasks with lmms-eval's functions. ``mean`` aggregations have
    no ``aggregate_<metric>`` attribute (the tools take the mean).
    """

    def __init__(self, task_name: str) -> None:
        base = base_task_of(task_name)
        if base is None:
            raise SpatialTaskError(f"{task_name!r} is not a supported lmms-eval spatial task or one of its layers")
        config = base_config(SPATIAL_TASKS[base])
        if config.get("filter_list"):
            raise SpatialTaskError(f"{task_name}: lmms-eval filters answers before scoring; not supported offline")
        self.task = task_name
        self.headline_metric = SPATIAL_TASKS[base].headline_metric
        self._process_results = config["process_results"]
        self.metrics = [entry["metric"] for entry in config.get("metric_list", [])]
        for entry in config.get("metric_list", []):
            if callable(entry.get("aggregation")):
                setattr(self, f"aggregate_{entry['metric']}", entry["aggregation"])

    def category(self, doc: dict[str, Any]) -> str:
        """The document's value of the task's category field (``all`` for tasks without one)."""
        field = SPATIAL_TASKS[base_task_of(self.task)].category
        return "all" if field is None else str(doc.get(field, "?"))

    def correct(self, doc: dict[str, Any], answer: str) -> float:
        """0/1 correctness of ``answer`` under the headline metric (its record's ``is_correct``/``score``)."""
        value = self._process_results(doc, [answer])[self.headline_metric]
        if isinstance(value, dict):
            value = value.get("is_correct", value.get("score", value.get("correct")))
        if isinstance(value, (bool, int, float)):
            return float(value)
        raise SpatialTaskError(f"{self.task}: {self.headline_metric} gives no per-document correctness ({value!r})")

    def process_results(self, doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
        """The task's ``process_results``, keeping the metrics its ``metric_list`` reports (as lmms-eval)."""
        values = self._process_results(doc, results)
        return {metric: values[metric] for metric in self.metrics if metric in values}


def percent_factor(task_name: str) -> float:
    """What turns ``task_name``'s metric values into percentages: 100 for fractions, 1 for V*'s percentages."""
    base = base_task_of(task_name)
    return 1.0 if base is not None and SPATIAL_TASKS[base].percent else 100.0


def headline_metrics(task_names: Iterable[str]) -> dict[str, str]:
    """task name -> its headline metric, for the supported spatial tasks among ``task_names``."""
    out = {}
    for name in task_names:
        base = base_task_of(name)
        if base is not None:
            out[name] = SPATIAL_TASKS[base].headline_metric
    return out
