"""Data sources, row validation, image references and image decoding."""

from __future__ import annotations

import json
import warnings
from pathlib import Path, PurePosixPath

import datasets
import numpy as np
import pytest
from PIL import Image, ImageFile

from adaptvis_tasks import data, images, vsr, whatsup
from adaptvis_tasks.data import DataSetupError, ImageLoadError, image_relpath, load_descriptors, load_rows

DESCRIPTORS = load_descriptors()


def _rewrite_row(path: Path, index: int, change) -> None:
    lines = path.read_text().splitlines()
    row = json.loads(lines[index])
    change(row)
    lines[index] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


def _assert_names_everything(message: str, *parts: str) -> None:
    for part in (*parts, "adaptvis-doctor"):
        assert part in message, f"{part!r} missing from: {message}"


# ----------------------------------------------------------------------------------------------
# Descriptors and sources
# ----------------------------------------------------------------------------------------------


def test_descriptors_name_the_hub_data_and_the_papers_sizes():
    sizes = {name: descriptor.paper_rows for name, descriptor in DESCRIPTORS.items()}
    assert sizes == {
        "Controlled_A": 412,
        "Controlled_B": 408,
        "COCO_one_obj": 2247,
        "COCO_two_obj": 440,
        "VG_one_obj": 1160,
        "VG_two_obj": 291,
        "vsr_zeroshot": 1222,
        # the synthetic WhatsUp-style subsets (packaged data, tests/model/test_synthetic_benchmark.py)
        "Synthetic_A": 412,
        "Synthetic_B": 408,
    }
    assert DESCRIPTORS["Controlled_A"].hub_dataset == "AdaptVis/all_datasets"
    assert DESCRIPTORS["Controlled_A"].hub_config == "Controlled_A"
    assert (DESCRIPTORS["vsr_zeroshot"].hub_dataset, DESCRIPTORS["vsr_zeroshot"].hub_config) == (
        "cambridgeltl/vsr_zeroshot",
        None,
    )
    assert {descriptor.split for descriptor in DESCRIPTORS.values()} == {"test"}


def test_local_mirror_rows_keep_published_columns_and_gain_row_and_subset(synthetic_mirror):
    jsonl = synthetic_mirror.data_dir / "COCO_one_obj" / "test.jsonl"
    published = [json.loads(line) for line in jsonl.read_text().splitlines()]
    loaded = load_rows(DESCRIPTORS["COCO_one_obj"], synthetic_mirror.data_dir)
    assert loaded.origin == str(jsonl)
    assert [row["row"] for row in loaded.rows] == list(range(len(published)))
    for row, original in zip(loaded.rows, published, strict=True):
        assert {key: row[key] for key in original} == original
        assert row["subset"] == "COCO_one_obj"
    assert isinstance(loaded.rows[0]["image_id"], int)
    vg = load_rows(DESCRIPTORS["VG_one_obj"], synthetic_mirror.data_dir).rows
    assert isinstance(vg[0]["image_id"], str)


def test_parquet_mirror_loads_the_same_rows(make_mirror, synthetic_mirror):
    parquet = make_mirror({"VG_two_obj": 8, "vsr_zeroshot": 12}, file_format="parquet")
    for subset in ("VG_two_obj", "vsr_zeroshot"):
        from_parquet = load_rows(DESCRIPTORS[subset], parquet.data_dir)
        from_jsonl = load_rows(DESCRIPTORS[subset], synthetic_mirror.data_dir)
        assert from_parquet.origin.endswith(f"{subset}/test.parquet")
        assert from_parquet.rows == from_jsonl.rows


def test_env_var_selects_the_mirror(data_env):
    assert load_rows(DESCRIPTORS["Controlled_B"]).origin == str(data_env.data_dir / "Controlled_B" / "test.jsonl")


