"""The synthetic WhatsUp-style benchmark: shipped, deterministic, in the published schema, and scored
by the unchanged WhatsUp task code without any environment variable."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptvis_tasks import scoring, splits, whatsup
from adaptvis_tasks import whatsup_synthetic as gen
from adaptvis_tasks.data import PACKAGED_DATA_DIR, load_descriptors, load_rows

PACKAGED = PACKAGED_DATA_DIR / "whatsup_synthetic"
QUESTION = re.compile(
    r"<image>\nUSER: Where is the (?P<x>\w+ \w+) in relation to the (?P<y>\w+ \w+)\? "
    r"Answer with (?P<options>left, right, on or under|left, right, front or behind)\.\nASSISTANT:"
)
FILE_NAME = re.compile(
    r"data/(?P<folder>[\w_]+)/(?P<x>\w+-\w+)_(?P<rel>left_of|right_of|on|under|in-front_of|behind)_(?P<y>\w+-\w+)\.jpeg"
)
OPTIONS = {"Synthetic_A": "left, right, on or under", "Synthetic_B": "left, right, front or behind"}
FILE_RELATION = {
    "left_of": "Left",
    "right_of": "Right",
    "on": "On",
    "under": "Under",
    "in-front_of": "Front",
    "behind": "Behind",
}
TASKS = {
    f"whatsup_synthetic_{short}{suffix}" for short in ("a", "b") for suffix in ("", "_val", "_test", "_shuffled_images")
}
GROUPS = {
    "whatsup_synthetic": ["whatsup_synthetic_a", "whatsup_synthetic_b"],
    "whatsup_synthetic_val": ["whatsup_synthetic_a_val", "whatsup_synthetic_b_val"],
    "whatsup_synthetic_test": ["whatsup_synthetic_a_test", "whatsup_synthetic_b_test"],
}


def shipped_rows(subset: str) -> list[dict]:
    return [json.loads(line) for line in (PACKAGED / subset / "test.jsonl").read_text().splitlines()]


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    """Point the real-data variables somewhere useless: packaged subsets must not read them."""
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(tmp_path / "no-mirror"))
    monkeypatch.delenv("ADAPTVIS_IMAGE_ROOT", raising=False)


# ----------------------------------------------------------------------------------------------
# The shipped data
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subset", ["Synthetic_A", "Synthetic_B"])
def test_rows_follow_the_published_controlled_schema(subset):
    rows = shipped_rows(subset)
    assert len(rows) == gen.SUBSETS[subset].rows == load_descriptors()[subset].paper_rows
    assert [row["id"] for row in rows] == list(range(len(rows)))
    for row in rows:
        assert set(row) == {"id", "question", "answer", "image_path"}
        question, name = QUESTION.fullmatch(row["question"]), FILE_NAME.fullmatch(row["image_path"])
        assert question and name, row
        assert question["options"] == OPTIONS[subset]
        assert name["folder"] == gen.SUBSETS[subset].folder
        assert row["answer"] == [FILE_RELATION[name["rel"]]]
        assert question["x"].replace(" ", "-") == name["x"] and question["y"].replace(" ", "-") == name["y"]
        x, y = question["x"].split(), question["y"].split()
        assert x[0] != y[0] and x[1] != y[1], "the two objects differ in colour and in shape"
        assert (PACKAGED / "images" / row["image_path"].removeprefix("data/")).is_file()


@pytest.mark.parametrize("subset", ["Synthetic_A", "Synthetic_B"])
def test_every_pair_appears_in_all_four_relations_once(subset):
    keys = Counter()
    for row in shipped_rows(subset):
        pair, relation = scoring.controlled_image_key(row["image_path"])
        keys[pair] += 1
        assert relation in scoring.CONTROLLED_RELATIONS[subset]
    assert set(keys.values()) == {4} and len(keys) == gen.SUBSETS[subset].rows // 4


def test_shipped_files_equal_a_fresh_deterministic_build(tmp_path):
    gen.write_benchmark(tmp_path)
    shipped = sorted(p.relative_to(PACKAGED) for p in PACKAGED.rglob("*") if p.is_file())
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == built
    differing = [str(p) for p in built if (tmp_path / p).read_bytes() != (PACKAGED / p).read_bytes()]
    assert differing == []


def _centre_and_area(image: Image.Image, colour: str) -> tuple[float, float, int]:
    """Centroid (x, y) and pixel count of the pixels close to a named colour (independent of the renderer)."""
    pixels = np.asarray(image, dtype=np.int32)
    distance = np.abs(pixels - np.array(gen.COLOURS[colour])).sum(axis=2)
    ys, xs = np.nonzero(distance < 60)
    assert len(xs) > 20, f"no {colour} object found"
    return float(xs.mean()), float(ys.mean()), len(xs)


@pytest.mark.parametrize("subset", ["Synthetic_A", "Synthetic_B"])
def test_pictures_show_the_gold_relation(subset):
    """Measured from the decoded JPEG pixels: left/right by x, on/under by y and touching,
    front/behind by size, height and overlap."""
    for row in shipped_rows(subset):
        question = QUESTION.fullmatch(row["question"])
        image = Image.open(PACKAGED / "images" / row["image_path"].removeprefix("data/")).convert("RGB")
        assert image.size == (gen.IMAGE_SIZE, gen.IMAGE_SIZE)
        x1, y1, area1 = _centre_and_area(image, question["x"].split()[0])
        x2, y2, area2 = _centre_and_area(image, question["y"].split()[0])
        gold = row["answer"][0]
        if gold in ("Left", "Right"):
            assert (x1 < x2 - 15) if gold == "Left" else (x1 > x2 + 15), row
            assert abs(y1 - y2) < 8, row
        elif gold in ("On", "Under"):
            assert (y1 < y2 - 10) if gold == "On" else (y1 > y2 + 10), row
            assert abs(x1 - x2) < 8, row
        else:
            front, back = ((area1, y1), (area2, y2)) if gold == "Front" else ((area2, y2), (area1, y1))
            assert front[0] > back[0] and front[1] > back[1], row


# ----------------------------------------------------------------------------------------------
# Disjointness from training
# ----------------------------------------------------------------------------------------------


def test_benchmark_dev_and_training_pairs_are_disjoint_in_either_order():
    split = gen.pair_split()
    unordered = lambda pairs: {frozenset(pair) for pair in pairs}  # noqa: E731
    bench = [unordered(pairs) for pairs in split.benchmark.values()]
    assert bench[0].isdisjoint(bench[1])
    for pairs in bench:
        assert pairs.isdisjoint(unordered(split.train)) and pairs.isdisjoint(unordered(split.dev))
    assert unordered(split.dev).isdisjoint(unordered(split.train))
    shipped = {
        frozenset(scoring.controlled_image_key(row["image_path"])[0]) for s in OPTIONS for row in shipped_rows(s)
    }
    named = {frozenset(gen.file_token(obj) for obj in pair) for pairs in split.benchmark.values() for pair in pairs}
    assert shipped == named
    every_object = {obj for pair in split.train for obj in pair}
    assert every_object == set(gen.OBJECTS), "training still shows every object"


def test_training_relation_frequencies_are_the_documented_choice():
    assert gen.TRAINING_RELATION_FREQUENCIES == {
        "left": 0.30, "right": 0.30, "on": 0.12, "under": 0.12, "front": 0.08, "behind": 0.08
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Through the WhatsUp task code, without environment variables
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subset", ["Synthetic_A", "Synthetic_B"])
def test_loads_from_the_package_ignoring_the_real_data_variables(no_data_env, subset):
    loaded = load_rows(load_descriptors()[subset])
    assert len(loaded.rows) == gen.SUBSETS[subset].rows
    assert loaded.origin == str(PACKAGED / subset / "test.jsonl")
    [image] = whatsup.doc_to_visual(loaded.rows[7])
    expected = Image.open(PACKAGED / "images" / loaded.rows[7]["image_path"].removeprefix("data/")).convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(expected))


def test_task_index_holds_the_synthetic_tasks_and_groups(task_manager):
    manager = task_manager()
    assert set(manager.all_subtasks) >= TASKS
    for group, members in GROUPS.items():
        assert manager._get_config(group)["task"] == members


def test_tasks_load_with_the_papers_split_sizes_and_score_pair_and_set(no_data_env, task_manager):
    from tests.unit.test_task_loading import leaf_tasks

    tasks = leaf_tasks(task_manager("llava_adaptvis").load_task_or_group(list(GROUPS)))
    for name, task in tasks.items():
        docs = task.test_docs()
        n = 412 if "_a" in name else 408
        expected = {"": range(n), "_val": splits.validation_indices(n), "_test": splits.test_indices(n)}
        assert list(docs["row"]) == list(expected[name.removeprefix("whatsup_synthetic_")[1:]]), name
        assert task.doc_to_text(docs[0]) == docs[0]["question"]  # the published prompt, verbatim
        results = [task.process_results(doc, [f" {doc['answer'][0]}"]) for doc in docs]
        assert all(r["strict_accuracy"] == 1.0 for r in results)
        assert whatsup.aggregate_pair_accuracy([r["pair_accuracy"] for r in results]) > 0
    full = tasks["whatsup_synthetic_b"]
    docs = full.test_docs()
    results = [full.process_results(doc, [f" {doc['answer'][0]}"]) for doc in docs]
    assert whatsup.aggregate_pair_accuracy([r["pair_accuracy"] for r in results]) == 1.0
    assert whatsup.aggregate_set_accuracy([r["set_accuracy"] for r in results]) == 1.0
    # wrong on every front/behind question: no set is complete, half the pairs remain
    half = [
        full.process_results(doc, [" Left" if doc["answer"][0] in ("Front", "Behind") else doc["answer"][0]])
        for doc in docs
    ]
    assert whatsup.aggregate_pair_accuracy([r["pair_accuracy"] for r in half]) == 0.5
    assert whatsup.aggregate_set_accuracy([r["set_accuracy"] for r in half]) == 0.0


# ----------------------------------------------------------------------------------------------
# The image-shuffle control
# ----------------------------------------------------------------------------------------------


def test_derangement_is_seeded_and_moves_every_row():
    order = whatsup.derangement(412)
    assert sorted(order) == list(range(412))
    assert all(source != index for index, source in enumerate(order))
    assert order == whatsup.derangement(412) != whatsup.derangement(412, seed=1)
    with pytest.raises(ValueError, match="at least 2"):
        whatsup.derangement(1)


def test_shuffled_task_shows_another_rows_image_and_keeps_question_answer_and_pair_keys(no_data_env, task_manager):
    from tests.unit.test_task_loading import leaf_tasks

    tasks = leaf_tasks(task_manager("llava_adaptvis").load_task_or_group(["whatsup_synthetic_a_shuffled_images"]))
    docs = tasks["whatsup_synthetic_a_shuffled_images"].test_docs()
    rows = shipped_rows("Synthetic_A")
    order = whatsup.derangement(len(rows))
    assert len(docs) == len(rows)
    for doc in docs:
        own = rows[doc["row"]]
        assert (doc["question"], doc["answer"], doc["image_path"]) == (
            own["question"],
            own["answer"],
            own["image_path"],
        )
        donor = rows[order[doc["row"]]]["image_path"].removeprefix("data/")
        assert doc["shown_image"] == donor != own["image_path"].removeprefix("data/")
    [image] = whatsup.doc_to_visual(docs[3])
    expected = Image.open(PACKAGED / "images" / Path(docs[3]["shown_image"])).convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(expected))


def test_a_missing_packaged_file_is_an_error_naming_it_and_the_fix(monkeypatch, tmp_path):
    from adaptvis_tasks import data

    monkeypatch.setattr(data, "PACKAGED_DATA_DIR", tmp_path)
    with pytest.raises(data.DataSetupError) as caught:
        load_rows(load_descriptors()["Synthetic_A"])
    message = str(caught.value)
    assert str(tmp_path / "whatsup_synthetic" / "Synthetic_A" / "test.jsonl") in message
    assert "reinstall" in message and "python -m adaptvis_tasks.whatsup_synthetic" in message


def test_a_packaged_descriptor_needs_no_hub_dataset_but_a_hub_descriptor_does():
    from adaptvis_tasks.data import DataSetupError, SourceDescriptor

    packaged = {"subset": "Synthetic_A", "packaged_data": "whatsup_synthetic", "split": "test", "paper_rows": 412}
    assert SourceDescriptor.from_row(packaged).packaged_folder == PACKAGED
    with pytest.raises(DataSetupError, match="lacks hub_dataset"):
        SourceDescriptor.from_row({k: v for k, v in packaged.items() if k != "packaged_data"})
