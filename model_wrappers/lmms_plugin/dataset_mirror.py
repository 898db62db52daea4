"""Local copies of lmms-eval tasks' datasets (``ADAPTVIS_LMMS_DATA_DIR``), for clusters without internet.

:func:`install_dataset_mirror` wraps lmms-eval 0.7.3's ``ConfigurableTask.download`` (once;
installed by the model entry point, like the other patches of this package). When
``$ADAPTVIS_LMMS_DATA_DIR/<dataset_path>/<dataset_name or default>/`` exists (a
``DatasetDict.save_to_disk`` folder), the task loads it through lmms-eval's own
``load_from_disk`` branch of ``download``; every other task loads as usual. It relies on
``ConfigurableTask.DATASET_PATH``/``DATASET_NAME`` and on ``download`` honouring
``dataset_kwargs={"load_from_disk": True}`` by calling ``datasets.load_from_disk(DATASET_PATH)``
(pinned by tests/unit/test_registration.py). docs/guides/TASKS.md ("Local mirrors") is the user guide.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

MIRROR_ENV = "ADAPTVIS_LMMS_DATA_DIR"
"""Root of local dataset copies: ``<root>/<dataset_path>/<dataset_name or default>/`` (``save_to_disk``)."""

_MARKER = "__adaptvis_dataset_mirror__"


def mirror_folder(root: str | os.PathLike[str], dataset_path: str, dataset_name: str | None) -> Path:
    """Where a local copy of ``dataset_path`` (config ``dataset_name``) lives under ``root``."""
    return Path(root) / dataset_path / (dataset_name or "default")


def install_dataset_mirror() -> bool:
    """Make lmms-eval tasks read ``$ADAPTVIS_LMMS_DATA_DIR/<dataset_path>/<name>/`` when it is set; idempotent.

    Only tasks whose copy exists are redirected (through lmms-eval's own ``load_from_disk`` path);
    the others load as usual. With the variable set and a copy missing, lmms-eval goes to the hub
    as always (which fails offline with its own message naming the dataset). Returns True when the
    hook is (now) installed.
    """
    from lmms_eval.api.task import ConfigurableTask

    original = ConfigurableTask.download
    if getattr(original, _MARKER, False):
        return True

    @functools.wraps(original)
    def download(self, dataset_kwargs=None) -> None:
        root = os.environ.get(MIRROR_ENV)
        if root and isinstance(self.DATASET_PATH, str):
            folder = mirror_folder(root, self.DATASET_PATH, self.DATASET_NAME)
            if folder.is_dir():
                hub_path = self.DATASET_PATH
                self.DATASET_PATH = str(folder)
                try:
                    return original(self, dataset_kwargs={"load_from_disk": True})
                finally:
                    self.DATASET_PATH = hub_path
        return original(self, dataset_kwargs)

    setattr(download, _MARKER, True)
    ConfigurableTask.download = download
    return True