def test_missing_config_folder_names_the_expected_files(make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["VG_one_obj"], mirror.data_dir)
    _assert_names_everything(
        str(caught.value),
        "VG_one_obj",
        str(mirror.data_dir / "VG_one_obj" / "test.jsonl"),
        str(mirror.data_dir / "VG_one_obj" / "test.parquet"),
        "ADAPTVIS_DATA_DIR",
    )


def test_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DataSetupError, match="does not exist"):
        load_rows(DESCRIPTORS["Controlled_A"], tmp_path / "nowhere")


def test_jsonl_and_parquet_together_are_ambiguous(make_mirror):
    mirror = make_mirror({"COCO_two_obj": 4})
    make_mirror({"COCO_two_obj": 4}, file_format="parquet", name="other")
    other = mirror.root.parent / "other" / "data" / "COCO_two_obj" / "test.parquet"
    (mirror.data_dir / "COCO_two_obj" / "test.parquet").write_bytes(other.read_bytes())
    with pytest.raises(DataSetupError, match="keep exactly one"):
        load_rows(DESCRIPTORS["COCO_two_obj"], mirror.data_dir)


def test_invalid_json_line_is_named(make_mirror):
    mirror = make_mirror({"COCO_two_obj": 4})
    path = mirror.data_dir / "COCO_two_obj" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["COCO_two_obj"], mirror.data_dir)
    _assert_names_everything(str(caught.value), str(path), "line 3", "row 2", "ADAPTVIS_DATA_DIR")


def test_empty_file_is_an_error(make_mirror):
    mirror = make_mirror({"COCO_two_obj": 4})
    (mirror.data_dir / "COCO_two_obj" / "test.jsonl").write_text("")
    with pytest.raises(DataSetupError, match="has no rows"):
        load_rows(DESCRIPTORS["COCO_two_obj"], mirror.data_dir)


# ----------------------------------------------------------------------------------------------
# Row validation: never a silent drop
# ----------------------------------------------------------------------------------------------


def _set(key, value):
    return lambda row: row.__setitem__(key, value)


def _delete(key):
    return lambda row: row.pop(key)


@pytest.mark.parametrize(
    ("subset", "change", "expected"),
    [
        ("Controlled_A", _delete("question"), "'question' is missing or empty"),
        ("Controlled_A", _set("question", "  "), "'question' is missing or empty"),
        ("Controlled_A", _delete("answer"), "'answer' must be a non-empty list"),
        ("Controlled_A", _set("answer", []), "'answer' must be a non-empty list"),
        ("Controlled_A", _set("answer", [""]), "'answer' must be a non-empty list"),
        ("Controlled_A", _set("answer", ["Sideways"]), "not one of the WhatsUp relations"),
        ("Controlled_A", _delete("image_path"), "'image_path' is missing"),
        ("COCO_one_obj", _delete("image_id"), "'image_id' must be an integer"),
        ("COCO_one_obj", _set("image_id", "abc"), "'image_id' must be an integer"),
        ("VG_one_obj", _set("image_id", ""), "'image_id' is missing"),
        (
            "VG_two_obj",
            lambda row: row.__setitem__("question", row["question"].replace("<image>", "")),
            "0 <image> placeholders",
        ),
        (
            "VG_two_obj",
            lambda row: row.__setitem__("question", "<image>" + row["question"]),
            "2 <image> placeholders",
        ),
        (
            "COCO_two_obj",
            lambda row: row.__setitem__("question", row["question"].replace("Answer with", "Say")),
            "0 'Answer with",
        ),
        ("vsr_zeroshot", _set("caption", ""), "'caption' is missing or empty"),
        ("vsr_zeroshot", _set("label", 2), "'label' must be 0 or 1"),
        ("vsr_zeroshot", _set("image_link", "train2017/000000085637.jpg"), "'image_link' must be a COCO URL"),
    ],
)
def test_invalid_rows_raise_naming_file_row_and_problem(make_mirror, subset, change, expected):
    mirror = make_mirror({subset: 4})
    path = mirror.data_dir / subset / "test.jsonl"
    _rewrite_row(path, 2, change)
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS[subset], mirror.data_dir)
    _assert_names_everything(str(caught.value), subset, str(path), "row 2", expected, "ADAPTVIS_DATA_DIR")


