"""Per-request trace: one JSON object per line, written whole, flushed and fsynced.

Public format (analysis tools read it; see docs/reference/TRACE.md). Every line has at least ``task``,
``split`` (the suite's split, ``val``/``test``/``all``, or null), ``lmms_eval_split``, ``doc_id``,
``doc`` (the task document's JSON-serialisable columns), ``method``, ``confidence`` (unrounded,
under alpha = 1), ``alpha`` (the alpha applied; null for the baseline), ``answer``; sweep lines
add ``answers`` keyed by alpha (as strings, e.g. ``"0.5"``). ``run`` fingerprints the settings
(checkpoint, method and its coefficients, generation settings) so that lines from different configurations never mix up.

Guarantees: a killed run leaves only complete lines (a trailing partial line, possible only if
the machine died mid-write, is cut off when the file is next opened, with a warning); a line
whose ``(run, task, lmms_eval_split, doc_id)`` is already in the file is not written again, so reruns
(e.g. with lmms-eval's ``--use_cache``) never duplicate lines. With several processes each rank
writes ``<stem>.rank<k><suffix>``; rank 0 merges them into the requested path when the
evaluation ends (:func:`merge_traces`, also ``python -m model_wrappers.trace merge``). The rank
files are kept after the merge: each rank deduplicates against its own file (``_seen``), so a rerun
with the same process count neither duplicates lines nor writes a second, possibly different answer
(GPU half precision) that would make the next merge fail (see docs/reference/TRACE.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from loguru import logger

from adaptvis_tasks.whatsup import SPLIT_COLUMN

KEY_FIELDS = ("run", "task", "lmms_eval_split", "doc_id")
"""What identifies a request. ``lmms_eval_split`` is lmms-eval's split name (``test`` for every task of
this suite); ``split`` is the suite's own (``val``/``test``/``all``). Records written before
``lmms_eval_split`` existed carry lmms-eval's name in ``split``, which is used in its place."""


