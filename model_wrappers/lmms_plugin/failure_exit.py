"""Make failed runs of this suite loud: the failure exit and the unknown-task exit (lmms-eval patches).

**Failure exit.** lmms-eval 0.7.3's CLI (``lmms_eval.__main__.cli_evaluate``) catches every
exception of an evaluation, prints it, logs "Error during evaluation" and returns normally, so the
process exits 0 (only ``--verbosity DEBUG`` re-raises). :func:`install_failure_exit` wraps the one
function that loop calls for the evaluation proper, ``lmms_eval.evaluator.simple_evaluate`` (looked
up as ``evaluator.simple_evaluate`` at call time), once. When a CLI run (``cli_args`` given) that
uses this suite's models or tasks raises, the wrapper prints :func:`explain_failure` once (what
went wrong, the likely cause, the one command that checks the data; the traceback too, unless the
error is one of this suite's own, whose message is complete) and exits with status 1.
Python-API calls, other models' and other tasks' runs are untouched.

It cannot be installed when the entry point is loaded: lmms-eval imports the entry points while
``lmms_eval.evaluator`` is itself still being imported. The task-discovery hook
(``lmms_plugin.task_discovery.install_task_discovery``) therefore installs it when the CLI builds its
``TaskManager``, which ``cli_evaluate_single`` does before it calls ``simple_evaluate``.
``tests/unit/test_registration.py`` fails if a future lmms-eval changes what this relies on.

An unknown ``--tasks`` name fails earlier, in the CLI's ``TaskManager.match_tasks`` call, and also
ends in exit status 0; :func:`install_unknown_task_exit` wraps that method once (the entry point
installs it) and, for this suite's runs, names close matches and exits 1.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from adaptvis_tasks.data import (
    ALL_SUBSETS,
    DATA_DIR_ENV,
    DOCTOR_COMMAND,
    DataSetupError,
    data_dir_from_env,
    local_split_files,
)
from model_wrappers.lmms_plugin.models import MODEL_CLASSES

_MARKER = "__adaptvis_failure_exit__"
FAILURE_EXIT_CODE = 1
_UNPACK_ERROR = re.compile(r"(not enough|too many) values to unpack")
INSTALL_DOCS = "docs/guides/INSTALL.md in the adaptvis-eval repository"


# --------------------------------------------------------------------------------------------
# Which runs are ours: this suite's model names and the configs its task YAML reads
# --------------------------------------------------------------------------------------------


def _load_task_yaml(path: Path) -> dict[str, Any]:
    """One task YAML of this suite, read without importing anything (``!function`` values become None)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=Loader)
    return data if isinstance(data, dict) else {}


def _config_subset(config: Mapping[str, Any], folder: Path) -> str | None:
    """The data config a task reads, from its ``dataset_kwargs.data_files`` source descriptor."""
    files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    for value in files.values() if isinstance(files, Mapping) else [files]:
        path = folder / str(value)
        if path.suffix == ".json" and path.is_file():
            subset = json.loads(path.read_text(encoding="utf-8")).get("subset")
            if subset:
                return str(subset)
    return None


@functools.cache
def suite_task_subsets() -> dict[str, tuple[str, ...]]:
    """Every task and group name of ``yaml_tasks/`` -> the data configs it reads (paper order).

    Groups map to the union of their members' configs; members that are lmms-eval's own tasks
    (POPE, GQA) add none.
    """
    from yaml_tasks import tasks_dir

    tasks: dict[str, str | None] = {}
    groups: dict[str, list[str]] = {}
    for path in sorted(Path(tasks_dir()).rglob("*.yaml")):
        config = _load_task_yaml(path)
        merged = dict(config)
        if "include" in config:
            merged = {**_load_task_yaml(path.parent / str(config["include"])), **config}
        if "group" in config and isinstance(config.get("task"), list):
            groups[str(config["group"])] = [str(member) for member in config["task"]]
        elif isinstance(config.get("task"), str):
            tasks[config["task"]] = _config_subset(merged, path.parent)
    order = {name: index for index, name in enumerate(ALL_SUBSETS)}

    def expand(name: str, seen: frozenset[str]) -> set[str]:
        if name in tasks:
            return {tasks[name]} if tasks[name] else set()
        if name in groups and name not in seen:
            return set().union(*(expand(member, seen | {name}) for member in groups[name]))
        return set()

    names = [*tasks, *groups]
    return {name: tuple(sorted(expand(name, frozenset()), key=lambda s: order.get(s, len(order)))) for name in names}


def requested_subsets(tasks: Iterable[Any] | None) -> list[str]:
    """The data configs this suite's requested tasks read, in paper order (other tasks add none)."""
    known = suite_task_subsets()
    found = {subset for name in tasks or () if isinstance(name, str) for subset in known.get(name, ())}
    return [subset for subset in ALL_SUBSETS if subset in found]


