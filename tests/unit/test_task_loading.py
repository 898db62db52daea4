"""Every task and group loads through lmms-eval on the synthetic mirror and reports its metrics."""

from __future__ import annotations

import json

import pytest
from lmms_eval.api.model import lmms
from lmms_eval.tasks import get_task_dict
from lmms_eval.utils import make_table

from adaptvis_tasks import splits
from adaptvis_tasks.data import DataSetupError, ImageLoadError
from adaptvis_tasks.spatial import SPATIAL_TASKS
from adaptvis_tasks.synthetic import SMALL_ROWS

SUBSETS = {
    "controlled_a": "Controlled_A",
    "controlled_b": "Controlled_B",
    "coco_one": "COCO_one_obj",
    "coco_two": "COCO_two_obj",
    "vg_one": "VG_one_obj",
    "vg_two": "VG_two_obj",
}
VARIANTS = {
    "whatsup_controlled_a_two_options": "Controlled_A",
    "whatsup_controlled_b_two_options": "Controlled_B",
    "whatsup_coco_one_six_options": "COCO_one_obj",
    "whatsup_coco_two_six_options": "COCO_two_obj",
    "whatsup_controlled_a_reversed": "Controlled_A",
    "whatsup_controlled_b_reversed": "Controlled_B",
    "whatsup_coco_two_reversed": "COCO_two_obj",
    "whatsup_vg_two_reversed": "VG_two_obj",
}
VSR_TASKS = (
    "vsr_zeroshot",
    "vsr_zeroshot_val",
    "vsr_zeroshot_test",
    "vsr_zeroshot_reference_resize",
    "vsr_zeroshot_reference_resize_val",
    "vsr_zeroshot_reference_resize_test",
)
GROUPS = {
    "whatsup": [f"whatsup_{short}" for short in SUBSETS],
    "whatsup_val": [f"whatsup_{short}_val" for short in SUBSETS],
    "whatsup_test": [f"whatsup_{short}_test" for short in SUBSETS],
    "whatsup_variants": list(VARIANTS),
    "adaptvis_general": ["pope_adv", "pope_pop", "pope_random", "gqa"],
    "adaptvis_paper": ["whatsup", "vsr_zeroshot", "adaptvis_general"],
}


def expected_rows(task: str) -> int:
    """Doc count of a task on the small synthetic mirror."""
    subset = (
        "vsr_zeroshot"
        if task.startswith("vsr")
        else VARIANTS.get(task) or SUBSETS[task.split("_")[1] + "_" + task.split("_")[2]]
    )
    n = SMALL_ROWS[subset]
    if task.endswith("_val"):
        return len(splits.validation_indices(n))
    if task.endswith("_test"):
        return len(splits.test_indices(n))
    return n


def leaf_tasks(task_dict: dict) -> dict:
    """{task name: Task} of a (nested) lmms-eval task dict."""
    leaves = {}
    for key, value in task_dict.items():
        if isinstance(value, dict):
            leaves.update(leaf_tasks(value))
        else:
            leaves[key] = value
    return leaves


SYNTHETIC_TASKS = [
    f"whatsup_synthetic_{short}{suffix}" for short in ("a", "b") for suffix in ("", "_val", "_test", "_shuffled_images")
]
"""The synthetic WhatsUp-style tasks (packaged data; tested in tests/model/test_synthetic_benchmark.py)."""
SYNTHETIC_GROUPS = ["whatsup_synthetic", "whatsup_synthetic_val", "whatsup_synthetic_test"]
SPATIAL_LAYERS = [f"{name}{suffix}" for name in SPATIAL_TASKS for suffix in ("_val", "_test")]
SPATIAL_GROUPS = ["adaptvis_spatial", "adaptvis_spatial_val", "adaptvis_spatial_test"]
"""The lmms-eval spatial tasks' layers and groups (docs/guides/TASKS.md, "lmms-eval's spatial tasks")."""

