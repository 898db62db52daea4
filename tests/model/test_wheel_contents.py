"""The wheel ships the product only: no test builders, vocabularies, reference encoders or tests.

The file list is computed the way setuptools builds it -- ``find_packages`` with the
``[tool.setuptools.packages.find]`` configuration of pyproject.toml, every ``.py`` module of
those packages, plus the ``package-data`` globs -- without running a build.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
TEST_BUILDERS = ("tiny_checkpoints", "llama_vocabulary", "spm_reference", "original_llava", "token_corpus")
"""Modules that build test checkpoints or hold the tests' vocabulary and reference encoders."""


def wheel_files() -> list[str]:
    """Repository-relative paths of every file the wheel would contain."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    find = config["packages"]["find"]
    packages = find_packages(where=str(ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    files: set[str] = set()
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        files.update(str(p.relative_to(ROOT)) for p in folder.glob("*.py"))
        for pattern in config.get("package-data", {}).get(package, ()):
            files.update(str(p.relative_to(ROOT)) for p in folder.glob(pattern) if p.is_file())
    return sorted(files)


def test_the_wheel_holds_the_product_packages():
    files = wheel_files()
    for expected in (
        "model_wrappers/base.py",
        "model_wrappers/methods/registry.py",
        "model_wrappers/families/llava15.py",
        "model_wrappers/lmms_plugin/__init__.py",
        "adaptvis_tasks/families.py",
        "yaml_tasks/__init__.py",
    ):
        assert expected in files


def test_the_wheel_ships_no_test_builders_or_tests():
    files = wheel_files()
    assert not [f for f in files if f.split("/")[0] in ("tests", "scripts", "benchmarks")]
    shipped_names = {Path(f).stem for f in files}
    assert not shipped_names & set(TEST_BUILDERS)


def test_no_shipped_module_or_script_imports_the_tests():
    sources = [ROOT / f for f in wheel_files() if f.endswith(".py")] + sorted((ROOT / "scripts").glob("*.py"))
    offenders = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name == "tests" or name.startswith("tests.") for name in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
