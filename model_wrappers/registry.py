"""lmms-eval registration: model manifests (entry point) and discovery of this suite's tasks.

lmms-eval 0.7.3 loads the ``lmms_eval.models`` entry points when ``lmms_eval.models`` is first
imported -- before any ``TaskManager`` is built -- but has no hook for plugin tasks (its
``LMMS_EVAL_PLUGINS`` variable adds task folders only after the index is built). So the entry
point, besides returning the manifests, makes ``TaskManager`` index ``yaml_tasks/`` after
lmms-eval's own folder: :func:`install_task_discovery`. It wraps one method, once, and only
appends a folder; built-in task names keep winning, exactly as with ``--include_path``.
``tests/test_registration.py`` fails if a future lmms-eval changes what this relies on.

The same hook installs the failure exit (:func:`model_wrappers.guards.install_failure_exit`): when
the CLI builds its ``TaskManager``, lmms-eval's evaluator module is fully imported and its
``simple_evaluate`` not yet called, so failed runs of this suite's models and tasks exit 1 instead
of lmms-eval 0.7.3's 0. The entry point also makes unknown ``--tasks`` names in this suite's runs
exit 1 (:func:`model_wrappers.guards.install_unknown_task_exit`).
"""

from __future__ import annotations

import functools

from model_wrappers.guards import install_failure_exit, install_unknown_task_exit
from yaml_tasks import tasks_dir

MODEL_CLASSES = {
    "llava_adaptvis": "model_wrappers.llava.LlavaAdaptVis",
    "qwen2_vl_adaptvis": "model_wrappers.qwen2_vl.Qwen2VLAdaptVis",
}

_MARKER = "__adaptvis_task_discovery__"


def install_task_discovery() -> bool:
    """Make every default ``TaskManager`` also index ``yaml_tasks/``; idempotent.

    Returns True when the hook is (now) installed.
    """
    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    if getattr(original, _MARKER, False):
        return True

    @functools.wraps(original)
    def initialize_tasks(self, include_path=None, include_defaults=True):
        install_failure_exit()
        if include_defaults:
            paths = (
                [] if include_path is None else [include_path] if isinstance(include_path, str) else list(include_path)
            )
            if tasks_dir() not in paths:
                paths.append(tasks_dir())
            include_path = paths
        return original(self, include_path=include_path, include_defaults=include_defaults)

    setattr(initialize_tasks, _MARKER, True)
    TaskManager.initialize_tasks = initialize_tasks
    return True


def model_manifests():
    """Entry point of group ``lmms_eval.models``: this suite's model manifests."""
    from lmms_eval.models.registry_v2 import ModelManifest

    install_task_discovery()
    install_unknown_task_exit()
    from adaptvis_tasks.spatial import install_dataset_mirror

    install_dataset_mirror()  # ADAPTVIS_LMMS_DATA_DIR: local copies of lmms-eval tasks' datasets
    from model_wrappers.provenance import install_results_provenance

    install_results_provenance()  # results["adaptvis_eval"]: suite version/commit, package versions
    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODEL_CLASSES.items()]
