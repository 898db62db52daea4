"""The analysis tools on lmms-eval's spatial tasks: lmms-eval's own scoring, columns, categories."""

from __future__ import annotations

import pytest

from adaptvis_tasks.analysis.table import column_of
from adaptvis_tasks.analysis.tune import task_metric
from adaptvis_tasks.spatial import SpatialTaskError, TaskScoring, percent_factor
from tests.support.spatial_mirrors import threedsr


def _doc() -> dict:
    doc = dict(threedsr()["test"][0])
    doc.pop("image")  # traces keep only JSON columns
    return doc


def test_scoring_uses_lmms_evals_process_results_and_reported_metrics_only():
    scoring = TaskScoring("3dsrbench_val")
    doc = _doc()  # gold "A"
    values = scoring.process_results(doc, ["A"])
    assert set(values) == set(scoring.metrics) and "vanilla_accuracy" in values
    assert "flip_accuracy" not in values  # returned by process_results, not in 3dsrbench.yaml's metric_list
    assert scoring.correct(doc, "A") == 1.0 and scoring.correct(doc, "B") == 0.0
    assert scoring.aggregate_vanilla_accuracy([values["vanilla_accuracy"]]) == 1.0
    assert scoring.category(doc) == "height_higher"
    with pytest.raises(SpatialTaskError, match="not a supported"):
        TaskScoring("whatsup_controlled_a_val")


def test_table_columns_and_tune_metric_for_spatial_tasks():
    label, metrics, _ = column_of("3dsrbench_test")
    assert label == "3dsrbench_test" and metrics == (("vanilla_accuracy", "vanilla_accuracy"),)
    _, with_categories, _ = column_of("3dsrbench_test", per_category=True)
    assert ("height_accuracy", "height_accuracy") in with_categories and len(with_categories) > 10
    assert column_of("whatsup_controlled_a")[0] == "Controlled_A"
    assert task_metric("mmvp_val", "accuracy", ["mmvp_accuracy"]) == "mmvp_accuracy"
    assert task_metric("whatsup_controlled_a_val", "accuracy", ["accuracy"]) == "accuracy"
    assert percent_factor("vstar_bench_test") == 1.0 and percent_factor("cv_bench_test") == 100.0
