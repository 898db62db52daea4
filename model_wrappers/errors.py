"""Every error type the wrappers raise on bad input, in one leaf module (it imports nothing of the suite).

Modules that raise or catch these import them from here, so no module has to import another one
only for its exception class (the cause of import cycles).
"""

from __future__ import annotations


class MethodArgumentError(ValueError):
    """A method argument from ``--model_args`` (or the Python API) is missing or invalid."""


class CheckpointError(RuntimeError):
    """``pretrained=`` does not name a usable checkpoint for this wrapper."""
