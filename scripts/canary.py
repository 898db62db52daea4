"""The canary: does the suite still work with the newest releases its pyproject.toml allows?

`make canary` installs the package WITHOUT the lock into .venv-canary and runs this with that venv's
Python. It prints every package whose version differs from requirements.lock, runs the fast test
layer, then one real `lmms-eval` evaluation of the embedded model from an empty folder (so the
installed entry points and package data are what run), and the same evaluation in the locked venv,
so that the two accuracies and answers can be compared. Any failure exits 1 and names the step and the
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
FREEZE_TEST = "tests/unit/test_lock.py::test_the_test_venv_is_exactly_the_lock"
"""Deselected here on purpose: this venv is unlocked by definition; its drift is printed instead."""
LIMIT = 32
"""Rows per subset in the canary's evaluation."""
TOLERANCE = 2 / LIMIT
"""How far the canary's accuracy may move from the locked environment's on the same rows (two documents)."""


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


def evaluate_embedded(bin_dir: Path, env: dict[str, str], label: str) -> tuple[dict[str, float], dict]:
    """The README's first lmms-eval command on the embedded model, from an empty folder.

    Returns (strict accuracy per task, doc id -> answer per task).
    """
    python = bin_dir / "python"
    checkpoint = subprocess.check_output([str(python), "-m", "model_wrappers.embedded"], text=True, env=env).strip()
    with tempfile.TemporaryDirectory(prefix="adaptvis-canary-") as folder:
        out = Path(folder) / "out"
        command = [
            str(bin_dir / "lmms-eval"),
            "--model",
            "llava_adaptvis",
            "--model_args",
            f"pretrained={checkpoint},device=cpu,method=adapt_vis,alpha1=0.5,alpha2=1.2,threshold=0.3",
            "--tasks",
            "whatsup_synthetic_test",
            "--limit",
            str(LIMIT),
            "--batch_size",
            "16",
            "--output_path",
            str(out),
            "--log_samples",
        ]
        step = f"lmms-eval on the embedded model ({label})"
        run(step, command, Path(folder), env)
        results = sorted(out.rglob("*_results.json"))
        if not results:
            raise StepFailed(step, f"exit 0 but no results JSON under {out}")
        scores = json.loads(results[-1].read_text())["results"]
        accuracy = {task: row["strict_accuracy,none"] for task, row in scores.items() if "strict_accuracy,none" in row}
        answers = {}
        for samples in out.rglob("*_samples_*.jsonl"):
            task = samples.name.split("_samples_")[1].removesuffix(".jsonl")
            rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
            answers[task] = {row["doc_id"]: row["filtered_resps"] for row in rows}
        if not accuracy:
            raise StepFailed(step, f"no strict_accuracy in {results[-1]}")
        return accuracy, answers


def compare_with_lock(reference_bin: Path, env: dict[str, str]) -> None:
    """The same evaluation in the locked venv and here: accuracies within TOLERANCE, differing answers named."""
    locked, locked_answers = evaluate_embedded(reference_bin, env, "locked venv")
    unlocked, unlocked_answers = evaluate_embedded(BIN, env, "this venv")
    print(f"canary: strict accuracy on the first {LIMIT} rows of each subset: locked {locked}, here {unlocked}")
    for task, answers in unlocked_answers.items():
        differing = sorted(doc for doc, answer in answers.items() if locked_answers.get(task, {}).get(doc) != answer)
        print(f"canary: {task}: {len(differing)} of {len(answers)} answers differ from the locked venv's {differing}")
    moved = {task: (locked.get(task), value) for task, value in unlocked.items()}
    off = {task: pair for task, pair in moved.items() if pair[0] is None or abs(pair[1] - pair[0]) > TOLERANCE}
    if off or set(locked) != set(unlocked):
        raise StepFailed(
            "lmms-eval on the embedded model", f"accuracy (locked, here) moved by more than {TOLERANCE}: {off}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=REPO / "requirements.lock")
    parser.add_argument("--vocabulary", type=Path, help="the tests' Llama vocabulary tarball")
    parser.add_argument("--workers", type=int, default=2, help="pytest workers for the fast layer")
    parser.add_argument("--reference-bin", type=Path, required=True, help="bin/ of the locked venv (.venv/bin)")
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
        compare_with_lock(args.reference_bin.resolve(), env)
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
