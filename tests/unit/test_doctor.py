"""``adaptvis-doctor`` on synthetic mirrors: exit codes, findings, JSON and text output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptvis_tasks import doctor


def run_doctor(capsys, *args: str) -> tuple[int, str]:
    code = doctor.main(list(args))
    return code, capsys.readouterr().out


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code, out = run_doctor(capsys, *args, "--json")
    return code, json.loads(out)


def by_config(report: dict) -> dict[str, dict]:
    return {item["config"]: item for item in report["configs"]}


@pytest.fixture
def damaged_mirror(make_mirror):
    """A mirror with one missing image (COCO_one_obj), one corrupt image (VG_two_obj) and sizes unlike the paper's."""
    mirror = make_mirror()
    (mirror.image_root / "val2017" / f"{1_000_003:012d}.jpg").unlink()
    (mirror.image_root / "vg_images" / "2500002.jpg").write_bytes(b"this is not a jpeg")
    return mirror


def test_damaged_mirror_fails_and_names_what_is_wrong(capsys, damaged_mirror):
    code, report = run_json(
        capsys, "--data-dir", str(damaged_mirror.data_dir), "--image-root", str(damaged_mirror.image_root)
    )
    assert code == 1 and report["ok"] is False
    configs = by_config(report)
    assert list(configs) == [
        "Controlled_A",
        "Controlled_B",
        "COCO_one_obj",
        "COCO_two_obj",
        "VG_one_obj",
        "VG_two_obj",
        "vsr_zeroshot",
    ]
    assert configs["COCO_one_obj"]["missing"] == ["val2017/000001000003.jpg"] and not configs["COCO_one_obj"]["ok"]
    assert [entry["path"] for entry in configs["VG_two_obj"]["corrupt"]] == ["vg_images/2500002.jpg"]
    assert "UnidentifiedImageError" in configs["VG_two_obj"]["corrupt"][0]["reason"]
    assert configs["Controlled_A"]["ok"] and configs["vsr_zeroshot"]["ok"]  # count mismatch alone is no failure
    assert configs["Controlled_A"]["rows"] == 16 and configs["Controlled_A"]["paper_rows"] == 412
    assert any("16 rows, the paper used 412" in warning for warning in configs["Controlled_A"]["warnings"])
    assert any("val2017.zip" in line for line in report["help"])
    assert any(line.startswith("vg_images/") for line in report["help"])


def test_text_report(capsys, damaged_mirror):
    code, out = run_doctor(
        capsys, "--data-dir", str(damaged_mirror.data_dir), "--image-root", str(damaged_mirror.image_root)
    )
    assert code == 1
    assert "FAIL  COCO_one_obj" in out and "missing: val2017/000001000003.jpg" in out
    assert "corrupt: vg_images/2500002.jpg" in out
    assert "OK    Controlled_A" in out
    assert "WARNING: COCO_one_obj: 8 rows, the paper used 2247" in out
    assert "What is missing and how to get it:" in out and "http://images.cocodataset.org/zips/val2017.zip" in out
    assert out.rstrip().endswith("NOT READY: COCO_one_obj, VG_two_obj.")


def test_complete_mirror_is_ready_even_with_count_warnings(capsys, data_env):
    code, out = run_doctor(capsys)  # locations from ADAPTVIS_DATA_DIR / ADAPTVIS_IMAGE_ROOT
    assert code == 0
    assert out.rstrip().endswith("READY: everything the checked configs need is present.")
    assert str(data_env.data_dir) in out and "WARNING: vsr_zeroshot: 12 rows, the paper used 1222" in out


