"""A marker for the functions task YAML references, giving them a stable text form.

lmms-eval writes ``str(callable)`` of every task function into each results JSON (its
``configs`` section). A plain function prints as ``<function doc_to_text at 0x7f...>``, an address
that changes from run to run, so two runs of the same command would not write identical results.
Wrapped with :func:`yaml_function`, the function prints as its import path
(``adaptvis_tasks.whatsup.doc_to_text``) and otherwise behaves exactly as before (same call,
same signature for ``inspect.signature``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class YamlFunction:
    """A callable that delegates to a function and prints as that function's import path."""

    def __init__(self, function: Callable[..., Any]) -> None:
        functools.update_wrapper(self, function)
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self._function.__module__}.{self._function.__qualname__}"

    __str__ = __repr__


def yaml_function(function: Callable[..., Any]) -> YamlFunction:
    """Decorate a function that task YAML references with ``!function``."""
    return YamlFunction(function)
