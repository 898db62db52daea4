"""The validation/test split equals the reference's ``random.seed(1); random.sample(...)`` draw."""

from __future__ import annotations

import random

import pytest

from adaptvis_tasks import splits

PAPER_SIZES = (412, 408, 2247, 440, 1160, 291, 1222)


def reference_validation_indices(n: int) -> list[int]:
    """The reference's formula, with the global ``random`` module exactly as main_aro.py uses it."""
    state = random.getstate()
    try:
        random.seed(1)
        return sorted(random.sample(range(n), int(0.2 * n)))
    finally:
        random.setstate(state)


@pytest.mark.parametrize("n", PAPER_SIZES)
def test_validation_indices_equal_the_reference_formula(n):
    assert list(splits.validation_indices(n)) == reference_validation_indices(n)


@pytest.mark.parametrize("n", PAPER_SIZES)
def test_test_indices_are_the_sorted_complement(n):
    val, test = splits.validation_indices(n), splits.test_indices(n)
    assert len(val) == int(0.2 * n)
    assert list(test) == sorted(set(range(n)) - set(val))
    assert set(val).isdisjoint(test)


def test_paper_validation_sizes():
    sizes = {n: len(splits.validation_indices(n)) for n in PAPER_SIZES}
    assert sizes == {412: 82, 408: 81, 2247: 449, 440: 88, 1160: 232, 291: 58, 1222: 244}


def test_split_does_not_touch_or_depend_on_global_random_state():
    random.seed(12345)
    before = random.getstate()
    splits.validation_indices.cache_clear()
    first = splits.validation_indices(412)
    assert random.getstate() == before
    random.random()  # disturb the global generator; the split must not change
    splits.validation_indices.cache_clear()
    assert splits.validation_indices(412) == first


def test_split_indices_dispatch_and_reject_unknown_split():
    assert splits.split_indices(5, "full") == (0, 1, 2, 3, 4)
    assert splits.split_indices(10, "val") == splits.validation_indices(10)
    assert splits.split_indices(10, "test") == splits.test_indices(10)
    with pytest.raises(ValueError, match="unknown split"):
        splits.split_indices(10, "train")


def test_small_sizes():
    assert splits.validation_indices(0) == ()
    assert splits.validation_indices(4) == ()  # int(0.8) == 0, as the reference
    assert splits.test_indices(4) == (0, 1, 2, 3)
