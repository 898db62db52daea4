"""Where the benchmark rows and images come from, and how bad data is reported.

Rows come either from the Hugging Face hub (``AdaptVis/all_datasets``, ``cambridgeltl/vsr_zeroshot``)
or, when ``ADAPTVIS_DATA_DIR`` is set, from a local mirror ``<dir>/<config>/<split>.jsonl`` (or
``.parquet``) in the same schema. Images are always files under ``ADAPTVIS_IMAGE_ROOT``.

*Packaged* configs (the synthetic WhatsUp-style benchmark, ``Synthetic_A``/``Synthetic_B``) ship
inside this package: their descriptor names a folder under ``adaptvis_tasks/packaged_data/``
(``packaged_data``), which holds ``<config>/<split>.jsonl`` and the images (``images/``). They
need no environment variable, and ``ADAPTVIS_DATA_DIR``/``ADAPTVIS_IMAGE_ROOT`` do not apply to them.

lmms-eval YAML tasks cannot switch their data source on an environment variable, so every task
loads a one-row *source descriptor* (``yaml_tasks/**/sources/<name>.json``) and its ``process_docs``
turns that row into the real rows with :func:`load_rows` (see ``docs/guides/TASKS.md``).

Every data problem raises :class:`DataSetupError` (images: :class:`ImageLoadError`) with a message
naming the file or hub dataset, the row, the environment variable involved, what to do, and the
``adaptvis-doctor`` command. Rows are validated when loaded and never dropped silently.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

DATA_DIR_ENV = "ADAPTVIS_DATA_DIR"
IMAGE_ROOT_ENV = "ADAPTVIS_IMAGE_ROOT"
DOCTOR_COMMAND = "adaptvis-doctor"

WHATSUP_HUB_DATASET = "AdaptVis/all_datasets"
VSR_HUB_DATASET = "cambridgeltl/vsr_zeroshot"
VSR_SUBSET = "vsr_zeroshot"

#: The six WhatsUp configurations in the order of the paper's Table 1.
WHATSUP_SUBSETS: tuple[str, ...] = (
    "Controlled_A",
    "Controlled_B",
    "COCO_one_obj",
    "COCO_two_obj",
    "VG_one_obj",
    "VG_two_obj",
)
ALL_SUBSETS: tuple[str, ...] = (*WHATSUP_SUBSETS, VSR_SUBSET)

#: Synthetic WhatsUp-style subsets shipped with the package (``adaptvis_tasks.whatsup_synthetic``).
SYNTHETIC_SUBSETS: tuple[str, ...] = ("Synthetic_A", "Synthetic_B")
#: Subsets whose rows name images as ``data/<folder>/<obj1>_<relation>_<obj2>.jpeg`` (pair/set accuracy).
CONTROLLED_STYLE_SUBSETS: tuple[str, ...] = ("Controlled_A", "Controlled_B", *SYNTHETIC_SUBSETS)
PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "packaged_data"

#: Every gold relation word that occurs in WhatsUp (lowercased); one ``accuracy_<word>`` metric each.
RELATIONS: tuple[str, ...] = ("left", "right", "on", "under", "front", "behind", "top", "bottom", "above", "below")

#: Image folders under ADAPTVIS_IMAGE_ROOT and where their files come from.
IMAGE_FOLDERS: dict[str, str] = {
    "controlled_images": (
        "WhatsUp Controlled_A images: the archive controlled_images.tar.gz (see the whatsup_vlms and AdaptVis "
        "READMEs; AdaptVis `main_aro.py --download` fetches Google Drive file 19KGYVQjrV3syb00GgcavB2nZTW5NXX0H "
        "with gdown); extract so that <image root>/controlled_images/<name>.jpeg exists"
    ),
    "controlled_clevr": (
        "WhatsUp Controlled_B images: the archive controlled_clevr.tar.gz (see the whatsup_vlms and AdaptVis "
        "READMEs; Google Drive file 13jdBpg8t3NqW3jrL6FK8HO93vwsUjDxG); "
        "extract so that <image root>/controlled_clevr/<name>.jpeg exists"
    ),
    "val2017": (
        "COCO 2017 validation images (WhatsUp COCO_one_obj/COCO_two_obj, part of VSR): "
        "http://images.cocodataset.org/zips/val2017.zip, unzip into <image root>/val2017/"
    ),
    "train2017": (
        "COCO 2017 train images (most of VSR): http://images.cocodataset.org/zips/train2017.zip, "
        "unzip into <image root>/train2017/"
    ),
    "vg_images": (
        "WhatsUp Visual Genome images: the archive vg_images.tar.gz (see the whatsup_vlms and AdaptVis READMEs; "
        "Google Drive file 1idW7Buoz7fQm4-670n-oERw9U-2JLJvE); extract so that <image root>/vg_images/<id>.jpg exists"
    ),
}

# Columns this suite adds to every doc (reserved: a source column of the same name is replaced).
ROW_COLUMN = "row"
SUBSET_COLUMN = "subset"
SHOWN_IMAGE_COLUMN = "shown_image"
_DEFERRED_COLUMN = "adaptvis_setup_error"
_DEFERRED_TYPE_COLUMN = "adaptvis_setup_error_type"

_MAX_REPORTED_PROBLEMS = 5


class DataSetupError(RuntimeError):
    """The data a task needs is missing or malformed; the message says where and what to do."""


class ImageLoadError(DataSetupError):
    """An image file is missing or cannot be decoded."""


def doctor_hint(subset: str | None = None) -> str:
    """The sentence every error ends with: how to check the whole setup at once."""
    configs = f" --configs {subset}" if subset else ""
    return f"Run `{DOCTOR_COMMAND}{configs}` to check the whole data setup."


_DOCTOR_HINT = re.compile(rf"\s*Run `{re.escape(DOCTOR_COMMAND)}[^`]*` to check the whole data setup\.")


def without_doctor_hint(message: str) -> str:
    """``message`` without the :func:`doctor_hint` sentence (the doctor itself must not tell the user to run it)."""
    return _DOCTOR_HINT.sub("", message).strip()


# --------------------------------------------------------------------------------------------
# Source descriptors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDescriptor:
    """One benchmark configuration: hub location (or packaged folder), local-mirror folder name, and its size.

    ``packaged_data`` names a folder under ``adaptvis_tasks/packaged_data/`` for data that ships
    with the package; such a descriptor needs no ``hub_dataset``.
    """

    subset: str
    hub_dataset: str
    hub_config: str | None
    split: str
    paper_rows: int
    packaged_data: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], origin: str = "source descriptor") -> SourceDescriptor:
        """Build from a descriptor row; raises DataSetupError naming the missing field."""
        source = () if row.get("packaged_data") else ("hub_dataset",)
        missing = [key for key in ("subset", *source, "split", "paper_rows") if row.get(key) in (None, "")]
        if missing:
            raise DataSetupError(
                f"{origin} lacks {', '.join(missing)}; descriptors are the one-row JSON files under "
                f"yaml_tasks/*/sources/ that each task YAML loads (dataset_kwargs.data_files). Restore the file "
                f"from the repository."
            )
        return cls(
            subset=str(row["subset"]),
            hub_dataset=str(row.get("hub_dataset") or ""),
            hub_config=(str(row["hub_config"]) if row.get("hub_config") else None),
            split=str(row["split"]),
            paper_rows=int(row["paper_rows"]),
            packaged_data=(str(row["packaged_data"]) if row.get("packaged_data") else None),
        )

    @classmethod
    def from_docs(cls, docs: Any) -> SourceDescriptor:
        """Read the descriptor from what lmms-eval hands ``process_docs`` (a one-row dataset)."""
        if len(docs) != 1:
            raise DataSetupError(
                f"expected the one-row source descriptor as the task's dataset, got {len(docs)} rows; "
                "the task YAML must load yaml_tasks/*/sources/<name>.json via `dataset_path: json`."
            )
        return cls.from_row(docs[0])

    @property
    def hub_label(self) -> str:
        """Human-readable hub location (or packaged folder), for messages."""
        if self.packaged_data:
            return f"packaged data {self.packaged_folder}, split {self.split}"
        config = f", config {self.hub_config}" if self.hub_config else ""
        return f"hub dataset {self.hub_dataset}{config}, split {self.split}"

    @property
    def packaged_folder(self) -> Path:
        """The packaged data folder (``adaptvis_tasks/packaged_data/<packaged_data>``); ValueError if not packaged."""
        if not self.packaged_data:
            raise ValueError(f"{self.subset} is not packaged data")
        return PACKAGED_DATA_DIR / self.packaged_data


def _sources_dirs() -> list[Path]:
    """Folders holding the committed descriptor files."""
    from yaml_tasks import tasks_dir

    return sorted(Path(tasks_dir()).glob("*/sources"))


@cache
def packaged_image_roots() -> dict[str, Path]:
    """Image root of every packaged subset (``<packaged folder>/images``), keyed by subset."""
    return {
        name: descriptor.packaged_folder / "images"
        for name, descriptor in load_descriptors().items()
        if descriptor.packaged_data
    }


def load_descriptors() -> dict[str, SourceDescriptor]:
    """All committed source descriptors keyed by subset, in paper order (WhatsUp, then VSR)."""
    found: dict[str, SourceDescriptor] = {}
    for folder in _sources_dirs():
        for path in sorted(folder.glob("*.json")):
            with open(path, encoding="utf-8") as handle:
                descriptor = SourceDescriptor.from_row(json.load(handle), origin=str(path))
            found[descriptor.subset] = descriptor
    order = {name: index for index, name in enumerate(ALL_SUBSETS)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


# --------------------------------------------------------------------------------------------
# Loading rows
# --------------------------------------------------------------------------------------------


def data_dir_from_env() -> Path | None:
    """``ADAPTVIS_DATA_DIR`` as a path, or None when unset/empty (then the hub is used)."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def image_root_from_env() -> Path | None:
    """``ADAPTVIS_IMAGE_ROOT`` as a path, or None when unset/empty."""
    value = os.environ.get(IMAGE_ROOT_ENV, "").strip()
    return Path(value).expanduser() if value else None