ALL_TASKS = sorted(
    [f"whatsup_{short}{suffix}" for short in SUBSETS for suffix in ("", "_val", "_test")]
    + list(VARIANTS)
    + list(VSR_TASKS)
)


# ----------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------


def test_index_holds_exactly_the_documented_tasks_and_groups(task_manager):
    manager = task_manager()
    assert sorted(manager.all_subtasks) == sorted(ALL_TASKS + SYNTHETIC_TASKS)
    python_tasks = [name for name, entry in manager.task_index.items() if entry["type"] == "python_task"]
    assert sorted(python_tasks) == sorted(SPATIAL_LAYERS)  # lmms-eval's spatial tasks' _val/_test layers
    assert sorted(manager.all_groups) == sorted([*GROUPS, *SYNTHETIC_GROUPS, *SPATIAL_GROUPS])
    for group, members in GROUPS.items():
        assert manager._get_config(group)["task"] == members


def test_no_name_collides_with_lmms_eval_builtins(task_manager, builtin_task_index):
    ours = set(task_manager().all_tasks)
    assert len(builtin_task_index) > 1000  # really lmms-eval's own index
    assert ours.isdisjoint(builtin_task_index), sorted(ours & set(builtin_task_index))


def test_general_group_members_are_lmms_eval_builtins(builtin_task_index):
    for name in GROUPS["adaptvis_general"]:
        assert builtin_task_index[name]["type"] == "task"
        assert "/lmms_eval/tasks/" in builtin_task_index[name]["yaml_path"]


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def test_every_task_and_group_of_ours_loads_on_the_local_mirror(data_env, task_manager):
    loaded = task_manager().load_task_or_group(
        ["whatsup", "whatsup_val", "whatsup_test", "whatsup_variants", *VSR_TASKS]
    )
    tasks = leaf_tasks(loaded)
    assert sorted(tasks) == ALL_TASKS
    for name, task in tasks.items():
        docs = task.test_docs()
        assert len(docs) == expected_rows(name), name
        assert {"row", "subset"} <= set(docs.features)
        assert task.doc_to_text(docs[0]) and task.doc_to_target(docs[0])
        visuals = task.doc_to_visual(docs[0])
        assert len(visuals) == 1 and visuals[0].mode == "RGB"


def test_val_and_test_tasks_hold_the_papers_rows(data_env, task_manager):
    tasks = leaf_tasks(task_manager().load_task_or_group(["whatsup_controlled_a_val", "whatsup_controlled_a_test"]))
    assert list(tasks["whatsup_controlled_a_val"].test_docs()["row"]) == list(splits.validation_indices(16))
    assert list(tasks["whatsup_controlled_a_test"].test_docs()["row"]) == list(splits.test_indices(16))


def test_get_task_dict_loads_by_name(data_env, task_manager):
    task_dict = get_task_dict(["whatsup_coco_two", "vsr_zeroshot"], task_manager())
    assert sorted(leaf_tasks(task_dict)) == ["vsr_zeroshot", "whatsup_coco_two"]


def test_generation_settings(data_env, task_manager):
    for task in leaf_tasks(task_manager().load_task_or_group(["whatsup_vg_one", "vsr_zeroshot"])).values():
        kwargs = task.config.generation_kwargs
        assert kwargs == {"max_new_tokens": 100, "temperature": 0.0, "do_sample": False, "num_beams": 1, "until": []}
        assert task.config.output_type == "generate_until"


