"""The ``lmms_eval.models`` entry point's fixed address (pyproject.toml: ``model_wrappers.registry:model_manifests``).

Everything lives in ``model_wrappers.lmms_plugin``; this module only keeps the entry point
string (and installed environments' metadata) valid.
"""

from __future__ import annotations

from model_wrappers.lmms_plugin import MODEL_CLASSES, install_task_discovery, model_manifests

__all__ = ["MODEL_CLASSES", "install_task_discovery", "model_manifests"]