def test_all_bad_rows_are_counted_and_the_first_ones_listed(make_mirror):
    mirror = make_mirror({"COCO_one_obj": 8})
    path = mirror.data_dir / "COCO_one_obj" / "test.jsonl"
    for index in range(7):
        _rewrite_row(path, index, _set("question", ""))
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["COCO_one_obj"], mirror.data_dir)
    message = str(caught.value)
    assert "7 invalid row(s)" in message and "row 0:" in message and "row 4:" in message
    assert "row 5:" not in message and "and 2 more" in message


def test_rows_published_without_the_template_are_valid(make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    _rewrite_row(
        path,
        1,
        lambda row: row.__setitem__(
            "question", "Where is the mug in relation to the table? Answer with left, right, on or under."
        ),
    )
    assert len(load_rows(DESCRIPTORS["Controlled_A"], mirror.data_dir).rows) == 4


def test_column_changing_type_between_rows_is_named(make_mirror, monkeypatch):
    mirror = make_mirror({"COCO_one_obj": 5})
    path = mirror.data_dir / "COCO_one_obj" / "test.jsonl"
    _rewrite_row(path, 3, lambda row: row.__setitem__("image_id", str(row["image_id"])))
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(mirror.data_dir))
    descriptor = DESCRIPTORS["COCO_one_obj"]
    descriptor_docs = datasets.Dataset.from_list([{**descriptor.__dict__}])
    docs = whatsup.process_docs(descriptor_docs)
    with pytest.raises(DataSetupError) as caught:
        whatsup.doc_to_text(docs[0])
    _assert_names_everything(str(caught.value), str(path), "column 'image_id' is int in row 0 but str in row 3")


# ----------------------------------------------------------------------------------------------
# Hub source (the hub itself is not reachable here: datasets.load_dataset is replaced)
# ----------------------------------------------------------------------------------------------


