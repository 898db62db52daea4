"""``adaptvis-doctor``: check a data setup before a long GPU run.

For every configuration (the six WhatsUp subsets and VSR) it loads and validates the rows exactly
as the tasks do (``ADAPTVIS_DATA_DIR`` mirror, else the hub), checks that every referenced image
exists under ``ADAPTVIS_IMAGE_ROOT`` and decodes, compares row counts with the paper's (a mismatch
is a warning), warns about the known swapped Controlled_A pair (when the data holds it) and about
rows whose gold is not one of their own options, and says where missing data comes from. Reading
the hub, it probes it once first and reports an unreachable hub in seconds (instead of the minutes
of retries the datasets library spends per configuration), with the offline settings to use;
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are honoured. Exit code 0 when everything the checked
configs need is present, 1 otherwise.

Usage: ``adaptvis-doctor [--configs ...] [--data-dir DIR] [--image-root DIR] [--json]``
(also ``python -m adaptvis_tasks.doctor``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from adaptvis_tasks.data import (
    ALL_SUBSETS,
    DATA_DIR_ENV,
    IMAGE_ROOT_ENV,
    ROW_COLUMN,
    VSR_SUBSET,
    WHATSUP_HUB_DATASET,
    DataSetupError,
    SourceDescriptor,
    data_dir_from_env,
    gold_outside_options,
    image_relpath,
    image_root_from_env,
    load_descriptors,
    load_rows,
    local_split_files,
    missing_image_help,
    rows_to_dataset,
    without_doctor_hint,
)
from adaptvis_tasks.images import check_image

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
HUB_PROBE_TIMEOUT = 3.0
"""Seconds the doctor waits for the hub before it reports it unreachable."""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")

#: whatsup_vlms issue #4: these two Controlled_A images are reported swapped; data is kept as published.
SWAPPED_CONTROLLED_A = ("pillow_left_of_chair.jpeg", "pillow_right_of_chair.jpeg")

_ALIASES = {
    "controlled_a": "Controlled_A",
    "controlled_b": "Controlled_B",
    "coco_one": "COCO_one_obj",
    "coco_two": "COCO_two_obj",
    "vg_one": "VG_one_obj",
    "vg_two": "VG_two_obj",
    "vsr": "vsr_zeroshot",
}


@dataclass
class ConfigReport:
    """What the doctor found for one configuration."""

    config: str
    source: str | None = None
    rows: int | None = None
    paper_rows: int | None = None
    images_referenced: int = 0
    images_unique: int = 0
    images_checked: bool = False
    missing: list[str] = field(default_factory=list)
    corrupt: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Rows loaded and every image present and decodable."""
        return not self.errors and self.images_checked and not self.missing and not self.corrupt


@dataclass
class DoctorReport:
    """The whole check, as printed and as ``--json``."""

    data_dir: str | None
    image_root: str | None
    configs: list[ConfigReport]
    help: list[str]

    @property
    def ok(self) -> bool:
        """True when every checked configuration is ready."""
        return all(report.ok for report in self.configs)

    def to_dict(self, max_examples: int) -> dict[str, Any]:
        """JSON-ready form; missing/corrupt lists are cut to ``max_examples`` (counts stay exact)."""
        configs = []
        for report in self.configs:
            item = asdict(report)
            item["ok"] = report.ok
            item["missing_count"] = len(report.missing)
            item["corrupt_count"] = len(report.corrupt)
            item["missing"] = report.missing[:max_examples]
            item["corrupt"] = report.corrupt[:max_examples]
            configs.append(item)
        return {
            "ok": self.ok,
            "data_dir": self.data_dir,
            "image_root": self.image_root,
            "configs": configs,
            "help": self.help,
        }


def resolve_config_names(names: Sequence[str] | None) -> list[str]:
    """Canonical config names from user input (exact names in any case, or short task-style aliases)."""
    if not names:
        return list(ALL_SUBSETS)
    lookup = {name.lower(): name for name in ALL_SUBSETS} | _ALIASES
    resolved = []
    for name in names:
        canonical = lookup.get(name.strip().lower())
        if canonical is None:
            raise ValueError(
                f"unknown config {name!r}; choose from {', '.join(ALL_SUBSETS)} (or {', '.join(_ALIASES)})"
            )
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