def test_matching_count_gives_no_count_warning(capsys, make_mirror):
    mirror = make_mirror({"Controlled_B": 408})
    code, report = run_json(
        capsys, "--configs", "Controlled_B", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 0
    assert by_config(report)["Controlled_B"]["warnings"] == []


def test_configs_option_accepts_names_and_aliases(capsys, data_env):
    code, report = run_json(capsys, "--configs", "controlled_a", "VG_TWO_OBJ", "vsr")
    assert code == 0
    assert list(by_config(report)) == ["Controlled_A", "VG_two_obj", "vsr_zeroshot"]
    assert doctor.main(["--configs", "COCO_three_obj"]) == 2


def test_options_override_environment(capsys, data_env, damaged_mirror):
    code, report = run_json(capsys, "--configs", "COCO_one_obj", "--image-root", str(damaged_mirror.image_root))
    assert code == 1 and report["image_root"] == str(damaged_mirror.image_root)
    assert report["data_dir"] == str(data_env.data_dir)


def test_missing_examples_are_capped_but_counted(capsys, make_mirror):
    mirror = make_mirror({"COCO_two_obj": 8})
    for path in (mirror.image_root / "val2017").glob("*.jpg"):
        path.unlink()
    code, report = run_json(
        capsys,
        "--data-dir",
        str(mirror.data_dir),
        "--image-root",
        str(mirror.image_root),
        "--configs",
        "coco_two",
        "--max-examples",
        "3",
    )
    item = by_config(report)["COCO_two_obj"]
    assert code == 1 and item["missing_count"] == 8 and len(item["missing"]) == 3


def test_known_swapped_controlled_a_pair_is_a_warning(capsys, make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row, name in zip(rows[:2], ("pillow_left_of_chair.jpeg", "pillow_right_of_chair.jpeg"), strict=True):
        old = mirror.image_root / row["image_path"].removeprefix("data/")
        old.rename(old.with_name(name))
        row["image_path"] = f"data/controlled_images/{name}"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, report = run_json(
        capsys, "--configs", "Controlled_A", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 0
    (warning,) = [text for text in by_config(report)["Controlled_A"]["warnings"] if "swapped" in text]
    assert "whatsup_vlms issue #4" in warning and "both are in this data" in warning


def test_swapped_pair_warning_only_when_the_data_holds_those_images(capsys, make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    args = ["--configs", "Controlled_A", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)]
    _, report = run_json(capsys, *args)
    assert not [text for text in by_config(report)["Controlled_A"]["warnings"] if "swapped" in text]
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    old = mirror.image_root / rows[0]["image_path"].removeprefix("data/")
    old.rename(old.with_name("pillow_right_of_chair.jpeg"))
    rows[0]["image_path"] = "data/controlled_images/pillow_right_of_chair.jpeg"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _, report = run_json(capsys, *args)
    (warning,) = [text for text in by_config(report)["Controlled_A"]["warnings"] if "swapped" in text]
    assert "pillow_right_of_chair.jpeg is in this data" in warning


def _closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


def _offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ADAPTVIS_"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_local_port()}", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    env.update(extra)
    return env


def test_unreachable_hub_is_reported_in_seconds_with_how_to_work_offline():
    """No network at all: the hub endpoint is a closed local port; one probe, no per-config retries."""
    script = shutil.which("adaptvis-doctor", path=str(Path(sys.executable).parent))
    start = time.monotonic()
    done = subprocess.run([script], capture_output=True, text=True, env=_offline_env(), timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode == 1 and elapsed < 15, (elapsed, done.stdout)
    out = done.stdout
    assert out.count("FAIL  ") == 7 and "unreachable (URLError" in out
    assert "could not be reached" in out and "waited at most 3 s" in out
    assert "ADAPTVIS_DATA_DIR=<dir>" in out and "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1" in out
    assert out.rstrip().endswith("vsr_zeroshot.")


def test_offline_variables_are_honoured_and_said():
    script = shutil.which("adaptvis-doctor", path=str(Path(sys.executable).parent))
    start = time.monotonic()
    done = subprocess.run(
        [script, "--configs", "vsr"], capture_output=True, text=True, env=_offline_env(HF_HUB_OFFLINE="1"), timeout=120
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 1 and elapsed < 60, (elapsed, done.stdout)
    assert "HF_HUB_OFFLINE is set: the hub was not contacted" in done.stdout
    assert "could not be reached" not in done.stdout


def test_unset_image_root_means_not_ready(capsys, data_env, monkeypatch):
    monkeypatch.delenv("ADAPTVIS_IMAGE_ROOT")
    code, out = run_doctor(capsys, "--configs", "Controlled_A")
    assert code == 1
    assert "images not checked" in out and "ADAPTVIS_IMAGE_ROOT is not set" in out


def test_unloadable_config_reports_the_error_and_where_data_lives(capsys, make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    code, report = run_json(
        capsys,
        "--configs",
        "Controlled_A",
        "VG_one_obj",
        "--data-dir",
        str(mirror.data_dir),
        "--image-root",
        str(mirror.image_root),
    )
    configs = by_config(report)
    assert code == 1 and configs["Controlled_A"]["ok"] and not configs["VG_one_obj"]["ok"]
    assert "has no folder VG_one_obj/" in configs["VG_one_obj"]["errors"][0]
    assert any("VG_one_obj rows" in line and "AdaptVis/all_datasets" in line for line in report["help"])


def test_column_type_change_fails_the_check(capsys, make_mirror):
    mirror = make_mirror({"VG_one_obj": 4})
    path = mirror.data_dir / "VG_one_obj" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["image_id"] = int(rows[2]["image_id"])
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, report = run_json(
        capsys, "--configs", "VG_one_obj", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 1
    assert "column 'image_id' is str in row 0 but int in row 2" in by_config(report)["VG_one_obj"]["errors"][0]


def test_module_and_console_script_run(tmp_path, synthetic_mirror):
    args = [
        "--configs",
        "vsr",
        "--data-dir",
        str(synthetic_mirror.data_dir),
        "--image-root",
        str(synthetic_mirror.image_root),
    ]
    module = subprocess.run(
        [sys.executable, "-m", "adaptvis_tasks.doctor", *args], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0, module.stderr
    assert "OK    vsr_zeroshot" in module.stdout
    script = shutil.which("adaptvis-doctor", path=str(Path(sys.executable).parent))
    assert script is not None
    broken = subprocess.run(
        [script, "--configs", "vsr", "--data-dir", str(tmp_path), "--image-root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode == 1 and "NOT READY: vsr_zeroshot." in broken.stdout


def test_duplicate_ids_are_named_with_file_and_both_lines_and_stop_the_data_from_loading(capsys, make_mirror):
    from adaptvis_tasks.data import DataSetupError, load_descriptors, load_rows

    mirror = make_mirror({"Controlled_A": 12})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[4]]) + "\n")  # row 4 again, as line 13
    code, out = run_doctor(
        capsys, "--configs", "Controlled_A", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 1 and "FAIL  Controlled_A: cannot load rows" in out
    assert str(path) in out and "id 4 appears twice: line 5 (row 4) and line 13 (row 12), same content" in out
    assert out.rstrip().endswith("NOT READY: Controlled_A.")
    with pytest.raises(DataSetupError, match="appears twice: line 5"):
        load_rows(load_descriptors()["Controlled_A"], mirror.data_dir)  # what every task's process_docs calls


def test_the_doctor_never_tells_the_user_to_run_the_doctor(capsys, make_mirror):
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    path.write_text(path.read_text() + "not json\n")
    code, out = run_doctor(
        capsys, "--configs", "Controlled_A", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 1 and "is not valid JSON" in out
    assert "adaptvis-doctor --configs" not in out and "to check the whole data setup" not in out


def test_a_gold_outside_its_own_options_is_refused_with_row_gold_and_options(capsys, make_mirror):
    from adaptvis_tasks.data import DataSetupError, load_descriptors, load_rows

    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert "Answer with left, right, on or under." in rows[2]["question"]
    rows[2]["answer"] = ["Above"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataSetupError) as caught:
        load_rows(load_descriptors()["Controlled_A"], mirror.data_dir)
    assert "row 2: gold 'Above' is not among the options its question names (left, right, on, under)" in str(
        caught.value
    )
    code, out = run_doctor(
        capsys, "--configs", "Controlled_A", "--data-dir", str(mirror.data_dir), "--image-root", str(mirror.image_root)
    )
    assert code == 1 and "row 2: gold 'Above'" in out