def local_split_files(data_dir: Path, subset: str, split: str = "test") -> tuple[Path, Path]:
    """The two accepted mirror files of one config: ``<dir>/<subset>/<split>.jsonl`` and ``.parquet``."""
    folder = Path(data_dir) / subset
    return folder / f"{split}.jsonl", folder / f"{split}.parquet"


@dataclass(frozen=True)
class LoadedRows:
    """Validated rows of one config plus where they came from (for messages)."""

    descriptor: SourceDescriptor
    origin: str
    rows: list[dict[str, Any]]
    data_dir: Path | None = None


def load_rows(descriptor: SourceDescriptor, data_dir: Path | str | None = None) -> LoadedRows:
    """All rows of the published split: the local mirror (``data_dir``, else ``ADAPTVIS_DATA_DIR``) or the hub.

    Adds ``row`` (index in the full split) and ``subset``; keeps every published column. Every row
    is validated (:func:`row_problems`); any problem raises one DataSetupError naming the file and
    the first bad row indices.
    """
    directory = Path(data_dir).expanduser() if data_dir is not None else data_dir_from_env()
    if descriptor.packaged_data:
        directory = None
        origin, raw, lines = _read_packaged(descriptor)
    elif directory is not None:
        origin, raw, lines = _read_local(directory, descriptor)
    else:
        origin, raw, lines = _read_hub(descriptor)
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(raw):
        row = dict(record)
        row[ROW_COLUMN] = index
        row[SUBSET_COLUMN] = descriptor.subset
        rows.append(row)
    if not rows:
        raise DataSetupError(
            f"{descriptor.subset}: {origin} has no rows. {_source_fix(descriptor, directory)} "
            f"{doctor_hint(descriptor.subset)}"
        )
    loaded = LoadedRows(descriptor=descriptor, origin=origin, rows=rows, data_dir=directory)
    problems = [(row[ROW_COLUMN], text) for row in rows for text in row_problems(descriptor.subset, row)]
    problems += duplicate_id_problems(rows, lines)
    if problems:
        raise_row_problems(loaded, problems)
    return loaded