def uses_this_suite(model: Any, tasks: Iterable[Any] | None) -> bool:
    """True when the run's model is one of this suite's or any requested task/group is one of its."""
    if isinstance(model, str):
        if model in MODEL_CLASSES:
            return True
    elif type(model).__module__.startswith("model_wrappers."):
        return True
    known = suite_task_subsets()
    return any(isinstance(name, str) and name in known for name in tasks or ())


# --------------------------------------------------------------------------------------------
# The message
# --------------------------------------------------------------------------------------------


def stray_model_args(model_args: Any) -> list[str]:
    """Comma-separated pieces of ``--model_args`` that are not ``name=value`` (e.g. the 0.8 of alphas=0.5,0.8)."""
    if not isinstance(model_args, str):
        return []
    return [piece.strip() for piece in model_args.split(",") if piece.strip() and "=" not in piece]


def joined_with_bars(model_args: str) -> str:
    """``model_args`` with every piece that is not ``name=value`` joined to the previous value by ``|``."""
    pieces: list[str] = []
    for piece in (p.strip() for p in model_args.split(",")):
        if not piece:
            continue
        if "=" not in piece and pieces:
            pieces[-1] = f"{pieces[-1]}|{piece}"
        else:
            pieces.append(piece)
    return ",".join(pieces)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def missing_mirror_configs(data_dir: Path, subsets: Iterable[str]) -> list[str]:
    """The configs of ``subsets`` that have neither ``test.jsonl`` nor ``test.parquet`` in the local mirror."""
    return [s for s in subsets if not any(path.is_file() for path in local_split_files(data_dir, s))]


