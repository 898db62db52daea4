"""VSR has the paper's protocol end to end: validation/test splits with and without the reference resize."""

from __future__ import annotations

import pytest

from adaptvis_tasks import splits
from adaptvis_tasks.synthetic import SMALL_ROWS


@pytest.mark.parametrize(
    ("task", "split", "size"),
    [
        ("vsr_zeroshot_reference_resize_val", "val", (2300, 4096)),
        ("vsr_zeroshot_reference_resize_test", "test", (2300, 4096)),
        ("vsr_zeroshot_val", "val", None),
        ("vsr_zeroshot_test", "test", None),
    ],
)
def test_vsr_split_tasks_hold_the_split_rows_and_the_right_images(data_env, task_manager, task, split, size):
    (loaded,) = task_manager().load_task_or_group([task]).values()
    docs = list(loaded.test_docs())
    n = SMALL_ROWS["vsr_zeroshot"]
    chosen = splits.validation_indices(n) if split == "val" else splits.test_indices(n)
    assert [doc["row"] for doc in docs] == list(chosen)
    (image,) = loaded.doc_to_visual(docs[0])
    assert image.size == size if size else image.size != (2300, 4096)
    assert loaded.doc_to_text(docs[0]).startswith("Determine whether the description")
