"""Compare the packages installed in this Python environment with a pinned lock file.

    python scripts/lock_drift.py --lock requirements.lock           # print the differences, exit 0
    python scripts/lock_drift.py --lock requirements.lock --strict  # ... and exit 1 if there are any

Standard library only: it runs in any environment, before or after the suite's dependencies.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

IGNORED = {"pip", "adaptvis-eval"}
"""Not in the lock on purpose: pip is pinned by the Makefile, the suite itself is installed from the checkout."""

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """name -> pinned version for every `name==version` line; anything else that is not a comment fails."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a `name==version` pin: {raw!r} (regenerate it with `make lock`)")
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed() -> dict[str, str]:
    """name -> version of every distribution visible to this interpreter."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


@dataclass(frozen=True)
class Drift:
    name: str
    locked: str | None
    installed: str | None

    def __str__(self) -> str:
        if self.locked is None:
            return f"{self.name}: installed {self.installed}, not in the lock"
        if self.installed is None:
            return f"{self.name}: locked {self.locked}, not installed"
        return f"{self.name}: locked {self.locked}, installed {self.installed}"


def drift(lock: dict[str, str], present: dict[str, str]) -> list[Drift]:
    """Every package whose installed version differs from the lock, sorted by name."""
    names = (set(lock) | set(present)) - IGNORED
    return [
        Drift(name, lock.get(name), present.get(name)) for name in sorted(names) if lock.get(name) != present.get(name)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, required=True, help="the lock file (requirements.lock)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything differs")
    args = parser.parse_args(argv)
    try:
        lock = read_lock(args.lock)
    except (OSError, ValueError) as error:
        print(f"lock_drift: {error}", file=sys.stderr)
        return 2
    differences = drift(lock, installed())
    if not differences:
        print(f"lock_drift: all {len(lock)} locked packages installed at their locked versions, nothing else")
        return 0
    print(f"lock_drift: {len(differences)} package(s) differ from {args.lock}:")
    for item in differences:
        print(f"  {item}")
    if args.strict:
        print("lock_drift: this environment is not the locked one; rebuild it with `make clean test`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