def explain_failure(error: BaseException, model_args: Any = None, tasks: Iterable[Any] | None = None) -> str:
    """The block printed after a failed run: what failed, the likely cause, and what to run next."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    lines = [f"adaptvis-eval: the evaluation FAILED ({type(error).__name__}): {first_line}"]
    stray = stray_model_args(model_args)
    if stray or _UNPACK_ERROR.search(str(error)):
        shown = ", ".join(repr(piece) for piece in stray) if stray else "a piece"
        lines.append(
            f"  --model_args: {shown} is not name=value. lmms-eval splits --model_args at every comma, so list "
            "values separate their items with '|': alphas=0.5|0.8|1.2, layers=0-3|8 (quote the argument in a shell)."
        )
        if stray:
            lines.append(f"  Did you mean: --model_args '{joined_with_bars(model_args)}'")
    lines.extend(import_failure_lines(error))
    if any(isinstance(link, DataSetupError) for link in _chain(error)):
        subsets = requested_subsets(tasks)
        if subsets:
            data_dir = data_dir_from_env()
            if data_dir is not None:
                missing = missing_mirror_configs(data_dir, subsets)
                if missing:
                    lines.append(
                        f"  The requested tasks read {len(subsets)} configuration(s); {len(missing)} missing from "
                        f"{DATA_DIR_ENV}={data_dir}: {', '.join(missing)}."
                    )
            lines.append(f"  Check every configuration the requested tasks read: {doctor_command(subsets)}")
    lines.append(
        f"  No results were written. Exit status {FAILURE_EXIT_CODE} (lmms-eval 0.7.3 alone would exit 0 here; "
        "adaptvis-eval makes failed runs of its models and tasks exit non-zero)."
    )
    return "\n".join(lines)


def _distribution(module: str) -> tuple[str, str] | None:
    """(distribution name, installed version) of the package that provides top-level ``module``."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _importing_module(error: BaseException) -> str | None:
    """The dotted module (``lmms_eval.evaluator``) whose code ran the failing import, from the traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        parts = Path(frame.filename).with_suffix("").parts
        if "site-packages" in parts:
            return ".".join(parts[parts.index("site-packages") + 1 :])
    return None


def import_failure_lines(error: BaseException) -> list[str]:
    """For an import error inside lmms-eval or a dependency: the package involved, its version, the fix.

    Such a failure almost always means a dependency release the suite was not tested with (for
    example filelock 4.3, which removed the ``filelock._api`` module that lmms-eval 0.7.3 imports).
    """
    failure = next((link for link in _chain(error) if isinstance(link, ImportError)), None)
    if failure is None or not failure.name:
        return []
    lines = []
    provider = _distribution(failure.name)
    where = _importing_module(failure)
    importer = _distribution(where) if where else None
    place = f" in {where}" + (f" ({importer[0]} {importer[1]})" if importer else "") if where else ""
    if provider is not None:
        lines.append(
            f"  An import failed{place}: {failure.name!r} is not in the installed {provider[0]} {provider[1]}. "
            f"This release of {provider[0]} is probably newer than the suite supports."
        )
    else:
        lines.append(f"  An import failed{place}: no installed package provides {failure.name!r}.")
    lines.append(
        "  Install the tested versions (`pip install -r requirements.lock`, or `make test` in a checkout), "
        f"or see {INSTALL_DOCS} for the versions that are tested and those that are only allowed."
    )
    return lines


def doctor_command(subsets: Iterable[str]) -> str:
    """The doctor command that checks exactly ``subsets`` (all configs when empty)."""
    subsets = list(subsets)
    if not subsets or set(subsets) == set(ALL_SUBSETS):
        return DOCTOR_COMMAND
    return f"{DOCTOR_COMMAND} --configs {' '.join(subsets)}"


# --------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------


def install_failure_exit() -> bool:
    """Wrap ``lmms_eval.evaluator.simple_evaluate`` once so failed CLI runs of this suite exit 1.

    Returns False (and does nothing) while ``lmms_eval.evaluator`` is not fully imported; True
    when the wrapper is (now) installed. Idempotent.
    """
    evaluator = sys.modules.get("lmms_eval.evaluator")
    original = getattr(evaluator, "simple_evaluate", None)
    if original is None:
        return False
    if getattr(original, _MARKER, False):
        return True
    signature = inspect.signature(original)

    @functools.wraps(original)
    def simple_evaluate(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except Exception as error:
            try:
                arguments = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:  # not a call lmms-eval's CLI makes
                arguments = {}
            if arguments.get("cli_args") is None or not uses_this_suite(arguments.get("model"), arguments.get("tasks")):
                raise
            report = explain_failure(error, arguments.get("model_args"), arguments.get("tasks"))
            if str(arguments.get("verbosity", "")).upper() == "DEBUG":
                print(report, file=sys.stderr, flush=True)
                raise  # lmms-eval re-raises at DEBUG: the process exits 1 with the traceback
            _exit_after(error, report)

    setattr(simple_evaluate, _MARKER, True)
    evaluator.simple_evaluate = simple_evaluate
    return True


def install_unknown_task_exit() -> bool:
    """Wrap ``TaskManager.match_tasks`` once so an unknown task name in this suite's runs exits 1.

    lmms-eval's CLI matches ``--tasks`` with it before the evaluation starts and, for a name it
    does not know, raises an exception that its loop turns into exit status 0. The wrapper acts
    only when the TaskManager was built for one of this suite's models, or when an unknown name is
    close to one of this suite's task names; it names the close matches.
    """
    from lmms_eval.tasks import TaskManager

    original = TaskManager.match_tasks
    if getattr(original, _MARKER, False):
        return True

    @functools.wraps(original)
    def match_tasks(self: Any, task_list: list[str]) -> Any:
        matched = original(self, task_list)
        unknown = [
            name
            for name in task_list
            if name not in matched and "*" not in name and not Path(name).is_file() and not Path(name).is_dir()
        ]
        if unknown:
            report = explain_unknown_tasks(unknown, getattr(self, "model_name", None), list(self.all_tasks))
            if report is not None:
                print(report, file=sys.stderr, flush=True)
                raise SystemExit(FAILURE_EXIT_CODE)
        return matched

    setattr(match_tasks, _MARKER, True)
    TaskManager.match_tasks = match_tasks
    return True


def explain_unknown_tasks(unknown: list[str], model_name: Any, known: list[str]) -> str | None:
    """The message for unknown ``--tasks`` names, or None when the run is not this suite's."""
    import difflib

    ours = list(suite_task_subsets())
    guesses = {name: difflib.get_close_matches(name, known, n=3, cutoff=0.8) for name in unknown}
    close_to_ours = any(guess in ours for names in guesses.values() for guess in names)
    if model_name not in MODEL_CLASSES and not close_to_ours:
        return None
    lines = [f"adaptvis-eval: unknown task name(s) in --tasks: {', '.join(unknown)}"]
    for name, names in guesses.items():
        if names:
            lines.append(f"  {name}: did you mean {' or '.join(names)}?")
    lines.append(
        "  `lmms-eval --tasks list` lists every task and group. Nothing was evaluated; exit status "
        f"{FAILURE_EXIT_CODE} (lmms-eval 0.7.3 itself exits 0 here)."
    )
    return "\n".join(lines)


SUITE_PACKAGES = ("model_wrappers", "adaptvis_tasks", "yaml_tasks")
"""Errors raised with a class of these packages carry a complete message for the user (argument, file, fix)."""


def is_explained(error: BaseException) -> bool:
    """True for this suite's own error classes, whose message says everything (no traceback needed)."""
    return type(error).__module__.split(".")[0] in SUITE_PACKAGES


def _exit_after(error: Exception, report: str) -> None:
    """Print the failure once and exit with status 1.

    lmms-eval's CLI would print the traceback (whose last line is the message), then log "Error
    during evaluation: <message>"; with the report that made the message appear three times. Now:
    the traceback only for errors that are not this suite's own explained ones (a bug, or a library
    error), and one "Error during evaluation -- <report>" block on stderr carries the message once.
    """
    if not is_explained(error):
        traceback.print_exc()
    sys.stdout.flush()
    print(f"Error during evaluation -- {report}", file=sys.stderr, flush=True)
    raise SystemExit(FAILURE_EXIT_CODE) from error


# --------------------------------------------------------------------------------------------
# Launcher check
# --------------------------------------------------------------------------------------------