def test_hub_is_used_when_no_data_dir_is_set(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(
            [
                {
                    "caption": "The cat is on the mat.",
                    "label": 1,
                    "image_link": "http://images.cocodataset.org/val2017/000000000001.jpg",
                }
            ]
        )

    monkeypatch.delenv("ADAPTVIS_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_rows(DESCRIPTORS["vsr_zeroshot"])
    assert calls == [("cambridgeltl/vsr_zeroshot", None, "test")]
    assert loaded.rows[0]["row"] == 0 and loaded.origin.startswith("hub dataset cambridgeltl/vsr_zeroshot")


def test_hub_failure_says_how_to_use_a_local_mirror(monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.delenv("ADAPTVIS_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["Controlled_B"])
    _assert_names_everything(
        str(caught.value), "AdaptVis/all_datasets", "Controlled_B", "ADAPTVIS_DATA_DIR", "Couldn't reach"
    )


# ----------------------------------------------------------------------------------------------
# Image references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subset", "row", "expected"),
    [
        (
            "Controlled_A",
            {"image_path": "data/controlled_images/beer-bottle_on_armchair.jpeg"},
            "controlled_images/beer-bottle_on_armchair.jpeg",
        ),
        (
            "Controlled_A",
            {"image_path": "controlled_images/beer-bottle_on_armchair.jpeg"},
            "controlled_images/beer-bottle_on_armchair.jpeg",
        ),
        (
            "Controlled_B",
            {"image_path": "./data/controlled_clevr/mug_behind_knife.jpeg"},
            "controlled_clevr/mug_behind_knife.jpeg",
        ),
        ("COCO_one_obj", {"image_id": 85637}, "val2017/000000085637.jpg"),
        ("COCO_two_obj", {"image_id": "397133"}, "val2017/000000397133.jpg"),
        ("VG_one_obj", {"image_id": "2376410"}, "vg_images/2376410.jpg"),
        ("VG_two_obj", {"image_id": 2376410}, "vg_images/2376410.jpg"),
        (
            "vsr_zeroshot",
            {"image_link": "http://images.cocodataset.org/train2017/000000085637.jpg"},
            "train2017/000000085637.jpg",
        ),
        (
            "vsr_zeroshot",
            {"image_link": "http://images.cocodataset.org/val2017/000000000139.jpg"},
            "val2017/000000000139.jpg",
        ),
    ],
)
def test_image_reference_forms(subset, row, expected):
    assert image_relpath(subset, row) == PurePosixPath(expected)


def test_doc_to_visual_returns_one_rgb_image(data_env):
    whatsup_doc = load_rows(DESCRIPTORS["Controlled_A"]).rows[0]
    vsr_doc = load_rows(DESCRIPTORS["vsr_zeroshot"]).rows[0]
    for visuals in (whatsup.doc_to_visual(whatsup_doc), vsr.doc_to_visual(vsr_doc)):
        assert len(visuals) == 1 and isinstance(visuals[0], Image.Image) and visuals[0].mode == "RGB"
    assert vsr.doc_to_visual(vsr_doc)[0].size == (80, 80)
    assert vsr.doc_to_visual_reference_resize(vsr_doc)[0].size == (2300, 4096)


def test_unset_image_root_asks_for_it(data_env, monkeypatch):
    doc = load_rows(DESCRIPTORS["COCO_two_obj"]).rows[3]
    monkeypatch.delenv("ADAPTVIS_IMAGE_ROOT")
    with pytest.raises(DataSetupError) as caught:
        whatsup.doc_to_visual(doc)
    _assert_names_everything(str(caught.value), "ADAPTVIS_IMAGE_ROOT is not set", "COCO_two_obj row 3")


def test_image_root_that_is_not_a_folder(data_env, monkeypatch, tmp_path):
    doc = load_rows(DESCRIPTORS["COCO_two_obj"]).rows[0]
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(tmp_path / "missing"))
    with pytest.raises(ImageLoadError, match="is not a folder"):
        whatsup.doc_to_visual(doc)


def test_missing_image_names_file_row_and_env_var(make_mirror, monkeypatch):
    mirror = make_mirror({"VG_one_obj": 4})
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mirror.image_root))
    doc = load_rows(DESCRIPTORS["VG_one_obj"], mirror.data_dir).rows[1]
    path = mirror.image_root / "vg_images" / f"{doc['image_id']}.jpg"
    path.unlink()
    with pytest.raises(ImageLoadError) as caught:
        whatsup.doc_to_visual(doc)
    _assert_names_everything(str(caught.value), str(path), "VG_one_obj row 1", "ADAPTVIS_IMAGE_ROOT", "missing")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_undecodable_image_is_an_image_load_error_not_a_pil_traceback(make_mirror, monkeypatch, damage):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what importing lmms-eval does process-wide
    mirror = make_mirror({"vsr_zeroshot": 3})
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mirror.image_root))
    doc = load_rows(DESCRIPTORS["vsr_zeroshot"], mirror.data_dir).rows[2]
    path = mirror.image_root / image_relpath("vsr_zeroshot", doc)
    content = path.read_bytes()
    path.write_bytes(b"not an image at all" if damage == "garbage" else content[: len(content) // 3])
    with pytest.raises(ImageLoadError) as caught:
        vsr.doc_to_visual(doc)
    _assert_names_everything(str(caught.value), str(path), "cannot be decoded", "ADAPTVIS_IMAGE_ROOT")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for everybody else


# ----------------------------------------------------------------------------------------------
# Colour modes and sizes
# ----------------------------------------------------------------------------------------------


def _pixels(image: Image.Image) -> list:
    return np.asarray(image).tolist()


def test_rgba_la_and_palette_follow_convert_rgb_semantics():
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    rgba.putpixel((1, 0), (200, 100, 50, 128))
    assert _pixels(images.to_rgb(rgba)) == _pixels(rgba.convert("RGB")) == [[[10, 20, 30], [200, 100, 50]]]
    la = Image.new("LA", (1, 1), (77, 0))
    assert _pixels(images.to_rgb(la)) == [[[77, 77, 77]]]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _pixels(images.to_rgb(palette)) == [[[0, 0, 0], [255, 0, 0]]]


def test_greyscale_bilevel_and_cmyk_become_rgb():
    assert _pixels(images.to_rgb(Image.new("L", (1, 1), 90))) == [[[90, 90, 90]]]
    assert _pixels(images.to_rgb(Image.new("1", (1, 1), 1))) == [[[255, 255, 255]]]
    assert images.to_rgb(Image.new("CMYK", (1, 1), (0, 255, 255, 0))).mode == "RGB"


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_sixteen_bit_greyscale_is_scaled_not_clipped(mode):
    image = Image.new(mode, (3, 1))
    for x, value in enumerate((0, 257 * 100, 65535)):
        image.putpixel((x, 0), value)
    assert _pixels(images.to_rgb(image)) == [[[0, 0, 0], [100, 100, 100], [255, 255, 255]]]


def test_float_images_are_scaled_from_unit_range_or_16_bit_range():
    unit = Image.new("F", (2, 1))
    unit.putpixel((0, 0), 0.5)
    unit.putpixel((1, 0), 1.0)
    assert _pixels(images.to_rgb(unit)) == [[[128, 128, 128], [255, 255, 255]]]
    wide = Image.new("F", (1, 1), 257.0 * 10)
    assert _pixels(images.to_rgb(wide)) == [[[10, 10, 10]]]


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("RGBA", "png"),
        ("LA", "png"),
        ("P", "png"),
        ("L", "png"),
        ("1", "png"),
        ("I;16", "png"),
        ("I", "tiff"),
        ("F", "tiff"),
        ("CMYK", "jpg"),
    ],
)
def test_files_in_every_mode_load_as_rgb(tmp_path, mode, suffix):
    path = tmp_path / f"image.{suffix}"
    Image.new(mode, (5, 3)).save(path)
    loaded = images.open_rgb(path)
    assert (loaded.mode, loaded.size) == ("RGB", (5, 3))