def check_config(descriptor: SourceDescriptor, data_dir: Path | None, image_root: Path | None) -> ConfigReport:
    """Load, validate and check the images of one configuration."""
    report = ConfigReport(config=descriptor.subset, paper_rows=descriptor.paper_rows)
    try:
        loaded = load_rows(descriptor, data_dir)
        rows_to_dataset(loaded)  # what the tasks build: catches columns whose type changes between rows
    except DataSetupError as err:
        report.errors.append(without_doctor_hint(str(err)))
        return report
    except Exception as err:  # a bug or an unexpected format: report it, keep checking the others
        report.errors.append(f"unexpected {type(err).__name__} while loading: {err}")
        return report
    report.source = loaded.origin
    report.rows = len(loaded.rows)
    if report.rows != descriptor.paper_rows:
        report.warnings.append(
            f"{descriptor.subset}: {report.rows} rows, the paper used {descriptor.paper_rows}; results will not be "
            "comparable with the paper's (partial or different copy of the data?)"
        )
    if descriptor.subset != VSR_SUBSET:
        outside = [(row[ROW_COLUMN], found) for row in loaded.rows if (found := gold_outside_options(row))]
        if outside:
            shown = "; ".join(
                f"row {row}: gold {gold!r}, options {', '.join(options)}" for row, (gold, options) in outside[:3]
            )
            more = f" (and {len(outside) - 3} more)" if len(outside) > 3 else ""
            report.warnings.append(
                f"{descriptor.subset}: {len(outside)} row(s) whose gold is not among the options of its "
                f"'Answer with' clause ({shown}{more}). Kept as published (the paper's data has one such VG_two_obj "
                "row); `accuracy` can still credit them, `strict_accuracy` cannot."
            )
    relpaths = [image_relpath(descriptor.subset, row) for row in loaded.rows]
    present = {path.name for path in relpaths} & set(SWAPPED_CONTROLLED_A)
    if descriptor.subset == "Controlled_A" and present:
        where = "both are in this data" if len(present) == 2 else f"{', '.join(sorted(present))} is in this data"
        report.warnings.append(
            f"Controlled_A: known data fault: {SWAPPED_CONTROLLED_A[0]} and {SWAPPED_CONTROLLED_A[1]} are reported "
            f"swapped (whatsup_vlms issue #4); {where}. Kept as published, like the paper's numbers."
        )
    unique = sorted(set(relpaths))
    report.images_referenced, report.images_unique = len(relpaths), len(unique)
    if image_root is None:
        return report
    for relpath in unique:
        problem = check_image(image_root / Path(*relpath.parts))
        if problem == "missing":
            report.missing.append(str(relpath))
        elif problem is not None:
            report.corrupt.append({"path": str(relpath), "reason": problem.removeprefix("corrupt: ")})
    report.images_checked = True
    return report