@pytest.mark.parametrize(
    ("model_name", "templated"),
    [(None, False), ("llava_adaptvis", True), ("qwen2_vl_adaptvis", False), ("llava_hf", False)],
)
def test_prompt_format_follows_the_model_name(data_env, task_manager, model_name, templated):
    tasks = leaf_tasks(task_manager(model_name).load_task_or_group(["whatsup_controlled_b", "vsr_zeroshot"]))
    whatsup_text = tasks["whatsup_controlled_b"].doc_to_text(tasks["whatsup_controlled_b"].test_docs()[0])
    vsr_text = tasks["vsr_zeroshot"].doc_to_text(tasks["vsr_zeroshot"].test_docs()[0])
    if templated:
        assert whatsup_text.startswith("<image>\nUSER: Where ") and whatsup_text.endswith("\nASSISTANT:")
        assert vsr_text.startswith("User: <image>\n Determine whether") and vsr_text.endswith(" Assistant:")
    else:
        assert whatsup_text.startswith("Where ") and "<image>" not in whatsup_text and "USER:" not in whatsup_text
        assert vsr_text.startswith("Determine whether") and "Assistant:" not in vsr_text


def test_chat_task_type_builds_image_and_bare_text_messages(data_env, task_manager):
    task = leaf_tasks(task_manager("qwen2_vl_adaptvis").load_task_or_group(["whatsup_coco_one"], task_type="chat"))[
        "whatsup_coco_one"
    ]
    messages = task.doc_to_messages(task.test_docs()[0])
    content = messages[0]["content"]
    assert [part["type"] for part in content] == ["image", "text"]
    assert content[1]["text"].startswith("Where ") and "<image>" not in content[1]["text"]


# ----------------------------------------------------------------------------------------------
# Errors surface with our message through TaskManager (not as tenacity's RetryError)
# ----------------------------------------------------------------------------------------------


def test_invalid_row_fails_task_loading_with_data_setup_error(make_mirror, monkeypatch, task_manager):
    mirror = make_mirror({"Controlled_A": 8})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[5])
    row["answer"] = []
    lines[5] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(mirror.data_dir))
    with pytest.raises(DataSetupError) as caught:
        task_manager().load_task_or_group(["whatsup_controlled_a_test"])
    message = str(caught.value)
    for part in (str(path), "row 5", "'answer'", "ADAPTVIS_DATA_DIR", "adaptvis-doctor"):
        assert part in message


def test_missing_config_folder_fails_task_loading_naming_the_expected_files(make_mirror, monkeypatch, task_manager):
    mirror = make_mirror({"Controlled_A": 4})
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(mirror.data_dir))
    with pytest.raises(DataSetupError, match=r"VG_two_obj/test\.jsonl"):
        get_task_dict(["whatsup"], task_manager())


def test_missing_image_fails_at_doc_to_visual_with_image_load_error(make_mirror, monkeypatch, task_manager):
    mirror = make_mirror({"COCO_one_obj": 4})
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(mirror.data_dir))
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mirror.image_root))
    task = leaf_tasks(task_manager().load_task_or_group(["whatsup_coco_one"]))["whatsup_coco_one"]
    doc = task.test_docs()[2]
    (mirror.image_root / "val2017" / f"{doc['image_id']:012d}.jpg").unlink()
    with pytest.raises(ImageLoadError, match="COCO_one_obj row 2"):
        task.doc_to_visual(doc)


# ----------------------------------------------------------------------------------------------
# Metrics survive lmms-eval's evaluation, results JSON and printed table
# ----------------------------------------------------------------------------------------------


class ScriptedModel(lmms):
    """Answers from a function of the doc (no model); checks that images load on the way."""

    def __init__(self, answer) -> None:
        super().__init__()
        self.answer = answer

    def generate_until(self, requests):
        outputs = []
        for request in requests:
            context, _gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            assert doc_to_visual(doc)[0].mode == "RGB"
            outputs.append(self.answer(task, doc, context))
        return outputs

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def _evaluate(task_dict, answer):
    from lmms_eval.evaluator import evaluate

    model = ScriptedModel(answer)
    for name, task in leaf_tasks(task_dict).items():
        model.task_dict[name] = task.dataset
    return evaluate(
        model, task_dict, bootstrap_iters=0, log_samples=False, verbosity="WARNING", process_docs_parallel=1
    )


