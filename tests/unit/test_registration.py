"""Installed beside lmms-eval, the suite's models and tasks are found with no extra flags.

These tests pin down what the registration relies on in lmms-eval (0.7.3): the
``lmms_eval.models`` entry-point group with ``ModelManifest`` payloads, entry points being loaded
when ``lmms_eval.models`` is imported (before any ``TaskManager`` exists), and
``TaskManager.initialize_tasks(include_path, include_defaults)``. If a future lmms-eval changes
any of these, a test here fails rather than the tasks silently disappearing.

The failure exit (``model_wrappers.lmms_plugin.failure_exit``) relies on the CLI building its ``TaskManager`` before
it calls ``evaluator.simple_evaluate`` by attribute, with ``cli_args``, and catching only
``Exception``; a test here pins that too.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from model_wrappers.lmms_plugin.failure_exit import install_failure_exit
from model_wrappers.registry import MODEL_CLASSES, install_task_discovery
from tests.support.cli import LMMS_EVAL, base_env
from yaml_tasks import tasks_dir

OUR_GROUPS = {"whatsup", "whatsup_val", "whatsup_test", "adaptvis_general", "adaptvis_paper"}


def test_entry_point_is_declared_in_the_lmms_eval_models_group():
    ours = [ep for ep in entry_points().select(group="lmms_eval.models") if ep.value.startswith("model_wrappers.")]
    assert [ep.value for ep in ours] == ["model_wrappers.registry:model_manifests"]


def test_lmms_eval_resolves_both_model_names_to_our_classes():
    from lmms_eval.models import get_model, get_model_manifest

    from model_wrappers.llava import LlavaAdaptVis
    from model_wrappers.qwen2_vl import Qwen2VLAdaptVis

    assert get_model("llava_adaptvis") is LlavaAdaptVis
    assert get_model("qwen2_vl_adaptvis") is Qwen2VLAdaptVis
    for name, path in MODEL_CLASSES.items():
        manifest = get_model_manifest(name)
        assert manifest.simple_class_path == path and manifest.chat_class_path is None


@pytest.mark.e2e
def test_importing_lmms_eval_models_makes_a_default_task_manager_index_our_tasks():
    """In a fresh interpreter: the order lmms-eval's CLI imports things in."""
    code = (
        "import lmms_eval.models\n"
        "from lmms_eval.tasks import TaskManager\n"
        "manager = TaskManager('WARNING')\n"
        "print(sorted(n for n in manager.all_tasks if n.startswith(('whatsup', 'vsr_', 'adaptvis_'))))\n"
        "print(manager.task_index['whatsup_controlled_a']['yaml_path'])\n"
        "print('pope_adv' in manager.all_tasks)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base_env(), check=True)
    names_line, path_line, builtin_line = out.stdout.strip().splitlines()[-3:]
    names = eval(names_line)  # a printed list of str
    assert {"whatsup_controlled_a", "whatsup_vg_two_test", "vsr_zeroshot"} <= set(names)
    assert OUR_GROUPS <= set(names)
    assert path_line.startswith(tasks_dir())
    assert builtin_line == "True"  # lmms-eval's own tasks are still there


def test_the_hook_wraps_the_method_lmms_eval_builds_its_index_with():
    from lmms_eval.tasks import TaskManager

    install_task_discovery()
    install_task_discovery()  # idempotent
    original = TaskManager.initialize_tasks.__wrapped__
    assert list(inspect.signature(original).parameters) == ["self", "include_path", "include_defaults"]
    assert "self.initialize_tasks(" in inspect.getsource(TaskManager.__init__)
    assert not hasattr(original, "__wrapped__")  # wrapped exactly once


def test_include_path_fallback_finds_the_tasks_without_the_hook():
    """The documented fallback: ``--include_path "$(adaptvis-tasks-dir)"``."""
    from lmms_eval.tasks import TaskManager

    manager = object.__new__(TaskManager)
    manager.logger = __import__("loguru").logger
    unhooked = TaskManager.initialize_tasks.__wrapped__
    index = unhooked(manager, include_path=tasks_dir(), include_defaults=False)
    assert "whatsup_controlled_a" in index and "vsr_zeroshot" in index
    printed = subprocess.run(
        [str(__import__("pathlib").Path(sys.executable).parent / "adaptvis-tasks-dir")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == tasks_dir()


@pytest.mark.e2e
def test_lmms_eval_cli_lists_every_task_and_group():
    out = subprocess.run([LMMS_EVAL, "--tasks", "list"], capture_output=True, text=True, env=base_env(), timeout=300)
    listed = out.stdout + out.stderr
    from lmms_eval.tasks import TaskManager

    ours = TaskManager("WARNING", include_path=tasks_dir(), include_defaults=False).all_tasks
    assert OUR_GROUPS | {"whatsup_variants", "whatsup_controlled_a_reversed", "vsr_zeroshot_test"} <= set(ours)
    missing = [name for name in ours if f" - {name}\n" not in listed]
    assert missing == []


def test_the_failure_exit_wraps_the_function_the_cli_evaluates_with():
    import lmms_eval.__main__ as cli
    import lmms_eval.evaluator as evaluator
    from lmms_eval.tasks import TaskManager

    single = inspect.getsource(cli.cli_evaluate_single)
    # The CLI builds its TaskManager (whose hook installs the wrapper) before it looks up
    # evaluator.simple_evaluate, and marks the call as the CLI's with cli_args.
    assert single.index("TaskManager(") < single.index("evaluator.simple_evaluate(")
    assert "cli_args=args" in single and "verbosity=args.verbosity" in single
    # The SystemExit the wrapper raises must not be swallowed by the CLI's loop.
    loop = inspect.getsource(cli.cli_evaluate)
    assert "except Exception" in loop and "except BaseException" not in loop and "except:" not in loop
    install_task_discovery()
    TaskManager("WARNING", include_path=tasks_dir(), include_defaults=False)
    wrapped = evaluator.simple_evaluate
    assert getattr(wrapped, "__adaptvis_failure_exit__", False)
    assert install_failure_exit() and evaluator.simple_evaluate is wrapped  # idempotent
    original = wrapped.__wrapped__
    assert not getattr(original, "__adaptvis_failure_exit__", False)  # wrapped exactly once
    assert {"model", "model_args", "tasks", "verbosity", "cli_args"} <= set(inspect.signature(original).parameters)


def test_the_unknown_task_exit_wraps_the_method_the_cli_matches_task_names_with():
    import lmms_eval.__main__ as cli
    from lmms_eval.tasks import TaskManager

    single = inspect.getsource(cli.cli_evaluate_single)
    assert single.index("task_manager.match_tasks(task_list)") < single.index("Tasks not found")
    assert "self.model_name = model_name" in inspect.getsource(TaskManager.__init__)
    assert getattr(TaskManager.match_tasks, "__adaptvis_failure_exit__", False)  # installed by the entry point
    original = TaskManager.match_tasks.__wrapped__
    assert not hasattr(original, "__wrapped__")  # wrapped exactly once
    assert list(inspect.signature(original).parameters) == ["self", "task_list"]


def test_the_dataset_mirror_wraps_the_method_lmms_eval_loads_a_task_dataset_with():
    """``ConfigurableTask.download`` reads ``DATASET_PATH``/``DATASET_NAME`` and, given
    ``dataset_kwargs={"load_from_disk": True}``, calls ``datasets.load_from_disk(DATASET_PATH)``."""
    import lmms_eval.models  # noqa: F401  (loads the entry point, which installs the patch)
    from lmms_eval.api.task import ConfigurableTask

    assert getattr(ConfigurableTask.download, "__adaptvis_dataset_mirror__", False)
    source = inspect.getsource(ConfigurableTask.download.__wrapped__)
    assert 'dataset_kwargs["load_from_disk"]' in source
    assert "datasets.load_from_disk(dataset_path=self.DATASET_PATH)" in source


def test_the_dataset_mirror_loads_the_local_copy_and_restores_the_hub_path(tmp_path, monkeypatch):
    """Through lmms-eval's own ``download``: a local copy is loaded, a missing one goes to the hub as before."""
    from types import SimpleNamespace

    import datasets
    from lmms_eval.api.task import ConfigurableTask

    from model_wrappers.lmms_plugin.dataset_mirror import MIRROR_ENV, install_dataset_mirror, mirror_folder

    install_dataset_mirror()
    rows = datasets.DatasetDict(
        {"test": datasets.Dataset.from_dict({"question": ["left?", "right?"], "answer": ["A", "B"]})}
    )
    rows.save_to_disk(str(mirror_folder(tmp_path, "org/bench", "config")))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))

    task = object.__new__(ConfigurableTask)
    task.DATASET_PATH, task.DATASET_NAME = "org/bench", "config"
    task._config = SimpleNamespace(process_docs=None, process_results_use_image=False)
    ConfigurableTask.download(task, dataset_kwargs={"token": True})
    assert task.dataset["test"]["question"] == ["left?", "right?"]
    assert (task.DATASET_PATH, task.DATASET_NAME) == ("org/bench", "config")

    missing = object.__new__(ConfigurableTask)
    missing.DATASET_PATH, missing.DATASET_NAME = "org/absent", None
    missing._config = task._config
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda **kwargs: calls.append(kwargs) or rows)
    ConfigurableTask.download(missing, dataset_kwargs=None)
    assert [call["path"] for call in calls] == ["org/absent"]