def hub_endpoint() -> str:
    """The hub the datasets library would contact (``HF_ENDPOINT``, else huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_HUB_ENDPOINT


def offline_variable() -> str | None:
    """The first of ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` that is switched on, if any."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return name
    return None


def probe_hub(endpoint: str, timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """One quick request to the hub: None when it answers (any HTTP status), else why not.

    Without it, an unreachable hub costs minutes: the datasets library retries every
    configuration before giving up.
    """
    request = urllib.request.Request(f"{endpoint}/api/datasets/{WHATSUP_HUB_DATASET}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # the hub answered (e.g. 401/404): it is reachable
    except (OSError, ValueError) as err:  # refused, DNS, timeout, malformed endpoint
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"


def _hub_unreachable_report(descriptor: SourceDescriptor, endpoint: str, reason: str) -> ConfigReport:
    where = f"the {descriptor.hub_label} is on {endpoint}"
    return ConfigReport(
        config=descriptor.subset,
        paper_rows=descriptor.paper_rows,
        errors=[f"{descriptor.subset}: not loaded: {where}, unreachable ({reason})"],
    )


def run_checks(
    configs: Sequence[str] | None = None,
    data_dir: Path | None = None,
    image_root: Path | None = None,
    probe_timeout: float = HUB_PROBE_TIMEOUT,
) -> DoctorReport:
    """Check the given configs (all by default) with explicit locations (None: hub / not set).

    Reading the hub, it first probes it once (``probe_timeout`` seconds); when it does not answer,
    no configuration is loaded from it and the report says how to work offline. With
    ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set, the hub is not contacted (datasets' cache only).
    """
    descriptors = load_descriptors()
    names = resolve_config_names(configs)
    help_lines: list[str] = []
    unreachable = None
    if data_dir is None:
        endpoint, offline = hub_endpoint(), offline_variable()
        if offline is not None:
            help_lines.append(
                f"{offline} is set: the hub was not contacted; hub configurations load only from the datasets cache."
            )
        else:
            unreachable = probe_hub(endpoint, probe_timeout)
        if unreachable is not None:
            help_lines.append(
                f"The Hugging Face hub at {endpoint} could not be reached ({unreachable}; waited at most "
                f"{probe_timeout:g} s), so no configuration was loaded from it. To work offline: set "
                f"{DATA_DIR_ENV}=<dir> to a local mirror (<dir>/<config>/test.jsonl or .parquet, same columns), or "
                "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 to use datasets downloaded earlier; with a proxy, set "
                "HTTPS_PROXY; a mirror of the hub: HF_ENDPOINT."
            )
    if unreachable is not None:
        reports = [_hub_unreachable_report(descriptors[name], endpoint, unreachable) for name in names]
    else:
        reports = [check_config(descriptors[name], data_dir, image_root) for name in names]
    if image_root is None:
        help_lines.append(
            f"{IMAGE_ROOT_ENV} is not set (and no --image-root): images were not checked. Set it to the folder "
            "holding controlled_images/, controlled_clevr/, val2017/, train2017/ and vg_images/."
        )
    elif not image_root.is_dir():
        help_lines.append(f"{IMAGE_ROOT_ENV}={image_root} does not exist.")
    unusable = [path for report in reports for path in report.missing]
    unusable += [entry["path"] for report in reports for entry in report.corrupt]
    help_lines.extend(missing_image_help(PurePosixPath(path) for path in unusable))
    for report in reports:
        if report.errors and unreachable is None:
            descriptor = descriptors[report.config]
            if data_dir is not None:
                jsonl, parquet = local_split_files(data_dir, descriptor.subset, descriptor.split)
                help_lines.append(
                    f"{report.config} rows: put the {descriptor.hub_label} at {jsonl} (or {parquet}), "
                    f"or unset {DATA_DIR_ENV} to read the hub."
                )
            else:
                help_lines.append(
                    f"{report.config} rows: the {descriptor.hub_label}; without hub access, mirror it and set "
                    f"{DATA_DIR_ENV}=<dir> (<dir>/{descriptor.subset}/{descriptor.split}.jsonl or .parquet)."
                )
    return DoctorReport(
        data_dir=str(data_dir) if data_dir is not None else None,
        image_root=str(image_root) if image_root is not None else None,
        configs=reports,
        help=help_lines,
    )


def format_report(report: DoctorReport, max_examples: int = 5) -> str:
    """The human-readable report."""
    rows_from = (
        f"{DATA_DIR_ENV}={report.data_dir} (local mirror)"
        if report.data_dir
        else f"Hugging Face hub ({DATA_DIR_ENV} unset)"
    )
    images_from = f"{IMAGE_ROOT_ENV}={report.image_root}" if report.image_root else f"{IMAGE_ROOT_ENV} not set"
    lines = [f"adaptvis-doctor: {len(report.configs)} config(s); rows from {rows_from}; images from {images_from}", ""]
    warnings: list[str] = []
    for item in report.configs:
        status = "OK  " if item.ok else "FAIL"
        if item.errors:
            lines.append(f"{status}  {item.config}: cannot load rows")
            lines.extend(f"        {error}" for error in item.errors)
        else:
            summary = (
                f"{item.rows} rows (paper: {item.paper_rows}); "
                f"{item.images_referenced} image references, {item.images_unique} files"
            )
            if not item.images_checked:
                detail = "images not checked"
            elif item.missing or item.corrupt:
                detail = f"{len(item.missing)} missing, {len(item.corrupt)} corrupt"
            else:
                detail = "all present and decodable"
            lines.append(f"{status}  {item.config}: {summary}: {detail}")
            shown_missing = item.missing[:max_examples]
            lines.extend(f"        missing: {path}" for path in shown_missing)
            if len(item.missing) > len(shown_missing):
                lines.append(f"        ... and {len(item.missing) - len(shown_missing)} more missing")
            shown_corrupt = item.corrupt[:max_examples]
            lines.extend(f"        corrupt: {entry['path']} ({entry['reason']})" for entry in shown_corrupt)
            if len(item.corrupt) > len(shown_corrupt):
                lines.append(f"        ... and {len(item.corrupt) - len(shown_corrupt)} more corrupt")
        warnings.extend(item.warnings)
    if warnings:
        lines.append("")
        lines.extend(f"WARNING: {warning}" for warning in warnings)
    if report.help:
        lines.append("")
        lines.append("What is missing and how to get it:")
        lines.extend(f"  - {line}" for line in report.help)
    lines.append("")
    failing = [item.config for item in report.configs if not item.ok]
    lines.append(
        "READY: everything the checked configs need is present." if report.ok else f"NOT READY: {', '.join(failing)}."
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's options (shared by ``adaptvis-doctor`` and ``adaptvis doctor``)."""
    parser.add_argument("--configs", nargs="+", metavar="CONFIG", help=f"check only these ({', '.join(ALL_SUBSETS)})")
    parser.add_argument("--data-dir", type=Path, help=f"local mirror to check (overrides {DATA_DIR_ENV})")
    parser.add_argument("--image-root", type=Path, help=f"image folder to check (overrides {IMAGE_ROOT_ENV})")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    parser.add_argument(
        "--max-examples", type=int, default=5, help="missing/corrupt paths listed per config (default 5)"
    )


def run(args: argparse.Namespace) -> int:
    """Check and print; returns the exit code (0 ready, 1 not ready, 2 bad arguments)."""
    try:
        configs = resolve_config_names(args.configs)
    except ValueError as err:
        print(f"adaptvis doctor: error: {err}", file=sys.stderr)
        return 2
    data_dir = args.data_dir.expanduser() if args.data_dir else data_dir_from_env()
    image_root = args.image_root.expanduser() if args.image_root else image_root_from_env()
    report = run_checks(configs, data_dir, image_root)
    if args.json:
        print(json.dumps(report.to_dict(args.max_examples), indent=2))
    else:
        print(format_report(report, args.max_examples))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``adaptvis-doctor``; returns the exit code (0 ready, 1 not ready, 2 bad arguments)."""
    parser = argparse.ArgumentParser(prog="adaptvis-doctor", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
