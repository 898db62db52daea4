"""Synthetic-data fixtures (registered through ``pytest_plugins`` in conftest.py).

* ``synthetic_mirror`` (session): a small mirror of all seven configs, never modified by tests.
  Controlled_A/B have 16 rows (four complete sets of four relations), the other WhatsUp subsets 8,
  VSR 12 (see ``adaptvis_tasks.synthetic.SMALL_ROWS``).
* ``data_env``: points ``ADAPTVIS_DATA_DIR``/``ADAPTVIS_IMAGE_ROOT`` at that mirror for one test.
* ``make_mirror``: writes a fresh mirror under the test's tmp_path, for tests that break things.
* ``task_manager``: a factory for an lmms-eval ``TaskManager`` indexing only ``yaml_tasks/`` (fast);
  ``builtin_task_index`` (session): the names lmms-eval itself ships.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adaptvis_tasks.data import DATA_DIR_ENV, IMAGE_ROOT_ENV
from adaptvis_tasks.synthetic import write_mirror


@dataclass(frozen=True)
class MirrorPaths:
    """Where a synthetic mirror lives: ``data_dir`` for ADAPTVIS_DATA_DIR, ``image_root`` for ADAPTVIS_IMAGE_ROOT."""

    root: Path
    data_dir: Path
    image_root: Path


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorPaths:
    """The shared small synthetic mirror (read-only by convention)."""
    root = tmp_path_factory.mktemp("synthetic_mirror")
    data_dir, image_root = write_mirror(root, "small", seed=0)
    return MirrorPaths(root=root, data_dir=data_dir, image_root=image_root)


@pytest.fixture
def data_env(synthetic_mirror: MirrorPaths, monkeypatch: pytest.MonkeyPatch) -> MirrorPaths:
    """Select the shared mirror through the environment variables the tasks read."""
    monkeypatch.setenv(DATA_DIR_ENV, str(synthetic_mirror.data_dir))
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(synthetic_mirror.image_root))
    return synthetic_mirror


@pytest.fixture
def make_mirror(tmp_path: Path) -> Callable[..., MirrorPaths]:
    """Factory: ``make_mirror(rows="small", seed=0, file_format="jsonl", name="mirror")`` -> a private mirror."""

    def make(
        rows: int | Mapping[str, int] | str = "small", seed: int = 0, file_format: str = "jsonl", name: str = "mirror"
    ) -> MirrorPaths:
        root = tmp_path / name
        data_dir, image_root = write_mirror(root, rows, seed, file_format=file_format)
        return MirrorPaths(root=root, data_dir=data_dir, image_root=image_root)

    return make


@pytest.fixture
def task_manager() -> Callable[..., Any]:
    """Factory: ``task_manager(model_name=None)`` -> TaskManager over ``yaml_tasks/`` only (no built-ins)."""
    from lmms_eval.tasks import TaskManager

    from yaml_tasks import tasks_dir

    def make(model_name: str | None = None) -> Any:
        return TaskManager("WARNING", include_path=tasks_dir(), include_defaults=False, model_name=model_name)

    return make


@pytest.fixture(scope="session")
def builtin_task_index() -> dict[str, dict[str, Any]]:
    """lmms-eval's own task/group/tag index (its ``tasks/`` folder only, whatever hooks are installed)."""
    from pathlib import Path as _Path

    import lmms_eval.tasks
    from lmms_eval.tasks import TaskManager

    builtin_dir = str(_Path(lmms_eval.tasks.__file__).resolve().parent)
    manager = TaskManager("WARNING", include_path=builtin_dir, include_defaults=False)
    return dict(manager.task_index)
