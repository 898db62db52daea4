"""The paper's validation/test split of each subset (Appendix E.3).

The reference draws the validation rows with Python's ``random`` right after seeding it with 1:
``random.seed(1); val = sorted(random.sample(range(N), int(0.2 * N)))``; the test rows are the rest.
Here a private ``random.Random(1)`` produces the identical sequence without touching global state,
so the split depends only on ``N`` (the size of the full published split), not on load order.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Literal

SEED = 1
VALIDATION_FRACTION = 0.2

Split = Literal["full", "val", "test"]


@cache
def validation_indices(n: int) -> tuple[int, ...]:
    """Sorted row indices of the 20% validation set of a subset with ``n`` rows."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return tuple(sorted(random.Random(SEED).sample(range(n), int(VALIDATION_FRACTION * n))))


@cache
def test_indices(n: int) -> tuple[int, ...]:
    """Sorted row indices of the remaining 80% (the rows the paper reports on)."""
    held_out = set(validation_indices(n))
    return tuple(index for index in range(n) if index not in held_out)


def split_indices(n: int, split: Split) -> tuple[int, ...]:
    """Row indices of ``split`` (``full``, ``val`` or ``test``) for a subset of ``n`` rows."""
    if split == "full":
        return tuple(range(n))
    if split == "val":
        return validation_indices(n)
    if split == "test":
        return test_indices(n)
    raise ValueError(f"unknown split {split!r}; expected 'full', 'val' or 'test'")
