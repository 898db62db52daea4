"""Every reference in README.md and docs/*.md resolves inside the repository or is a public URL.

Checked: markdown links (relative targets must exist, ``#anchors`` must be headings of the target),
every path into one of the repository's own folders (``model_wrappers/trace.py``,
``tests/unit/test_doctor.py::test_x``, ...), and that no doc or source file points outside the
repository (``shared/``, ``../``, ``/work/``; links between the docs' own folders excepted). Paths in
other repositories (the authors' ``model_zoo/llava15.py``) are not ours to check; the docs name their
repository next to them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
REPO_FOLDERS = ("adaptvis_tasks", "model_wrappers", "yaml_tasks", "tests", "docs", "benchmarks", "scripts")
REPO_FILES = ("Makefile", "pyproject.toml", "constraints.txt", "requirements.lock", "README.md", ".ci/run")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_REPO_PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(REPO_FOLDERS) + r")/[\w./:*<>{}-]*)")
_REPO_FILE = re.compile(r"`(" + "|".join(re.escape(name) for name in REPO_FILES) + r")`")
_OUTSIDE = re.compile(r"shared/|\.\./|/work/")
"""Checked after removing links between the docs' own folders (``../reference/TRACE.md``), which stay inside."""
_PUBLIC = ("https://", "http://", "mailto:")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def _stays_inside(doc: Path, target: str) -> bool:
    """A relative link whose target resolves to an existing path inside the repository."""
    if target.startswith(_PUBLIC):
        return False
    resolved = (doc.parent / target.partition("#")[0]).resolve()
    return resolved.exists() and ROOT in (resolved, *resolved.parents)


def broken_references(doc: Path, text: str) -> list[str]:
    """Every reference in ``text`` (the contents of ``doc``) that does not resolve, with the reason."""
    inside = _LINK.sub(lambda m: "" if _stays_inside(doc, m.group(1)) else m.group(0), text)
    problems = [f"points outside the repository: {m.group(0)!r}" for m in _OUTSIDE.finditer(inside)]
    for target in _LINK.findall(text):
        if target.startswith(_PUBLIC):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            problems.append(f"link target does not exist: {target}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"no heading for anchor: {target}")
    for raw in _REPO_PATH.findall(text):
        path = raw.split("::", 1)[0].rstrip(".,:;")
        if any(mark in path for mark in "*<>{}"):
            continue  # a pattern such as yaml_tasks/*/sources/<name>.json
        if not (ROOT / path).exists():
            problems.append(f"path does not exist: {raw}")
    problems += [f"file does not exist: {name}" for name in _REPO_FILE.findall(text) if not (ROOT / name).exists()]
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=[str(doc.relative_to(ROOT)) for doc in DOCS])
def test_every_reference_in_the_docs_resolves(doc: Path) -> None:
    assert broken_references(doc, doc.read_text(encoding="utf-8")) == []


def test_the_checker_catches_each_kind_of_broken_reference() -> None:
    readme = ROOT / "README.md"
    # Made-up references of each kind; none of them names a real file.
    text = (
        "See `shared/made-up-notes.md`, [x](../elsewhere.md), [y](docs/NOPE.md), "
        "[z](docs/guides/TASKS.md#no-such-heading), `model_wrappers/nope.py` and tests/unit/test_docs.py::test_ok.\n"
    )
    problems = broken_references(readme, text)
    assert problems == [
        "points outside the repository: 'shared/'",
        "points outside the repository: '../'",
        "link target does not exist: ../elsewhere.md",
        "link target does not exist: docs/NOPE.md",
        "no heading for anchor: docs/guides/TASKS.md#no-such-heading",
        "path does not exist: docs/NOPE.md",
        "path does not exist: model_wrappers/nope.py",
    ]
    fine = "[ok](docs/guides/TASKS.md#known-reference-quirks), [w](https://example.org/x)"
    assert broken_references(readme, fine) == []
    inner = ROOT / "docs" / "guides" / "TASKS.md"
    assert broken_references(inner, "[t](../reference/TRACE.md), [r](../../README.md)") == []
    assert broken_references(inner, "[o](../../../outside.md)") == [
        "points outside the repository: '../'",
        "points outside the repository: '../'",
        "points outside the repository: '../'",
        "link target does not exist: ../../../outside.md",
    ]


def test_no_source_file_points_outside_the_repository() -> None:
    sources = [
        path
        for pattern in ("*.py", "*.yaml", "*_yaml", "*.toml", "Makefile", "*.txt")
        for path in ROOT.rglob(pattern)
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts) and "egg-info" not in str(path)
    ]
    assert len(sources) > 50
    offending = [
        str(path.relative_to(ROOT))
        for path in sources
        if path != Path(__file__).resolve() and re.search(r"\.\./shared|/work/", path.read_text(encoding="utf-8"))
    ]
    assert offending == []
