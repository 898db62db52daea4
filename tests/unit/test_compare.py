"""``adaptvis compare``: deltas, exact McNemar, paired bootstrap, Holm, flips and the CI gates.

Runs are hand-built lmms-eval output folders in the real layout (``<model>/<date>_results.json``
and ``<date>_samples_<task>.jsonl``), so every expected number can be computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaptvis_tasks.analysis import compare
from model_wrappers import cli

WHATSUP_METRICS = [
    {"metric": "accuracy", "aggregation": "mean", "higher_is_better": True},
    {
        "metric": "set_accuracy",
        "aggregation": "adaptvis_tasks.whatsup.aggregate_set_accuracy",
        "higher_is_better": True,
    },
]


def _write_run(
    root: Path,
    task: str,
    correct: list[int],
    *,
    answers: list[str] | None = None,
    date: str = "20260101_000000",
    metric_list=None,
    extra_samples=None,
    targets=None,
) -> Path:
    """A run folder whose samples log has ``accuracy`` = ``correct[i]`` for doc_id i."""
    folder = root / "model__x"
    folder.mkdir(parents=True, exist_ok=True)
    n = len(correct)
    results = {
        "results": {task: {"alias": task, "accuracy,none": sum(correct) / n, "accuracy_stderr,none": 0.1}},
        "configs": {task: {"metric_list": metric_list or WHATSUP_METRICS[:1]}},
        "higher_is_better": {task: {"accuracy": True}},
        "config": {"model": "llava_adaptvis", "model_args": "pretrained=x"},
    }
    (folder / f"{date}_results.json").write_text(json.dumps(results))
    lines = []
    for i, c in enumerate(correct):
        sample = {
            "doc_id": i,
            "target": (targets or ["Left"] * n)[i],
            "filtered_resps": [answers[i] if answers else ("Left" if c else "Right")],
            "input": f"question {i}",
            "accuracy": float(c),
            **((extra_samples or {}).get(i, {})),
        }
        lines.append(json.dumps(sample))
    (folder / f"{date}_samples_{task}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_exact_mcnemar_on_discordant_pairs_matches_the_binomial_by_hand(tmp_path):
    # 7 documents right only in run0, 1 right only in run1, 4 right in both, 3 wrong in both
    first = [1] * 7 + [0] + [1] * 4 + [0] * 3
    second = [0] * 7 + [1] + [1] * 4 + [0] * 3
    a = compare.load_run(_write_run(tmp_path / "a", "whatsup_controlled_a", first))
    b = compare.load_run(_write_run(tmp_path / "b", "whatsup_controlled_a", second))
    report = compare.compare([a, b], iterations=100, progress=False)
    [row] = report["rows"]
    assert row["test1"] == "mcnemar_exact"
    assert row["p1"] == pytest.approx(2 * (1 + 8) / 2**8)  # two-sided binomial, n = 8 discordant, k = 1
    assert row["detail1"]["b"] == 7 and row["detail1"]["c"] == 1
    assert row["delta1"] == pytest.approx((5 - 11) / 15)
    flips = report["flips"]["whatsup_controlled_a|1"]
    assert [f["doc_id"] for f in flips["lost"]] == list(range(7)) and [f["doc_id"] for f in flips["gained"]] == [7]
    assert flips["lost"][0] == {"doc_id": 0, "target": "Left", "first": "Left", "later": "Right"}


def test_paired_bootstrap_interval_and_p_value():
    # a constant difference: every resample gives it, so the interval is a point and p = 0
    p, low, high = compare.paired_bootstrap([0.2, 0.5, 0.1], [0.7, 1.0, 0.6], compare._mean, 500, seed=1)
    assert (low, high) == pytest.approx((0.5, 0.5)) and p == 0.0
    # against a straightforward loop with the same seeded draws
    first, second = [0.1, 0.9, 0.4, 0.3, 0.8], [0.3, 0.7, 0.4, 0.9, 0.8]
    p, low, high = compare.paired_bootstrap(first, second, compare._mean, 2000, seed=7)
    rng = np.random.default_rng(7)
    deltas = []
    for _ in range(2000):
        idx = rng.integers(0, 5, size=5)
        deltas.append(sum(second[j] - first[j] for j in idx) / 5)
    deltas = np.array(deltas)
    assert (low, high) == pytest.approx(tuple(np.quantile(deltas, [0.025, 0.975])))
    assert p == pytest.approx(min(1.0, 2 * min((deltas <= 0).mean(), (deltas >= 0).mean())))


def test_holm_correction_by_hand():
    assert compare.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert compare.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_aggregated_metrics_are_bootstrapped_with_the_tasks_own_aggregation(tmp_path):
    def record(i, c):
        return {
            "row": i,
            "image_path": f"data/controlled_images/a_{['left', 'right', 'on', 'under'][i % 4]}_b{i // 4}.jpeg",
            "subset": "Controlled_A",
            "correct": bool(c),
        }

    first, second = [1] * 8, [1] * 4 + [0] * 4
    extra_a = {i: {"set_accuracy": record(i, c)} for i, c in enumerate(first)}
    extra_b = {i: {"set_accuracy": record(i, c)} for i, c in enumerate(second)}
    a = compare.load_run(_write_run(tmp_path / "a", "t", first, metric_list=WHATSUP_METRICS, extra_samples=extra_a))
    b = compare.load_run(_write_run(tmp_path / "b", "t", second, metric_list=WHATSUP_METRICS, extra_samples=extra_b))
    for run, values in ((a, first), (b, second)):
        run.results["results"]["t"]["set_accuracy,none"] = 1.0 if sum(values) == 8 else 0.5
    report = compare.compare([a, b], iterations=200, progress=False)
    row = next(r for r in report["rows"] if r["metric"] == "set_accuracy")
    assert row["test1"] == "cluster_bootstrap" and row["delta1"] == -0.5
    # two object pairs; run1 lost the second set. Resampling the two pairs gives delta 0 (first pair
    # twice, prob 1/4), -1 (second twice, 1/4) or -0.5: the interval is [-1, 0], p = 2 * P(delta >= 0) = 1/2
    assert row["ci1"] == [-1.0, 0.0]
    assert row["p1"] == pytest.approx(0.5, abs=0.15)


def test_fail_below_gate_fails_on_a_regression_and_passes_on_identical_runs(tmp_path, capsys):
    good = _write_run(tmp_path / "good", "t", [1] * 10)
    same = _write_run(tmp_path / "same", "t", [1] * 10)
    worse = _write_run(tmp_path / "worse", "t", [1] * 8 + [0] * 2)
    assert cli.main(["compare", str(good), str(same), "--fail-below", "0", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["compare", str(good), str(worse), "--fail-below", "0.1", "--no-progress"]) == 1
    assert "is worse by 0.2000 (> --fail-below 0.1)" in capsys.readouterr().err
    assert cli.main(["compare", str(good), str(worse), "--fail-below", "0.25", "--no-progress"]) == 0


def test_fail_if_significant_gates_on_a_real_regression_only(tmp_path, capsys):
    base = _write_run(tmp_path / "base", "t", [1] * 20)
    much_worse = _write_run(tmp_path / "w", "t", [0] * 20)  # p = 2 * 0.5**20
    slightly_worse = _write_run(tmp_path / "s", "t", [1] * 19 + [0])  # p = 1
    assert cli.main(["compare", str(base), str(slightly_worse), "--fail-if-significant", "--no-progress"]) == 0
    capsys.readouterr()
    assert (
        cli.main(["compare", str(base), str(much_worse), "--fail-if-significant", "--no-progress", "--format", "json"])
        == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert report["rows"][0]["p_holm1"] == pytest.approx(2 * 0.5**20)


def test_builtin_style_samples_with_other_metric_names_are_tested(tmp_path):
    # GQA logs exact_match per document; POPE logs records that its own functions aggregate
    gqa = [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]
    a_root = _write_run(
        tmp_path / "a",
        "gqa",
        [1, 1, 1, 0],
        metric_list=gqa,
        extra_samples={i: {"exact_match": v} for i, v in enumerate([1.0, 1.0, 1.0, 0.0])},
    )
    b_root = _write_run(
        tmp_path / "b",
        "gqa",
        [1, 0, 0, 0],
        metric_list=gqa,
        extra_samples={i: {"exact_match": v} for i, v in enumerate([1.0, 0.0, 0.0, 0.0])},
    )
    runs = [compare.load_run(a_root), compare.load_run(b_root)]
    for run, value in zip(runs, (0.75, 0.25), strict=True):
        run.results["results"]["gqa"] = {"exact_match,none": value}
    report = compare.compare(runs, iterations=100, progress=False)
    row = next(r for r in report["rows"] if r["metric"] == "exact_match")
    assert row["test1"] == "mcnemar_exact" and row["p1"] == pytest.approx(0.5)  # 2 discordant, both one way


def test_runs_of_different_documents_are_refused(tmp_path, capsys):
    a = _write_run(tmp_path / "a", "t", [1, 0, 1])
    b = _write_run(tmp_path / "b", "t", [1, 0, 1, 1])
    assert cli.main(["compare", str(a), str(b), "--no-progress"]) == 2
    assert "the samples are for different documents" in capsys.readouterr().err
    c = _write_run(tmp_path / "c", "t", [1, 0, 1], targets=["Left", "Right", "On"])
    assert cli.main(["compare", str(a), str(c), "--no-progress"]) == 2
    assert "doc_id 1: the runs logged different targets" in capsys.readouterr().err
    _write_run(tmp_path / "a", "t", [1, 0, 1], date="20260202_000000")
    assert cli.main(["compare", str(tmp_path / "a"), str(b)]) == 2
    assert "holds 2 results files; pass one of them" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# The fast bootstrap against the straightforward one (tests/support/bootstrap_reference.py)
# ----------------------------------------------------------------------------------------------


def _controlled_records(rng, pairs: int, subset: str = "Controlled_A", p_correct: float = 0.7) -> list[dict]:
    relations = ("left", "right", "on", "under") if subset.endswith("A") else ("left", "right", "in-front", "behind")
    records = []
    for pair in range(pairs):
        # an incomplete set now and then, as the 80% test split leaves
        kept = [r for r in relations if rng.random() > 0.15] or [relations[0]]
        for relation in kept:
            records.append(
                {
                    "row": len(records),
                    "image_path": f"data/controlled_images/mug{pair}_{relation}_table{pair}.jpeg",
                    "subset": subset,
                    "correct": bool(rng.random() < p_correct),
                }
            )
    return records


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fast_cluster_bootstrap_equals_the_aggregation_called_on_every_resample(seed):
    from adaptvis_tasks import whatsup
    from tests.support.bootstrap_reference import reference_bootstrap, reference_deltas

    rng = np.random.default_rng(100 + seed)
    first = _controlled_records(rng, pairs=6 + seed)
    second = [{**r, "correct": bool(rng.random() < 0.5)} for r in first]
    clusters = [compare.controlled_cluster(r) for r in first]
    for aggregation in (whatsup.aggregate_pair_accuracy, whatsup.aggregate_set_accuracy):
        fast = compare.paired_bootstrap(first, second, aggregation, 300, seed, clusters=clusters)
        slow = reference_bootstrap(first, second, aggregation, 300, seed, clusters=clusters)
        assert fast[0] == slow[0] and fast[1:] == pytest.approx(slow[1:], abs=1e-12)
        # and resample by resample: the per-unit values reproduce the aggregation exactly
        checks = np.concatenate(list(compare._draws(seed, len(set(clusters)), 300)))
        groups: dict = {}
        for index, key in enumerate(clusters):
            groups.setdefault(key, []).append(index)
        parts = compare._additive_parts(
            first, second, aggregation, list(groups.values()), checks, compare._cluster_copy
        )
        assert parts is not None
        differences, weights = parts
        fast_deltas = np.round(differences[checks].sum(axis=1) / weights[checks].sum(axis=1), 12)
        assert np.array_equal(fast_deltas, reference_deltas(first, second, aggregation, 300, seed, clusters))


def test_a_statistic_that_is_not_a_mean_over_units_is_called_on_every_resample(capsys):
    from tests.support.bootstrap_reference import reference_bootstrap

    def f1(records):  # positive-class F1: not a size-weighted mean of per-document values
        tp = sum(1 for label, correct in records if label == 1 and correct)
        fn = sum(1 for label, correct in records if label == 1 and not correct)
        fp = sum(1 for label, correct in records if label == 0 and not correct)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    rng = np.random.default_rng(5)
    first = [(int(rng.random() < 0.5), bool(rng.random() < 0.8)) for _ in range(40)]
    second = [(label, bool(rng.random() < 0.6)) for label, _ in first]
    groups = [[i] for i in range(len(first))]
    checks = np.concatenate(list(compare._draws(3, len(first), 8)))
    assert compare._additive_parts(first, second, f1, groups, checks, compare._no_copy) is None
    assert compare.paired_bootstrap(first, second, f1, 400, 3) == pytest.approx(
        reference_bootstrap(first, second, f1, 400, 3)
    )
    capsys.readouterr()
    compare.paired_bootstrap(first, second, f1, 400, 3, progress=True)  # the slow path shows a progress bar
    assert "bootstrap" in capsys.readouterr().err
    values = [float(correct) for _, correct in first]
    compare.paired_bootstrap(values, values[::-1], compare._mean, 400, 3, progress=True)  # the fast path: no bar
    assert "bootstrap" not in capsys.readouterr().err


def test_mean_bootstrap_equals_the_reference_loop():
    from tests.support.bootstrap_reference import reference_bootstrap

    rng = np.random.default_rng(9)
    first, second = list(rng.random(30)), list(rng.random(30))
    fast = compare.paired_bootstrap(first, second, compare._mean, 1000, 4)
    slow = reference_bootstrap(first, second, compare._mean, 1000, 4)
    assert fast[0] == slow[0] and fast[1:] == pytest.approx(slow[1:], abs=1e-12)


def test_flipped_documents_name_both_runs_and_show_the_target(tmp_path):
    a = compare.load_run(_write_run(tmp_path / "a", "t", [1, 1, 0], targets=["Left", "On", "Under"]))
    b = compare.load_run(_write_run(tmp_path / "b", "t", [0, 1, 1], targets=["Left", "On", "Under"]))
    text = compare.render(compare.compare([a, b], iterations=50, progress=False), "markdown")
    assert f"run0 = `{a.name}`; run1 = `{b.name}`" in text
    assert "- lost, right in run0, wrong in run1 (1): doc 0 (target 'Left'): 'Left' -> 'Right'" in text
    assert "- gained, wrong in run0, right in run1 (1): doc 2 (target 'Under'): 'Right' -> 'Left'" in text


def test_exact_binomial_equals_scipy_binomtest():
    from scipy.stats import binomtest

    for n in range(0, 41):
        for k in range(n + 1):
            expected = 1.0 if n == 0 else binomtest(k, n, 0.5, alternative="two-sided").pvalue
            assert compare.binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-12, abs=1e-300), (k, n)
    assert compare.binomial_two_sided(3, 1000) == pytest.approx(binomtest(3, 1000, 0.5).pvalue, rel=1e-9)
