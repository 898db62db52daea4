"""Everything that patches or plugs into lmms-eval 0.7.3, in one package (its most fragile surface).

* :func:`model_manifests` -- the ``lmms_eval.models`` entry point (declared in pyproject.toml
  as ``model_wrappers.registry:model_manifests``, a re-export of this function): returns this
  suite's model manifests (``models.MODEL_CLASSES``) and installs the patches below, once.
* ``task_discovery`` -- wraps ``TaskManager.initialize_tasks`` so ``yaml_tasks/`` is indexed.
* ``failure_exit`` -- wraps ``evaluator.simple_evaluate`` (failed runs exit 1, not 0) and
  ``TaskManager.match_tasks`` (unknown ``--tasks`` exit 1 with close matches).
* ``dataset_mirror`` -- wraps ``ConfigurableTask.download`` so a task reads a local copy of its
  dataset under ``$ADAPTVIS_LMMS_DATA_DIR`` when one exists (docs/guides/TASKS.md, "Local mirrors").
* ``provenance`` -- wraps ``EvaluationTracker.save_results_aggregated`` to add
  ``results["adaptvis_eval"]``.

Each patch is pinned by a test (tests/unit/test_registration.py, tests/model/test_failures.py,
tests/unit/test_table.py); docs/reference/LMMS_EVAL_INTERNALS.md lists every lmms-eval internal the suite touches.
"""

from __future__ import annotations

from model_wrappers.lmms_plugin.dataset_mirror import install_dataset_mirror
from model_wrappers.lmms_plugin.failure_exit import install_unknown_task_exit
from model_wrappers.lmms_plugin.models import MODEL_CLASSES
from model_wrappers.lmms_plugin.provenance import install_results_provenance
from model_wrappers.lmms_plugin.task_discovery import install_task_discovery


def model_manifests():
    """Entry point of group ``lmms_eval.models``: this suite's model manifests (installs the patches)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    install_task_discovery()
    install_unknown_task_exit()
    install_dataset_mirror()  # ADAPTVIS_LMMS_DATA_DIR: local copies of lmms-eval tasks' datasets
    install_results_provenance()  # results["adaptvis_eval"]: suite version/commit, package versions
    return [ModelManifest(model_id=name, simple_class_path=path) for name, path in MODEL_CLASSES.items()]


__all__ = ["MODEL_CLASSES", "install_task_discovery", "model_manifests"]