def test_one_pixel_image_loads(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    assert _pixels(images.open_rgb(path)) == [[[1, 2, 3]]]


def test_very_large_image_loads_without_decompression_bomb_warning(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (10000, 10000), 7).save(path, compress_level=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        loaded = images.open_rgb(path)
    assert (loaded.mode, loaded.size) == ("RGB", (10000, 10000))


def test_pils_pixel_limit_is_lifted_only_while_loading_our_images(tmp_path, monkeypatch):
    path = tmp_path / "over_limit.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10000 px > 2 * limit: PIL would raise
    with pytest.raises(Image.DecompressionBombError), Image.open(path):
        pass
    assert images.open_rgb(path).size == (100, 100)
    assert images.check_image(path) is None
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_check_image_reports_missing_and_corrupt(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    Image.new("RGB", (2, 2)).save(good)
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert images.check_image(good) is None
    assert images.check_image(tmp_path / "absent.jpg") == "missing"
    assert images.check_image(bad).startswith("corrupt: ")


def test_deferred_errors_keep_their_class_and_message():
    docs = data.docs_or_deferred_error(lambda: (_ for _ in ()).throw(ImageLoadError("the image is gone")))
    with pytest.raises(ImageLoadError, match="the image is gone"):
        data.raise_if_deferred(docs[0])
    data.raise_if_deferred({"question": "fine"})  # ordinary docs pass
