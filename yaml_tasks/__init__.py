"""lmms-eval task and group definitions (YAML only); this module only locates the folder."""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent


def tasks_dir() -> str:
    """Absolute path of the folder lmms-eval should index (the ``--include_path`` fallback)."""
    return str(TASKS_DIR)


def print_tasks_dir() -> None:
    """Console entry point ``adaptvis-tasks-dir``: print the folder for ``--include_path``."""
    print(tasks_dir())
