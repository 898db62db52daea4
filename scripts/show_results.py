"""Print the metrics of the newest lmms-eval results JSON under a folder; fail if there is none.

lmms-eval 0.7.3 exits 0 even when an evaluation fails, so ``make demo`` calls this to turn a run
that wrote no results into a non-zero exit with the reason.

    python scripts/show_results.py .demo/results --task whatsup_controlled_a
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--task", required=True, help="task whose metrics must be present")
    args = parser.parse_args()
    files = sorted(args.results_dir.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        print(f"error: no *_results.json under {args.results_dir}: the evaluation failed (see the log above)")
        return 1
    results = json.loads(files[-1].read_text())
    metrics = results.get("results", {}).get(args.task)
    if not metrics:
        print(f"error: {files[-1]} has no results for task {args.task}")
        return 1
    print(f"results: {files[-1]}")
    samples = results.get("n-samples", {}).get(args.task, {})
    print(f"{args.task}: {samples.get('effective', '?')} documents")
    for key, value in sorted(metrics.items()):
        if key.endswith(",none") and "stderr" not in key:
            print(f"  {key.removesuffix(',none'):<18} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
