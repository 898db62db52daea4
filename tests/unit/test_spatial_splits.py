"""The 20%/80% split of lmms-eval's spatial tasks against a straightforward re-implementation."""

from __future__ import annotations

import hashlib
import json
import random

import datasets
import pytest

from adaptvis_tasks.spatial import (
    SPATIAL_TASKS,
    SPLIT_COLUMN,
    SpatialTaskError,
    select_split,
    split_indices,
    validation_count,
)
from tests.support.spatial_mirrors import MIRRORS


def reference_val_keys(task: str, rows: list[dict], key_columns, category) -> set[str]:
    """By hand: sha256 of salt/task/json(key values), sorted per category, first round-half-up(n/5)."""
    by_category: dict[object, list[str]] = {}
    for row in rows:
        identity = json.dumps([row[c] for c in key_columns], sort_keys=True, ensure_ascii=False, default=str)
        digest = hashlib.sha256(("adaptvis-spatial-v1\0" + task + "\0" + identity).encode()).hexdigest()
        by_category.setdefault(row[category] if category else None, []).append(digest)
    chosen = set()
    for digests in by_category.values():
        digests.sort()
        chosen.update(digests[: int(len(digests) / 5 + 0.5)])
    return chosen


def test_validation_count_rounds_half_up():
    assert [validation_count(n) for n in (0, 1, 2, 3, 4, 5, 7, 8, 10, 12, 13)] == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3]


def test_split_matches_the_reference_and_ignores_order():
    rng = random.Random(0)
    rows = [{"idx": i, "type": "2D", "task": rng.choice(["Count", "Relation", "Depth"])} for i in range(200)]
    identities = [[r["type"], r["idx"]] for r in rows]
    val = split_indices("cv_bench", identities, [r["task"] for r in rows], "val")
    test = split_indices("cv_bench", identities, [r["task"] for r in rows], "test")
    assert sorted(val + test) == list(range(200)) and not set(val) & set(test)
    for category in ("Count", "Relation", "Depth"):
        n = sum(r["task"] == category for r in rows)
        assert sum(rows[i]["task"] == category for i in val) == validation_count(n)
    expected = reference_val_keys("cv_bench", rows, ("type", "idx"), "task")
    got = {
        hashlib.sha256(
            ("adaptvis-spatial-v1\0cv_bench\0" + json.dumps([rows[i]["type"], rows[i]["idx"]])).encode()
        ).hexdigest()
        for i in val
    }
    assert got == expected
    order = list(range(200))
    rng.shuffle(order)
    shuffled = [rows[i] for i in order]
    val_shuffled = split_indices(
        "cv_bench", [[r["type"], r["idx"]] for r in shuffled], [r["task"] for r in shuffled], "val"
    )
    assert sorted(order[i] for i in val_shuffled) == val


@pytest.mark.parametrize("name", list(SPATIAL_TASKS))
def test_every_mirror_splits_into_disjoint_val_and_test_with_the_split_column(name):
    from adaptvis_tasks.spatial import base_config

    spec = SPATIAL_TASKS[name]
    config = base_config(spec)
    dataset = MIRRORS[(config["dataset_path"], config.get("dataset_name"))]()
    docs = dataset[config.get("test_split") or config.get("validation_split")]
    val, test = select_split(docs, spec, "val"), select_split(docs, spec, "test")
    assert len(val) + len(test) == len(docs) and len(val) >= 1
    assert set(val[SPLIT_COLUMN]) == {"val"} and set(test[SPLIT_COLUMN]) == {"test"}
    if spec.unit is not None:  # MMVP: both images of a pair in the same split
        pairs_val = {(i - 1) // 2 for i in val["Index"]}
        assert not pairs_val & {(i - 1) // 2 for i in test["Index"]}
        assert len(val) == 2 * len(pairs_val)


def test_a_duplicate_key_or_a_missing_column_is_an_error_naming_it():
    spec = SPATIAL_TASKS["embspatial"]
    duplicate = datasets.Dataset.from_list([{"question_id": "a", "relation": "left"}] * 2)
    with pytest.raises(SpatialTaskError, match="same question_id"):
        select_split(duplicate, spec, "val")
    with pytest.raises(SpatialTaskError, match="no column 'question_id'"):
        select_split(datasets.Dataset.from_list([{"id": 1, "relation": "left"}]), spec, "val")
    with pytest.raises(SpatialTaskError, match="split='train'"):
        split_indices("embspatial", [1], [None], "train")
