"""The synthetic mirror: published schema, image layout, determinism, CLI."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptvis_tasks import prompts, scoring, synthetic
from adaptvis_tasks.data import image_relpath, load_descriptors, load_rows

OPTION_WORDINGS = {
    "Controlled_A": {("left", "right", "on", "under")},
    "Controlled_B": {("left", "right", "front", "behind")},
    "COCO_one_obj": {("left", "right", "top", "bottom")},
    "COCO_two_obj": {("left", "right", "above", "below")},
    "VG_one_obj": {("left", "right", "front", "behind", "top", "bottom"), ("behind", "front")},
    "VG_two_obj": {("left", "right", "front", "behind", "above", "below")},
}


def read_rows(data_dir: Path, config: str) -> list[dict]:
    return [json.loads(line) for line in (data_dir / config / "test.jsonl").read_text().splitlines()]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_layout_and_row_counts(synthetic_mirror):
    assert sorted(path.name for path in synthetic_mirror.data_dir.iterdir()) == sorted(synthetic.SMALL_ROWS)
    for config, count in synthetic.SMALL_ROWS.items():
        assert len(read_rows(synthetic_mirror.data_dir, config)) == count
    folders = sorted(path.name for path in synthetic_mirror.image_root.iterdir())
    assert folders == ["controlled_clevr", "controlled_images", "train2017", "val2017", "vg_images"]


@pytest.mark.parametrize("config", list(OPTION_WORDINGS))
def test_whatsup_rows_have_the_published_schema(synthetic_mirror, config):
    rows = read_rows(synthetic_mirror.data_dir, config)
    id_column = "image_path" if config.startswith("Controlled") else "image_id"
    for index, row in enumerate(rows):
        assert set(row) == {"id", "question", "answer", id_column}
        assert row["id"] == index
        assert prompts.is_templated(row["question"]) and row["question"].startswith("<image>\nUSER:")
        assert prompts.option_words(row["question"]) in OPTION_WORDINGS[config]
        assert len(row["answer"]) == 1 and row["answer"][0] == row["answer"][0].capitalize()
        assert row["answer"][0].lower() in prompts.option_words(row["question"])
        assert (synthetic_mirror.image_root / image_relpath(config, row)).is_file()
    if config.startswith("COCO"):
        assert all(isinstance(row["image_id"], int) for row in rows)
    if config.startswith("VG"):
        assert all(isinstance(row["image_id"], str) and row["image_id"].isdigit() for row in rows)


def test_controlled_rows_form_complete_sets_of_four(synthetic_mirror):
    for config, folder, relations in (
        ("Controlled_A", "controlled_images", {"left", "right", "on", "under"}),
        ("Controlled_B", "controlled_clevr", {"left", "right", "in-front", "behind"}),
    ):
        rows = read_rows(synthetic_mirror.data_dir, config)
        assert all(
            row["image_path"].startswith(f"data/{folder}/") and row["image_path"].endswith(".jpeg") for row in rows
        )
        sets: dict[tuple[str, str], set[str]] = {}
        for row in rows:
            key, relation = scoring.controlled_image_key(row["image_path"])
            sets.setdefault(key, set()).add(relation)
        assert len(sets) == 4 and all(found == relations for found in sets.values())


def test_vsr_rows(synthetic_mirror):
    rows = read_rows(synthetic_mirror.data_dir, "vsr_zeroshot")
    assert {row["label"] for row in rows} == {0, 1}
    for row in rows:
        assert {"image", "image_link", "caption", "label", "relation"} <= set(row)
        folder = image_relpath("vsr_zeroshot", row).parts[0]
        assert folder in ("train2017", "val2017") and row["image_link"].endswith("/" + row["image"])
        assert row["caption"].endswith(".") and row["relation"] in row["caption"]
    assert {image_relpath("vsr_zeroshot", row).parts[0] for row in rows} == {"train2017", "val2017"}


def test_published_quirks_are_reproduced(synthetic_mirror):
    questions = {
        config: [row["question"] for row in read_rows(synthetic_mirror.data_dir, config)] for config in OPTION_WORDINGS
    }
    assert any("USER:  Where" in question for question in questions["COCO_one_obj"])
    assert any("? \nAnswer with" in question for question in questions["VG_two_obj"])
    assert any(question.endswith(".\n\nASSISTANT:") for question in questions["VG_two_obj"])
    assert any("Answer with behind or front." in question for question in questions["VG_one_obj"])
    assert any("above, or below" in question for question in questions["COCO_two_obj"])
    assert any(
        question.startswith("<image>\nUSER: Where are the")
        for question in questions["Controlled_A"] + questions["Controlled_B"]
    )


def _mirrored_descriptors():
    """The configs a local mirror stands in for (the hub-backed ones; packaged subsets ship with the package)."""
    return {name: d for name, d in load_descriptors().items() if d.packaged_data is None}


def test_every_row_passes_the_loaders_validation(synthetic_mirror):
    mirrored = _mirrored_descriptors()
    assert sorted(mirrored) == sorted(synthetic.SMALL_ROWS)
    for name, descriptor in mirrored.items():
        assert len(load_rows(descriptor, synthetic_mirror.data_dir).rows) == synthetic.SMALL_ROWS[name]


def test_images_are_small_rgb_jpegs_placed_by_the_gold_relation(synthetic_mirror):
    for path in synthetic_mirror.image_root.rglob("*"):
        if path.is_file():
            with Image.open(path) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and image.size == (80, 80)
    for row in read_rows(synthetic_mirror.data_dir, "COCO_one_obj"):
        pixels = np.asarray(Image.open(synthetic_mirror.image_root / image_relpath("COCO_one_obj", row)), dtype=float)
        ys, xs = np.nonzero(np.abs(pixels - np.array(synthetic._BACKGROUND)).sum(axis=2) > 60)
        centre = {"Left": xs.mean() < 40, "Right": xs.mean() > 40, "Top": ys.mean() < 40, "Bottom": ys.mean() > 40}
        assert centre[row["answer"][0]], row


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = synthetic.write_mirror(tmp_path / "a", {"Controlled_B": 8, "vsr_zeroshot": 4}, seed=3)
    second = synthetic.write_mirror(tmp_path / "b", {"Controlled_B": 8, "vsr_zeroshot": 4}, seed=3)
    other = synthetic.write_mirror(tmp_path / "c", {"Controlled_B": 8, "vsr_zeroshot": 4}, seed=4)
    assert digest(first[0]) == digest(second[0]) and digest(first[1]) == digest(second[1])
    assert digest(first[0]) != digest(other[0])


def test_paper_sizes_and_a_soak_sized_subset(tmp_path):
    assert synthetic.PAPER_ROWS == {name: descriptor.paper_rows for name, descriptor in _mirrored_descriptors().items()}
    data_dir, image_root = synthetic.write_mirror(tmp_path, {"Controlled_A": 412, "VG_two_obj": 291})
    rows = load_rows(load_descriptors()["Controlled_A"], data_dir).rows
    assert len(rows) == 412
    assert len({scoring.controlled_image_key(row["image_path"])[0] for row in rows}) == 103  # no pair collides
    assert Counter(row["answer"][0] for row in rows) == {"Left": 103, "Right": 103, "On": 103, "Under": 103}
    assert len(list((image_root / "vg_images").iterdir())) == 291


def test_parquet_output(tmp_path):
    data_dir, _ = synthetic.write_mirror(tmp_path, {"COCO_two_obj": 3}, file_format="parquet")
    assert (data_dir / "COCO_two_obj" / "test.parquet").is_file()
    assert not (data_dir / "COCO_two_obj" / "test.jsonl").exists()


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least one row"):
        synthetic.write_mirror(tmp_path, {"Controlled_A": 0})
    with pytest.raises(ValueError, match="unknown config"):
        synthetic.write_mirror(tmp_path, {"Controlled_C": 4})
    with pytest.raises(ValueError, match="preset"):
        synthetic.write_mirror(tmp_path, "huge")
    with pytest.raises(ValueError, match="file_format"):
        synthetic.write_mirror(tmp_path, 2, file_format="csv")


def test_cli_writes_the_mirror_and_prints_the_environment(tmp_path, capsys):
    assert (
        synthetic.main([str(tmp_path), "--rows", "4", "--configs", "Controlled_A", "vsr_zeroshot", "--seed", "7"]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"export ADAPTVIS_DATA_DIR={(tmp_path / 'data').resolve()}",
        f"export ADAPTVIS_IMAGE_ROOT={(tmp_path / 'images').resolve()}",
    ]
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["Controlled_A", "vsr_zeroshot"]
    assert len(read_rows(tmp_path / "data", "vsr_zeroshot")) == 4
