"""A straightforward paired (cluster) bootstrap: the task's aggregation function called on every resample.

The definition that ``adaptvis_tasks.analysis.compare.paired_bootstrap``'s fast path must reproduce:
one ``rng.integers(0, units, size=units)`` draw per resample (units = documents, or clusters), the
drawn units' records concatenated in draw order (a cluster's ``k``-th draw tagged as copy ``k``),
``statistic(second) - statistic(first)`` per resample, then percentile interval and two-sided p.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adaptvis_tasks.analysis.compare import _cluster_copy


def reference_deltas(
    first: Sequence[Any],
    second: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float],
    iterations: int,
    seed: int,
    clusters: Sequence[Any] | None = None,
) -> np.ndarray:
    """Every resample's difference, by calling ``statistic`` on each resample."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        groups = [[i] for i in range(len(first))]
    else:
        members: dict[Any, list[int]] = {}
        for index, key in enumerate(clusters):
            members.setdefault(key, []).append(index)
        groups = list(members.values())
    deltas = []
    for _ in range(iterations):
        drawn = rng.integers(0, len(groups), size=len(groups))
        sample_a, sample_b = [], []
        for copy, unit in enumerate(drawn):
            for j in groups[unit]:
                sample_a.append(_cluster_copy(first[j], copy) if clusters is not None else first[j])
                sample_b.append(_cluster_copy(second[j], copy) if clusters is not None else second[j])
        deltas.append(statistic(sample_b) - statistic(sample_a))
    return np.round(np.array(deltas), 12)


def reference_bootstrap(
    first: Sequence[Any],
    second: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float],
    iterations: int,
    seed: int,
    clusters: Sequence[Any] | None = None,
) -> tuple[float, float, float]:
    """(p, CI low, CI high) of the straightforward bootstrap (95% percentile interval)."""
    deltas = reference_deltas(first, second, statistic, iterations, seed, clusters)
    low, high = np.quantile(deltas, [0.025, 0.975])
    p = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return p, float(low), float(high)
