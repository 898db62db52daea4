"""Shared pytest fixtures (tiny checkpoints, synthetic data) and the test layers.

The folders are the layers: ``unit/`` (no model), ``model/`` (tiny checkpoints in-process), ``e2e/``
(the real ``lmms-eval``, a subprocess or its ``simple_evaluate``, and training), with shared builders
and references in ``support/``. Every test under ``e2e/`` carries the ``e2e`` marker, as does each
end-to-end test that sits in a ``unit/`` or ``model/`` file beside the tests of what it runs; the fast
layer is ``pytest -m "not e2e"``. A test outside the e2e
layer that starts ``lmms-eval`` or the trainer in a subprocess fails, naming the marker it needs, so
the fast layer stays fast.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.support.model_fixtures", "tests.support.data_fixtures"]

E2E_MARKER = "e2e"
_E2E_COMMANDS = ("lmms-eval", "lmms_eval", "train_embedded_model")


def _spawns_end_to_end(args: object) -> str | None:
    words = [args] if isinstance(args, str) else [str(word) for word in args]  # type: ignore[union-attr]
    joined = " ".join(words)
    return next((name for name in _E2E_COMMANDS if name in joined), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "e2e":
            item.add_marker(getattr(pytest.mark, E2E_MARKER))


@pytest.fixture(autouse=True)
def _fast_layer_spawns_no_end_to_end_process(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker(E2E_MARKER) is not None:
        yield
        return
    original = subprocess.Popen

    class FastLayerPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, args, *rest, **kwargs):
            name = _spawns_end_to_end(args)
            if name is not None:
                raise AssertionError(
                    f"{request.node.nodeid} starts {name} in a subprocess but is not marked "
                    f"@pytest.mark.{E2E_MARKER}: mark it, or keep it out of the fast layer's way"
                )
            super().__init__(args, *rest, **kwargs)

    subprocess.Popen = FastLayerPopen
    try:
        yield
    finally:
        subprocess.Popen = original