ID_COLUMN = "id"
"""The WhatsUp row id; unique in the published data (pair and set accuracy would count a repeated row twice)."""


def duplicate_id_problems(rows: Sequence[Mapping[str, Any]], lines: Sequence[int] | None) -> list[tuple[int, str]]:
    """``(row, text)`` for every row whose ``id`` an earlier row already has, naming both (file lines when known)."""

    def where(index: int) -> str:
        return f"line {lines[index]} (row {index})" if lines is not None else f"row {index}"

    first_seen: dict[str, int] = {}
    problems = []
    for index, row in enumerate(rows):
        if row.get(ID_COLUMN) is None:
            continue
        key = json.dumps(row[ID_COLUMN], sort_keys=True)
        if key in first_seen:
            earlier = first_seen[key]
            same = {k: v for k, v in row.items() if k != ROW_COLUMN} == {
                k: v for k, v in rows[earlier].items() if k != ROW_COLUMN
            }
            problems.append(
                (
                    index,
                    f"id {row[ID_COLUMN]!r} appears twice: {where(earlier)} and {where(index)}, "
                    f"{'same content' if same else 'different content'}; every row must be evaluated once -- "
                    "remove the duplicate",
                )
            )
        else:
            first_seen[key] = index
    return problems


def gold_outside_options(row: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """``(gold, options)`` when a valid WhatsUp row's gold is not among its ``Answer with`` options, else None.

    Such rows are kept (the published data has one, see ``_whatsup_row_problems``); the paper's
    substring ``accuracy`` can still credit them, ``strict_accuracy`` never does.
    """
    from adaptvis_tasks import prompts

    gold = str(row["answer"][0]).strip()
    options = prompts.option_words(row["question"])
    return None if gold.lower() in options else (gold, options)


#: Published rows whose gold is not among their own options, kept as published: (config, question, gold).
PUBLISHED_GOLD_EXCEPTIONS: frozenset[tuple[str, str, str]] = frozenset(
    {
        (
            "VG_two_obj",  # id 56 of AdaptVis/all_datasets (prompts/VG_QA_two_obj_with_answer_six_options.jsonl)
            "<image>\nUSER: Where is the girl in relation to the pillow? "
            "Answer with left, right, front, behind, top, or bottom.\nASSISTANT:",
            "Above",
        )
    }
)


def is_published_gold_exception(subset: str, row: Mapping[str, Any]) -> bool:
    """True for the published row(s) kept although their gold is not among their options."""
    return (subset, str(row.get("question")), str(row["answer"][0]).strip()) in PUBLISHED_GOLD_EXCEPTIONS


def raise_row_problems(loaded: LoadedRows, problems: Sequence[tuple[int, str]]) -> None:
    """Raise one DataSetupError listing the first problems (row index and text) of a config."""
    shown = "; ".join(f"row {row}: {text}" for row, text in problems[:_MAX_REPORTED_PROBLEMS])
    more = f" (and {len(problems) - _MAX_REPORTED_PROBLEMS} more)" if len(problems) > _MAX_REPORTED_PROBLEMS else ""
    raise DataSetupError(
        f"{loaded.descriptor.subset}: {len(problems)} invalid row(s) in {loaded.origin}: {shown}{more}. "
        f"Rows are never skipped: fix or re-create the data. {_source_fix(loaded.descriptor, loaded.data_dir)} "
        f"{doctor_hint(loaded.descriptor.subset)}"
    )


def _source_fix(descriptor: SourceDescriptor, directory: Path | None) -> str:
    if descriptor.packaged_data:
        return (
            f"Data is read from the {descriptor.hub_label}, which ships with adaptvis-eval; reinstall the package "
            f"(or rebuild it with `python -m adaptvis_tasks.whatsup_synthetic {descriptor.packaged_folder}`)."
        )
    if directory is not None:
        jsonl, parquet = local_split_files(directory, descriptor.subset, descriptor.split)
        return (
            f"Data is read from the local mirror {directory} ({DATA_DIR_ENV}; expected {jsonl} or {parquet}); "
            f"unset {DATA_DIR_ENV} to read the {descriptor.hub_label} instead."
        )
    return (
        f"Data is read from the {descriptor.hub_label} because {DATA_DIR_ENV} is unset; to use a local mirror set "
        f"{DATA_DIR_ENV}=<dir> with <dir>/{descriptor.subset}/{descriptor.split}.jsonl (or .parquet)."
    )


def _read_local(directory: Path, descriptor: SourceDescriptor) -> tuple[str, list[dict[str, Any]], list[int] | None]:
    jsonl, parquet = local_split_files(directory, descriptor.subset, descriptor.split)
    present = [path for path in (jsonl, parquet) if path.is_file()]
    if not present:
        if not directory.is_dir():
            where = f"{DATA_DIR_ENV}={directory} does not exist"
        elif not (directory / descriptor.subset).is_dir():
            where = f"{DATA_DIR_ENV}={directory} has no folder {descriptor.subset}/"
        else:
            where = f"{directory / descriptor.subset} has neither {jsonl.name} nor {parquet.name}"
        raise DataSetupError(
            f"{descriptor.subset}: {where}. Expected {jsonl} or {parquet} (the {descriptor.hub_label} in the same "
            f"schema). Mirror that config there, or unset {DATA_DIR_ENV} to read the hub. "
            f"{doctor_hint(descriptor.subset)}"
        )
    if len(present) == 2:
        raise DataSetupError(
            f"{descriptor.subset}: both {jsonl} and {parquet} exist; keep exactly one so it is clear which data "
            f"is evaluated ({DATA_DIR_ENV}={directory}). {doctor_hint(descriptor.subset)}"
        )
    path = present[0]
    if path.suffix == ".jsonl":
        return (str(path), *_read_jsonl(path, descriptor))
    try:
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several unrelated types for broken files
        raise DataSetupError(
            f"{descriptor.subset}: cannot read {path} as parquet ({type(err).__name__}: {err}). Re-create the file "
            f"(set via {DATA_DIR_ENV}={directory}). {doctor_hint(descriptor.subset)}"
        ) from err
    return str(path), records, None


def _read_packaged(descriptor: SourceDescriptor) -> tuple[str, list[dict[str, Any]], list[int] | None]:
    path = descriptor.packaged_folder / descriptor.subset / f"{descriptor.split}.jsonl"
    if not path.is_file():
        raise DataSetupError(
            f"{descriptor.subset}: the packaged file {path} is missing. {_source_fix(descriptor, None)}"
        )
    return (str(path), *_read_jsonl(path, descriptor))


def _read_jsonl(path: Path, descriptor: SourceDescriptor) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of a JSONL file and the line number of each."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                # utf-8-sig on the first line: a byte-order mark (as some editors write) is not data
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataSetupError(
                    f"{descriptor.subset}: {path} line {line_number} (row {len(records)}) is not UTF-8 text ({err}). "
                    f"Save the file as UTF-8, as the published data is ({_read_via(path, descriptor)}). "
                    f"{doctor_hint(descriptor.subset)}"
                ) from err
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataSetupError(
                    f"{descriptor.subset}: {path} line {line_number} (row {len(records)}) is not valid JSON ({err}). "
                    f"Fix the file ({_read_via(path, descriptor)}). {doctor_hint(descriptor.subset)}"
                ) from err
            if not isinstance(record, dict):
                raise DataSetupError(
                    f"{descriptor.subset}: {path} line {line_number} (row {len(records)}) is not a JSON object. "
                    f"Fix the file ({_read_via(path, descriptor)}). {doctor_hint(descriptor.subset)}"
                )
            records.append(record)
            lines.append(line_number)
    return records, lines


def _read_via(path: Path, descriptor: SourceDescriptor) -> str:
    if descriptor.packaged_data:
        return "packaged with adaptvis-eval"
    return f"read via {DATA_DIR_ENV}={path.parent.parent}"


def _read_hub(descriptor: SourceDescriptor) -> tuple[str, list[dict[str, Any]], list[int] | None]:
    import datasets

    try:
        dataset = datasets.load_dataset(descriptor.hub_dataset, descriptor.hub_config, split=descriptor.split)
    except Exception as err:  # network, auth, missing config: all end the same way for the user
        raise DataSetupError(
            f"{descriptor.subset}: could not load the {descriptor.hub_label} ({type(err).__name__}: {err}). "
            f"Without hub access, mirror it locally and set {DATA_DIR_ENV}=<dir> "
            f"(<dir>/{descriptor.subset}/{descriptor.split}.jsonl or .parquet, same columns). "
            f"{doctor_hint(descriptor.subset)}"
        ) from err
    return descriptor.hub_label, dataset.to_list(), None


# --------------------------------------------------------------------------------------------
# Row validation and image references
# --------------------------------------------------------------------------------------------


def row_problems(subset: str, row: Mapping[str, Any]) -> list[str]:
    """Everything wrong with one row (empty when valid). WhatsUp and VSR have different schemas."""
    if subset == VSR_SUBSET:
        return _vsr_row_problems(row)
    return _whatsup_row_problems(subset, row)


def _whatsup_row_problems(subset: str, row: Mapping[str, Any]) -> list[str]:
    from adaptvis_tasks import prompts

    problems: list[str] = []
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        problems.append("'question' is missing or empty")
    else:
        try:
            prompts.split_llava15_prompt(question)
            prompts.option_words(question)
        except ValueError as err:
            problems.append(f"'question' {err}")
    answer = row.get("answer")
    if not isinstance(answer, list) or not answer or not isinstance(answer[0], str) or not answer[0].strip():
        problems.append(f"'answer' must be a non-empty list of strings (got {answer!r})")
    elif answer[0].strip().lower() not in RELATIONS:
        problems.append(f"gold answer {answer[0]!r} is not one of the WhatsUp relations {', '.join(RELATIONS)}")
    elif not problems and (outside := gold_outside_options(row)) and not is_published_gold_exception(subset, row):
        # The published VG_two_obj row 56 (gold 'Above', options ... top, or bottom) is the one exception
        # kept, so that the published data loads; the doctor warns about it (gold_outside_options).
        gold, options = outside
        problems.append(
            f"gold {gold!r} is not among the options its question names ({', '.join(options)}); no answer to "
            "that question can be right -- fix the gold or the question's 'Answer with' clause"
        )
    try:
        image_relpath(subset, row)
    except DataSetupError as err:
        problems.append(str(err))
    return problems


def _vsr_row_problems(row: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    caption = row.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        problems.append("'caption' is missing or empty")
    label = row.get("label")
    if isinstance(label, bool) or label not in (0, 1):
        problems.append(f"'label' must be 0 or 1 (got {label!r})")
    try:
        image_relpath(VSR_SUBSET, row)
    except DataSetupError as err:
        problems.append(str(err))
    return problems


_VSR_LINK = re.compile(r"\.org/(.+)$")


def image_relpath(subset: str, row: Mapping[str, Any]) -> PurePosixPath:
    """The row's image file relative to ``ADAPTVIS_IMAGE_ROOT``, from the id/path form the data uses.

    Controlled: ``image_path`` with a leading ``data/`` stripped (bare relative paths accepted;
    absolute paths are used as they are). COCO: integer ``image_id`` -> ``val2017/<12-digit id>.jpg``.
    VG: string ``image_id`` -> ``vg_images/<id>.jpg``. VSR: the part of ``image_link`` after ``.org/``.
    Raises DataSetupError (without file/row context; callers add it) when the reference is unusable.
    """
    if subset in CONTROLLED_STYLE_SUBSETS:
        value = row.get("image_path")
        if not isinstance(value, str) or not value.strip():
            raise DataSetupError(f"'image_path' is missing or empty (got {value!r})")
        path = PurePosixPath(value.strip().replace("\\", "/"))
        parts = path.parts
        while parts and parts[0] in (".", "data"):
            parts = parts[1:]
        if not parts:
            raise DataSetupError(f"'image_path' {value!r} names no file")
        return PurePosixPath(*parts)
    if subset in ("COCO_one_obj", "COCO_two_obj"):
        value = row.get("image_id")
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
        ):
            raise DataSetupError(f"'image_id' must be an integer COCO id (got {value!r})")
        return PurePosixPath("val2017", f"{int(value):012d}.jpg")
    if subset in ("VG_one_obj", "VG_two_obj"):
        value = row.get("image_id")
        if isinstance(value, bool) or value is None or not str(value).strip():
            raise DataSetupError(f"'image_id' is missing or empty (got {value!r})")
        return PurePosixPath("vg_images", f"{str(value).strip()}.jpg")
    if subset == VSR_SUBSET:
        value = row.get("image_link")
        match = _VSR_LINK.search(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise DataSetupError(
                f"'image_link' must be a COCO URL like http://images.cocodataset.org/train2017/<file> (got {value!r})"
            )
        return PurePosixPath(match.group(1))
    raise DataSetupError(f"unknown subset {subset!r}; known: {', '.join((*ALL_SUBSETS, *SYNTHETIC_SUBSETS))}")


def require_image_root(subset: str, row: Mapping[str, Any], image_root: Path | str | None = None) -> Path:
    """The image root to use (argument, else the packaged images of a packaged subset, else
    ``ADAPTVIS_IMAGE_ROOT``); a clear error when there is none."""
    if image_root is None and subset in packaged_image_roots():
        return packaged_image_roots()[subset]
    root = Path(image_root).expanduser() if image_root is not None else image_root_from_env()
    if root is None:
        raise DataSetupError(
            f"{IMAGE_ROOT_ENV} is not set, so the image of {subset} row {row.get(ROW_COLUMN, '?')} cannot be loaded. "
            f"Set {IMAGE_ROOT_ENV} to the folder holding {', '.join(f'{name}/' for name in IMAGE_FOLDERS)} "
            f"(only the folders your tasks use are needed). {doctor_hint(subset)}"
        )
    if not root.is_dir():
        raise ImageLoadError(
            f"{IMAGE_ROOT_ENV}={root} is not a folder, so the image of {subset} row {row.get(ROW_COLUMN, '?')} "
            f"cannot be loaded. Point it at the folder holding {', '.join(f'{name}/' for name in IMAGE_FOLDERS)}. "
            f"{doctor_hint(subset)}"
        )
    return root


def resolve_image_path(subset: str, row: Mapping[str, Any], image_root: Path | str | None = None) -> Path:
    """Absolute path of a row's image under the image root (the file may not exist).

    A row with a ``shown_image`` column (the image-shuffle control, ``whatsup.process_docs_shuffled_images``)
    shows that image (a path relative to the image root) instead of its own.
    """
    root = require_image_root(subset, row, image_root)
    shown = row.get(SHOWN_IMAGE_COLUMN) if isinstance(row, Mapping) else None
    relative = PurePosixPath(shown) if shown else image_relpath(subset, row)
    return root / Path(*relative.parts)


def missing_image_help(relpaths: Iterable[PurePosixPath | str]) -> list[str]:
    """One 'where to get it' line per image folder that the given relative paths live in."""
    folders = sorted({PurePosixPath(path).parts[0] for path in relpaths if PurePosixPath(path).parts})
    lines = []
    for folder in folders:
        source = IMAGE_FOLDERS.get(folder, "not a documented image folder: check the image paths in the data")
        lines.append(f"{folder}/: {source}")
    return lines


# --------------------------------------------------------------------------------------------
# Deferred errors (keeps our message visible through lmms-eval's retry around download())
# --------------------------------------------------------------------------------------------


def docs_or_deferred_error(build: Callable[[], Any]) -> Any:
    """Run ``build`` (which returns a ``datasets.Dataset``); on DataSetupError return a one-row error dataset.

    lmms-eval runs ``process_docs`` inside ``download()``, which tenacity retries five times and
    then re-raises as ``RetryError[<Future ... raised DataSetupError>]`` -- our message would only
    survive deep in a chained traceback. A data-setup error is deterministic, so retrying is
    pointless: instead the task gets one placeholder doc carrying the message, and the first
    ``doc_to_text``/``doc_to_target``/``doc_to_visual``/``process_results`` call on it (lmms-eval
    calls ``doc_to_text`` on doc 0 while constructing the task) re-raises the original error class
    with the original message, outside the retry. Other exceptions propagate unchanged (and are retried).
    """
    import datasets

    try:
        return build()
    except DataSetupError as err:
        return datasets.Dataset.from_list([{_DEFERRED_COLUMN: str(err), _DEFERRED_TYPE_COLUMN: type(err).__name__}])


def rows_to_dataset(loaded: LoadedRows, rows: list[dict[str, Any]] | None = None) -> Any:
    """``datasets.Dataset`` of ``rows`` (default: all loaded rows); DataSetupError when a column mixes types."""
    import datasets
    import pyarrow as pa

    rows = loaded.rows if rows is None else rows
    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
        subset = loaded.descriptor.subset
        raise DataSetupError(
            f"{subset}: {loaded.origin} cannot form one table: {_mixed_types(rows) or err}. Give every column one "
            f"type in all rows, as in the published schema (data read via {DATA_DIR_ENV} when set). "
            f"{doctor_hint(subset)}"
        ) from err


def _mixed_types(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Describe the first column whose non-null values change type between rows."""
    first_seen: dict[str, tuple[type, int]] = {}
    for row in rows:
        for column, value in row.items():
            if value is None:
                continue
            seen = first_seen.setdefault(column, (type(value), row.get(ROW_COLUMN, 0)))
            if seen[0] is not type(value):
                return (
                    f"column {column!r} is {seen[0].__name__} in row {seen[1]} "
                    f"but {type(value).__name__} in row {row.get(ROW_COLUMN, '?')}"
                )
    return None


def raise_if_deferred(doc: Mapping[str, Any]) -> None:
    """Re-raise a data-setup error that ``process_docs`` stored in a placeholder doc."""
    message = doc.get(_DEFERRED_COLUMN) if isinstance(doc, Mapping) else None
    if message:
        error_class = ImageLoadError if doc.get(_DEFERRED_TYPE_COLUMN) == ImageLoadError.__name__ else DataSetupError
        raise error_class(message)
