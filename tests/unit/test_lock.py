"""The installation: a complete lock for the tested environment, the declared bounds, and the message
a user sees when a dependency release breaks an import inside lmms-eval."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from model_wrappers.lmms_plugin.failure_exit import INSTALL_DOCS, explain_failure

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
sys.path.insert(0, str(REPO / "scripts"))
import lock_drift  # noqa: E402


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [item for group in project["optional-dependencies"].values() for item in group]
    return [Requirement(item) for item in [*project["dependencies"], *extras]]


def test_the_test_venv_is_exactly_the_lock():
    """`pip freeze` of this venv (less pip and the suite itself) equals requirements.lock."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lock_drift.py"), "--lock", str(LOCK), "--strict"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_declared_dependency_is_locked_at_a_version_it_allows():
    lock = lock_drift.read_lock(LOCK)
    for requirement in _dependencies():
        name = lock_drift.canonical(requirement.name)
        assert name in lock, f"{requirement} is declared in pyproject.toml but not in requirements.lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), f"lock has {name}=={lock[name]}"


def test_filelock_releases_without_the_module_lmms_eval_imports_are_excluded():
    (filelock,) = [r for r in _dependencies() if r.name == "filelock"]
    assert not filelock.specifier.contains("4.3.0") and not filelock.specifier.contains("4.3.2")
    assert filelock.specifier.contains("4.2.12")


def test_the_lock_keeps_the_torch_release_of_the_ci_machines():
    pins = lock_drift.read_lock(REPO / "constraints.txt")
    lock = lock_drift.read_lock(LOCK)
    assert (lock["torch"], lock["torchvision"]) == (pins["torch"], pins["torchvision"])


def test_drift_lists_changed_missing_and_extra_packages_by_name():
    found = lock_drift.drift({"a": "1.0", "b": "2.0", "c": "3.0"}, {"a": "1.0", "b": "2.1", "d": "4.0", "pip": "9"})
    assert [str(item) for item in found] == [
        "b: locked 2.0, installed 2.1",
        "c: locked 3.0, not installed",
        "d: installed 4.0, not in the lock",
    ]


def test_a_lock_line_that_is_not_a_pin_is_refused_with_file_and_line(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# comment\nfoo==1.0\nbar>=2\n")
    with pytest.raises(ValueError, match=r"requirements.lock:3: not a `name==version` pin: 'bar>=2'"):
        lock_drift.read_lock(lock)


def test_an_import_error_inside_a_dependency_names_the_package_its_version_and_the_install_docs(tmp_path):
    """As lmms-eval 0.7.3's evaluator importing `filelock._api` under filelock 4.3 does."""
    package = tmp_path / "site-packages" / "someimporter"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "evaluator.py").write_text("def run():\n    import filelock._no_such_module\n")
    sys.path.insert(0, str(tmp_path / "site-packages"))
    try:
        with pytest.raises(ModuleNotFoundError) as caught:
            importlib.import_module("someimporter.evaluator").run()
    finally:
        sys.path.remove(str(tmp_path / "site-packages"))
        sys.modules.pop("someimporter.evaluator", None)
        sys.modules.pop("someimporter", None)
    try:
        raise RuntimeError("evaluation failed") from caught.value
    except RuntimeError as error:
        message = explain_failure(error)
    version = metadata.version("filelock")
    assert Version(version)  # the installed release is named as installed
    assert f"in someimporter.evaluator: 'filelock._no_such_module' is not in the installed filelock {version}" in (
        message
    )
    assert "pip install -r requirements.lock" in message and INSTALL_DOCS in message
    assert (REPO / INSTALL_DOCS.split()[0]).is_file()
