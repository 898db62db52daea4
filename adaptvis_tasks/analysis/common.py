"""What every analysis tool shares: user-facing errors, JSONL reading, table output.

Model-free: nothing here imports torch, transformers or ``model_wrappers``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

FORMATS = ("markdown", "csv", "json")


class AnalysisError(RuntimeError):
    """Bad input to an analysis tool; the message names the file, row or argument and what to do."""


def read_jsonl(path: str | Path, what: str = "file") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-empty line; AnalysisError naming ``path:line`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{what} {path} does not exist (or is not a file)")
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise AnalysisError(f"{path}:{number}: not a JSON line ({error.msg}); is this a {what}?") from None
            if not isinstance(record, dict):
                raise AnalysisError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def add_format_argument(parser: argparse.ArgumentParser, formats: Sequence[str] = FORMATS) -> None:
    """``--format`` (default markdown) and ``--output`` (default stdout)."""
    parser.add_argument(
        "--format", choices=list(formats), default=formats[0], help="output format (default %(default)s)"
    )
    parser.add_argument("--output", "-o", type=Path, help="write the output to this file instead of stdout")


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to ``output`` or stdout."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def format_value(value: Any, digits: int = 4) -> str:
    """Human rendering of one cell: floats with ``digits`` decimals, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str], digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (missing cells blank)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c), digits) for c in columns) + " |")
    return "\n".join(lines)


def csv_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """CSV with a header row; floats at full precision (``repr``), None as empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def json_text(payload: Any) -> str:
    """Indented JSON (NaN written as null)."""
    return json.dumps(_nan_to_none(payload), indent=2, ensure_ascii=False)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def run_tool(body: Callable[[], int]) -> int:
    """Run a tool's body; an AnalysisError becomes ``adaptvis: error: ...`` on stderr and exit code 2."""
    try:
        return body()
    except AnalysisError as error:
        print(f"adaptvis: error: {error}", file=sys.stderr)
        return 2


def parse_float_list(text: str, name: str) -> tuple[float, ...]:
    """``"0.5,0.8"`` or ``"0.5|0.8"`` -> floats; AnalysisError naming ``name`` otherwise."""
    parts = [p for p in text.replace("|", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise AnalysisError(f"{name}={text!r}: give numbers separated by commas, e.g. 0.5,0.8") from None
    if not values:
        raise AnalysisError(f"{name}={text!r}: give at least one number")
    return values