def test_metrics_appear_in_results_json_and_table(data_env, task_manager):
    task_dict = task_manager().load_task_or_group(["whatsup_controlled_a", "whatsup_coco_two", "vsr_zeroshot"])
    wrong_rows = {1, 2}

    def answer(task, doc, _context):
        if task == "vsr_zeroshot":
            return "Yes" if doc["row"] % 3 else "No"  # rows 0, 3, 6, 9 say No
        gold = doc["answer"][0]
        return "I cannot tell" if doc["row"] in wrong_rows else f"{gold}."

    results = _evaluate(task_dict, answer)
    serialised = json.loads(json.dumps(results["results"], default=str))
    controlled = serialised["whatsup_controlled_a"]
    assert controlled["accuracy,none"] == pytest.approx(14 / 16)
    assert controlled["strict_accuracy,none"] == pytest.approx(14 / 16)
    assert {"pair_accuracy,none", "set_accuracy,none"} <= set(controlled)
    relation_metrics = {key for key in controlled if key.startswith("accuracy_") and "stderr" not in key}
    assert relation_metrics == {"accuracy_left,none", "accuracy_right,none", "accuracy_on,none", "accuracy_under,none"}
    coco = serialised["whatsup_coco_two"]
    assert "pair_accuracy,none" not in coco and "accuracy_on,none" not in coco
    assert all(0.0 <= value <= 1.0 for key, value in coco.items() if key.endswith(",none") and isinstance(value, float))
    docs = leaf_tasks(task_dict)["vsr_zeroshot"].test_docs()
    labels = [int(label) for label in docs["label"]]
    says_yes = [row % 3 != 0 for row in docs["row"]]
    tp = sum(1 for label, yes in zip(labels, says_yes, strict=True) if label == 1 and yes)
    fn = sum(1 for label, yes in zip(labels, says_yes, strict=True) if label == 1 and not yes)
    tn = sum(1 for label, yes in zip(labels, says_yes, strict=True) if label == 0 and not yes)
    fp = sum(1 for label, yes in zip(labels, says_yes, strict=True) if label == 0 and yes)
    vsr_results = serialised["vsr_zeroshot"]
    assert vsr_results["accuracy,none"] == pytest.approx((tp + tn) / len(labels))
    assert vsr_results["f1,none"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    tpr, tnr = tp / (tp + fn), tn / (tn + fp)
    assert vsr_results["paper_f1,none"] == pytest.approx(2 * tpr * tnr / (tpr + tnr))
    table = make_table(results)
    for name in ("pair_accuracy", "set_accuracy", "accuracy_under", "strict_accuracy", "paper_f1"):
        assert f"|{name}" in table.replace(" ", "")


def test_pair_and_set_accuracy_are_one_when_every_answer_is_right(data_env, task_manager):
    task_dict = task_manager().load_task_or_group(["whatsup_controlled_b"])
    results = _evaluate(task_dict, lambda _task, doc, _context: doc["answer"][0])["results"]["whatsup_controlled_b"]
    assert (results["pair_accuracy,none"], results["set_accuracy,none"], results["accuracy,none"]) == (1.0, 1.0, 1.0)


def test_every_yaml_function_prints_as_its_import_path_not_a_memory_address():
    """lmms-eval writes str(task function) into results JSON; it must not change between runs."""
    import importlib
    import inspect
    import re
    from pathlib import Path

    from yaml_tasks import tasks_dir

    referenced = set()
    for path in Path(tasks_dir()).rglob("*"):
        if path.is_file() and (path.suffix == ".yaml" or path.name.endswith("_yaml")):
            referenced |= set(re.findall(r"!function\s+([\w.]+)", path.read_text()))
    assert len(referenced) >= 20
    for dotted in sorted(referenced):
        module, name = dotted.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name)
        assert str(function) == dotted
        assert " at 0x" not in repr(function)
        assert list(inspect.signature(function).parameters)  # signature still visible to lmms-eval
