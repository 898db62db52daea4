"""Cost of ``adaptvis compare`` on two real runs, and its bootstrap against the per-resample definition.

Two measurements in one process, on the same two lmms-eval output folders (by default the main
job's baseline and AdaptVis runs, 330 + 327 documents):

1. the whole ``adaptvis compare`` (``compare.compare`` with the default 10,000 resamples): load,
   McNemar tests, the cluster bootstraps of pair/set accuracy, Holm, flips;
2. every cluster-bootstrapped metric twice at ``--reference-iterations`` resamples: the fast path
   (``compare.paired_bootstrap``) and the straightforward loop that calls the task's aggregation on
   every resample (``tests/support/bootstrap_reference.py``), in alternating order, ``--rounds`` times;
   the ratio is paired per round. p-values must be equal and intervals equal within 1e-12.

    python benchmarks/bench_compare.py results/main_job/baseline results/main_job/adapt_vis_ab
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptvis_tasks.analysis import compare
from tests.support.bootstrap_reference import reference_bootstrap


def cluster_cases(first: compare.RunFiles, later: compare.RunFiles) -> list[tuple[str, str, list, list, list, object]]:
    """(task, metric, values run0, values run1, clusters, aggregation) of every cluster-bootstrapped metric."""
    cases = []
    for task, metric in first.metrics():
        paired = compare.paired_samples(first, later, task)
        aggregation = compare.resolve_aggregation(first, task, metric)
        if paired is None or aggregation is None or aggregation is compare._mean:
            continue
        doc_ids, a, b = paired
        va, vb = [a[d][metric] for d in doc_ids], [b[d][metric] for d in doc_ids]
        clusters = [compare.controlled_cluster(v) for v in va]
        if all(c is not None for c in clusters):
            cases.append((task, metric, va, vb, clusters, aggregation))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs=2, type=Path, help="two lmms-eval output folders with samples logs")
    parser.add_argument("--iterations", type=int, default=10_000, help="resamples of the whole compare (default)")
    parser.add_argument("--reference-iterations", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [compare.load_run(path) for path in args.runs]

    started = time.perf_counter()
    report = compare.compare(runs, args.iterations, seed=0, progress=False)
    whole = time.perf_counter() - started
    documents = {row["detail1"].get("n") for row in report["rows"] if row["metric"] == "accuracy"}
    print(
        f"adaptvis compare, {args.iterations} resamples, {len(report['rows'])} task x metric rows "
        f"({'+'.join(str(n) for n in sorted(documents))} documents): {whole:.2f} s"
    )

    cases = cluster_cases(*runs)
    print(f"\n{len(cases)} cluster-bootstrapped metrics, {args.reference_iterations} resamples, {args.rounds} rounds:")
    print("| task | metric | fast s | reference s | reference / fast | same p, CI |")
    print("|---|---|---:|---:|---:|---|")
    for task, metric, va, vb, clusters, aggregation in cases:
        fast_times, slow_times, ratios = [], [], []
        for round_index in range(args.rounds):
            order = ("fast", "slow") if round_index % 2 == 0 else ("slow", "fast")
            timed = {}
            for which in order:
                begin = time.perf_counter()
                if which == "fast":
                    fast = compare.paired_bootstrap(
                        va, vb, aggregation, args.reference_iterations, 0, clusters=clusters
                    )
                else:
                    slow = reference_bootstrap(va, vb, aggregation, args.reference_iterations, 0, clusters=clusters)
                timed[which] = time.perf_counter() - begin
            fast_times.append(timed["fast"])
            slow_times.append(timed["slow"])
            ratios.append(timed["slow"] / timed["fast"])
        same = fast[0] == slow[0] and all(abs(x - y) <= 1e-12 for x, y in zip(fast[1:], slow[1:], strict=True))
        print(
            f"| {task} | {metric} | {statistics.median(fast_times):.3f} | {statistics.median(slow_times):.2f} | "
            f"{statistics.median(ratios):.0f}x | {'yes' if same else 'NO'} |"
        )
        if not same:
            print(f"  fast {fast} != reference {slow}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
