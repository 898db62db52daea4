"""The canary: does the suite still work with the newest releases its pyproject.toml allows?

`make canary` installs the package WITHOUT the lock into .venv-canary and runs this with that venv's
Python. It prints every package whose version differs from requirements.lock, runs the fast test
layer, then one real `lmms-eval` evaluation of the embedded model from an empty folder (so the
installed entry points and package data are what run). Any failure exits 1 and names the step and the
packages that differ from the lock: the candidates for the upstream release that broke the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lock_drift import drift, installed, read_lock

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FREEZE_TEST = "tests/test_lock.py::test_the_test_venv_is_exactly_the_lock"
"""Deselected here on purpose: this venv is unlocked by definition; its drift is printed instead."""
MIN_ACCURACY = 0.9
"""The embedded model's strict accuracy on the first rows of each subset is 0.99 with the lock."""


def run(step: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
    started = time.time()
    print(f"\ncanary [{step}]: {' '.join(command)}", flush=True)
    code = subprocess.call(command, cwd=cwd, env=env)
    print(f"canary [{step}]: exit {code} after {time.time() - started:.0f} s", flush=True)
    if code != 0:
        raise StepFailed(step, f"exit status {code}")


class StepFailed(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step


def evaluate_embedded(env: dict[str, str]) -> None:
    """The README's first lmms-eval command on the embedded model, from an empty folder."""
    checkpoint = subprocess.check_output([sys.executable, "-m", "model_wrappers.embedded"], text=True).strip()
    with tempfile.TemporaryDirectory(prefix="adaptvis-canary-") as folder:
        out = Path(folder) / "out"
        command = [
            str(BIN / "lmms-eval"),
            "--model",
            "llava_adaptvis",
            "--model_args",
            f"pretrained={checkpoint},device=cpu,method=adapt_vis,alpha1=0.5,alpha2=1.2,threshold=0.3",
            "--tasks",
            "whatsup_synthetic_test",
            "--limit",
            "32",
            "--batch_size",
            "16",
            "--output_path",
            str(out),
        ]
        run("lmms-eval on the embedded model", command, Path(folder), env)
        results = sorted(out.rglob("*_results.json"))
        if not results:
            raise StepFailed("lmms-eval on the embedded model", f"exit 0 but no results JSON under {out}")
        scores = json.loads(results[-1].read_text())["results"]
        accuracy = {task: row["accuracy,none"] for task, row in scores.items() if "accuracy,none" in row}
        print(f"canary: strict accuracy on the first 32 rows of each subset: {accuracy}")
        low = {task: value for task, value in accuracy.items() if value < MIN_ACCURACY}
        if not accuracy or low:
            raise StepFailed("lmms-eval on the embedded model", f"accuracy below {MIN_ACCURACY}: {low or accuracy}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument("--vocabulary", type=Path, help="the tests' Llama vocabulary tarball")
    parser.add_argument("--workers", type=int, default=2, help="pytest workers for the fast layer")
    args = parser.parse_args(argv)

    differences = drift(read_lock(args.lock), installed())
    print(f"canary: {len(differences)} package(s) differ from {args.lock.name}:")
    for item in differences:
        print(f"  {item}")

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    if args.vocabulary is not None:
        env["ADAPTVIS_LLAMA_TOKENIZER_JS"] = str(args.vocabulary.resolve())
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not e2e"]
    pytest += ["-n", str(args.workers), "--dist", "loadfile"] if args.workers > 0 else []
    pytest += ["--deselect", FREEZE_TEST]
    try:
        run("fast test layer", pytest, REPO, env)
        evaluate_embedded(env)
    except StepFailed as failure:
        print(f"\ncanary FAILED at {failure}", file=sys.stderr)
        print(
            "canary: the suite works with requirements.lock; these packages differ from it and are the "
            "candidates for the release that broke it:",
            file=sys.stderr,
        )
        for item in differences:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(f"\ncanary passed with {len(differences)} package(s) newer or other than the lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
