"""Run the real ``lmms-eval`` command in a subprocess and read what it wrote.

lmms-eval 0.7.3 exits 0 even when the evaluation fails, so a run counts as successful only when
its results JSON exists; :func:`run_lmms_eval` raises with the tail of the log otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LMMS_EVAL = shutil.which("lmms-eval", path=str(Path(sys.executable).parent)) or "lmms-eval"
VOLATILE_RESULT_KEYS = {
    "date",
    "start_time",
    "end_time",
    "total_evaluation_time_seconds",
    "throughput",
    "usage",
    "efficiency",
}
"""Result fields that are timestamps or timings: they legitimately differ between identical runs."""


@dataclass
class Run:
    results: dict
    samples: dict[str, list[dict]]
    log: str
    output_dir: Path

    def metric(self, task: str, name: str) -> float:
        return self.results["results"][task][f"{name},none"]

    def answers(self, task: str) -> dict[int, str]:
        """doc_id -> the model's answer as logged in the samples JSONL."""
        out = {}
        for sample in self.samples[task]:
            response = sample["filtered_resps"]
            out[sample["doc_id"]] = response if isinstance(response, str) else response[0]
        return out


def base_env(data_dir: Path | None = None, image_root: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    env["PYTHONHASHSEED"] = "0"
    if data_dir is not None:
        env["ADAPTVIS_DATA_DIR"] = str(data_dir)
    if image_root is not None:
        env["ADAPTVIS_IMAGE_ROOT"] = str(image_root)
    env.update(extra)
    return env


def lmms_eval_command(model: str, model_args: str, tasks: str, output_dir: Path, *extra: str) -> list[str]:
    return [
        LMMS_EVAL,
        "--model",
        model,
        "--model_args",
        model_args,
        "--tasks",
        tasks,
        "--output_path",
        str(output_dir),
        *extra,
    ]


def read_run(output_dir: Path, log: str = "") -> Run:
    results_files = sorted(output_dir.rglob("*_results.json"))
    if not results_files:
        raise AssertionError(f"lmms-eval wrote no results JSON under {output_dir}; log tail:\n{log[-4000:]}")
    results = json.loads(results_files[-1].read_text())
    samples = {}
    for path in sorted(output_dir.rglob("*_samples_*.jsonl")):
        task = path.stem.split("_samples_", 1)[1]
        samples[task] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return Run(results=results, samples=samples, log=log, output_dir=output_dir)


def run_lmms_eval(command: list[str], env: dict[str, str], output_dir: Path, timeout: int = 600) -> Run:
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    log = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {completed.returncode}:\n{log[-4000:]}")
    return read_run(output_dir, log)


def stable_results(results: dict) -> dict:
    """The results JSON without its timestamps and timings."""
    return {k: v for k, v in results.items() if k not in VOLATILE_RESULT_KEYS}