def run_fingerprint(settings: dict) -> str:
    """A short stable hash of the settings that determine the answers."""
    canonical = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def rank_path(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def lmms_eval_split(record: dict) -> object:
    """lmms-eval's split of a record (``split`` in records older than ``lmms_eval_split``)."""
    return record["lmms_eval_split"] if "lmms_eval_split" in record else record.get("split")


def _key(record: dict) -> tuple:
    return (record.get("run"), record.get("task"), lmms_eval_split(record), record.get("doc_id"))


def read_trace(path: str | Path) -> Iterator[dict]:
    """Yield the records of a trace file; a malformed line raises ValueError naming the line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from None


def _repair_partial_tail(path: Path) -> None:
    """Cut a trailing line that lacks its newline (an interrupted write)."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
    logger.warning(f"trace {path}: removed an incomplete last line ({size - keep} bytes) left by an interrupted run")


class TraceWriter:
    """Append-only, deduplicating JSONL writer for one process."""

    def __init__(self, path: str | Path, rank: int = 0, world_size: int = 1) -> None:
        self.requested_path = Path(path)
        self.world_size = world_size
        self.rank = rank
        self.path = rank_path(self.requested_path, rank) if world_size > 1 else self.requested_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[tuple, dict] = {}  # earlier answers, for resume
        self._seen: set[tuple] = set()  # keys already in this process's file, for deduplication
        for existing in self._existing_files():
            if existing == self.path:
                _repair_partial_tail(existing)
            for record in read_trace(existing):
                self._records.setdefault(_key(record), record)
                if existing == self.path:
                    self._seen.add(_key(record))
        self._handle = open(self.path, "a", encoding="utf-8")

    def _existing_files(self) -> list[Path]:
        files = [self.path]
        if self.world_size > 1:
            files.append(self.requested_path)  # a merged trace of an earlier run
        return [f for f in files if f.exists()]

    def recorded(self, run: str, task: str, split: str, doc_id: int) -> dict | None:
        """The record of an earlier answer to this request under the same settings, if any.

        ``split`` is lmms-eval's split name (the request's), not the suite's.
        """
        return self._records.get((run, task, split, doc_id))

    def write(self, record: dict) -> bool:
        """Append ``record`` as one line unless its key is already present; True when written."""
        key = _key(record)
        if key in self._seen:
            return False
        line = json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._seen.add(key)
        self._records.setdefault(key, record)
        return True

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def merge_ranks(self) -> Path | None:
        """On rank 0 of a multi-process run: merge every rank's file into the requested path."""
        if self.world_size == 1 or self.rank != 0:
            return None
        parts = [rank_path(self.requested_path, r) for r in range(self.world_size)]
        missing = [str(p) for p in parts if not p.exists()]
        if missing:
            logger.warning(f"trace: not merging, rank files missing: {missing}")
            return None
        return merge_traces(parts, self.requested_path)


def merge_traces(paths: Iterable[str | Path], output: str | Path) -> Path:
    """Merge trace files into ``output`` (sorted by run, task, split, doc_id); conflicting duplicates are an error.

    Written to a temporary file and renamed, so ``output`` is never half-written. Lines already in
    ``output`` are kept (deduplicated), so a rerun can merge into an existing trace.
    """
    output = Path(output)
    records: dict[tuple, dict] = {}
    sources = [Path(p) for p in paths]
    if output.exists() and output not in sources:
        sources.insert(0, output)
    for source in sources:
        for record in read_trace(source):
            key = _key(record)
            if key in records and records[key] != record:
                raise ValueError(
                    f"trace merge: conflicting lines for {dict(zip(KEY_FIELDS, key, strict=True))} in {source}"
                )
            records[key] = record
    ordered = sorted(
        records.values(),
        key=lambda r: (str(r.get("run")), str(r.get("task")), str(lmms_eval_split(r)), r.get("doc_id", -1)),
    )
    temporary = output.with_name(output.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        for record in ordered:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_wrappers.trace", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge per-rank trace files into one")
    merge.add_argument("inputs", nargs="+")
    merge.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    out = merge_traces(args.inputs, args.output)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def json_columns(doc: object) -> dict:
    """The task document's columns that JSON can hold as they are (images and bytes left out).

    Lets analysis tools score a trace without the dataset (``adaptvis tune``, docs/reference/TRACE.md).
    """
    if not isinstance(doc, dict):
        return {}
    kept = {}
    for column, value in doc.items():
        try:
            json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[column] = value
    return kept


def trace_record(
    request_args: tuple,
    doc: object,
    method,
    out,
    answer: str,
    decode: Callable[[list[int]], str],
    run: str,
    input_sha: str,
    pretrained: str,
    model_type: str,
    token_stats: dict | None,
) -> dict:
    """One trace record (docs/reference/TRACE.md) for one answered request.

    ``request_args``: the lmms-eval ``Instance.args``; ``doc``: its task document; ``method``: the
    ``MethodConfig``; ``out``: the ``SampleOutput``; ``decode``: token ids -> answer text.
    """
    _, _, _, doc_id, task, split = request_args
    record = {
        "task": task,
        "split": doc.get(SPLIT_COLUMN) if isinstance(doc, dict) else None,
        "lmms_eval_split": split,
        "doc_id": doc_id,
        "method": method.method,
        "confidence": out.confidence,
        "alpha": out.alpha,
        "answer": answer,
        "run": run,
        "input_sha": input_sha,
        "pretrained": pretrained,
        "model_type": model_type,
        "layers": "all" if method.layers is None else "|".join(str(i) for i in method.layers),
        **(token_stats or {}),
    }
    if out.sweep is not None:
        record["answers"] = {repr(alpha): decode(tokens) for alpha, tokens in out.sweep.items()}
    if out.sweep_confidence is not None:
        record["confidences"] = {repr(alpha): value for alpha, value in out.sweep_confidence.items()}
    record.update(out.trace_fields())  # what the method adds (AdaptVis and sweep: gate_values)
    record["method_parameters"] = method.describe()  # the method and its parameters, from its module
    record["doc"] = json_columns(doc)
    return record
