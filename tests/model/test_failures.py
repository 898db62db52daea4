"""Failed runs never look like successes (issue 9).

lmms-eval 0.7.3's CLI catches an evaluation's exception, logs "Error during evaluation" and exits
0. Runs that use this suite's models or tasks exit 1 instead, with a readable explanation
(``model_wrappers.lmms_plugin.failure_exit``). The CLI cases run the real lmms-eval entry point in subprocesses:
one console-script run, and one process that calls lmms-eval's CLI ``main`` once per case, exactly
as the console script does (``sys.exit(main())``), to pay lmms-eval's import and task-index time
only once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model_wrappers.launcher import launcher_shortfall
from model_wrappers.llava import LlavaAdaptVis
from model_wrappers.lmms_plugin.failure_exit import (
    explain_failure,
    explain_unknown_tasks,
    install_failure_exit,
    joined_with_bars,
    requested_subsets,
    stray_model_args,
    suite_task_subsets,
    uses_this_suite,
)
from model_wrappers.methods import MethodArgumentError
from tests.support.cli import LMMS_EVAL, base_env, lmms_eval_command

WHATSUP = ("Controlled_A", "Controlled_B", "COCO_one_obj", "COCO_two_obj", "VG_one_obj", "VG_two_obj")

# ----------------------------------------------------------------------------------------------
# Which runs are this suite's, and what the message says
# ----------------------------------------------------------------------------------------------


def test_every_task_and_group_maps_to_the_configs_it_reads(task_manager: Callable[..., Any]) -> None:
    subsets = suite_task_subsets()
    assert set(subsets) == set(task_manager().all_tasks)  # every name lmms-eval indexes in yaml_tasks/
    assert subsets["whatsup"] == WHATSUP
    assert subsets["whatsup_test"] == WHATSUP
    assert subsets["whatsup_variants"] == ("Controlled_A", "Controlled_B", "COCO_one_obj", "COCO_two_obj", "VG_two_obj")
    assert subsets["whatsup_vg_two_reversed"] == ("VG_two_obj",)
    assert subsets["vsr_zeroshot_test"] == ("vsr_zeroshot",)
    assert subsets["adaptvis_general"] == ()  # lmms-eval's POPE and GQA
    assert subsets["adaptvis_paper"] == (*WHATSUP, "vsr_zeroshot")
    assert requested_subsets(["vsr_zeroshot", "mme", "whatsup_coco_one_val"]) == ["COCO_one_obj", "vsr_zeroshot"]


def test_a_run_is_this_suites_when_its_model_or_any_task_is() -> None:
    assert uses_this_suite("llava_adaptvis", ["mme"])
    assert uses_this_suite("qwen2_vl_adaptvis", None)
    assert uses_this_suite("llava_hf", ["mme", "whatsup"])
    assert not uses_this_suite("llava_hf", ["mme", "pope_adv"])


def test_unknown_task_names_are_explained_for_this_suites_runs_only() -> None:
    known = ["mme", "pope_adv", *suite_task_subsets()]
    report = explain_unknown_tasks(["whatsup_vg_tow"], "llava_hf", known)  # close to one of ours
    assert report is not None and "whatsup_vg_tow: did you mean whatsup_vg_two" in report
    assert explain_unknown_tasks(["mmee"], "llava_adaptvis", known) is not None  # our model
    assert explain_unknown_tasks(["mmee"], "llava_hf", known) is None  # neither: lmms-eval's business


def test_a_comma_inside_a_list_value_is_named_with_the_corrected_arguments() -> None:
    model_args = "pretrained=m,method=sweep,alphas=0.5,0.8,1.2,trace=t.jsonl"
    assert stray_model_args(model_args) == ["0.8", "1.2"]
    assert joined_with_bars(model_args) == "pretrained=m,method=sweep,alphas=0.5|0.8|1.2,trace=t.jsonl"
    report = explain_failure(ValueError("not enough values to unpack (expected 2, got 1)"), model_args, ["whatsup"])
    assert "'0.8', '1.2' is not name=value" in report and "'|'" in report
    assert "--model_args 'pretrained=m,method=sweep,alphas=0.5|0.8|1.2,trace=t.jsonl'" in report
    assert stray_model_args("pretrained=m,alphas=0.5|0.8") == []


def test_real_accelerate_single_process_launch_of_several_processes_is_recognised() -> None:
    """The environment accelerate's own launcher builds for ``accelerate launch --num_processes N -m ...``."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_simple_launcher_cmd_env

    def launcher_env(processes: int) -> dict[str, str]:
        parsed = launch_command_parser().parse_args(["--num_processes", str(processes), "-m", "lmms_eval"])
        args, _, _ = _validate_launch_command(parsed)
        assert not args.multi_gpu  # no GPU here: accelerate picks its single-process launcher
        return prepare_simple_launcher_cmd_env(args)[1]

    with pytest.MonkeyPatch.context() as patch:
        for key in ("MASTER_ADDR", "WORLD_SIZE", "RANK"):
            patch.delenv(key, raising=False)
        two, one = launcher_env(2), launcher_env(1)
    warning = launcher_shortfall(two)
    assert warning is not None and "--multi_gpu" in warning and "ONE process" in warning
    assert launcher_shortfall(one) is None
    assert launcher_shortfall({**two, "WORLD_SIZE": "2", "RANK": "0"}) is None  # torchrun started them all
    assert launcher_shortfall({"MASTER_ADDR": "127.0.0.1", "PATH": "/usr/bin"}) is None  # not accelerate


def test_max_batch_size_is_refused_because_it_would_do_nothing(tiny_llava: Path) -> None:
    with pytest.raises(MethodArgumentError) as caught:
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", max_batch_size=8)
    assert "max_batch_size=8" in str(caught.value) and "--batch_size N" in str(caught.value)


def test_python_api_calls_of_simple_evaluate_still_raise_normally(task_manager: Callable[..., Any]) -> None:
    """Only the CLI (which passes ``cli_args``) is turned into an exit status."""
    import lmms_eval.evaluator

    from model_wrappers.loading import CheckpointError

    assert install_failure_exit()
    with pytest.raises(CheckpointError):
        lmms_eval.evaluator.simple_evaluate(
            model="llava_adaptvis",
            model_args="pretrained=/nonexistent/checkpoint",
            tasks=["whatsup_controlled_a"],
            task_manager=task_manager(),
        )


# ----------------------------------------------------------------------------------------------
# Through the real CLI
# ----------------------------------------------------------------------------------------------

_DRIVER = """
import functools, json, sys
from lmms_eval.cli.dispatch import main
from lmms_eval.tasks import TaskManager

# lmms-eval rebuilds the same index of its ~thousands of task YAML files for every run (~25 s
# here); build it once. This suite's hook still wraps this method, so it runs for every case.
_build_index = TaskManager.initialize_tasks
_cache = {}

@functools.wraps(_build_index)
def initialize_tasks(self, include_path=None, include_defaults=True):
    key = (repr(include_path), include_defaults)
    if key not in _cache:
        _cache[key] = _build_index(self, include_path=include_path, include_defaults=include_defaults)
    return dict(_cache[key])

TaskManager.initialize_tasks = initialize_tasks

for index, argv in enumerate(json.loads(sys.argv[1])):
    for stream in (sys.stdout, sys.stderr):
        print(f"<<case {index}>>", file=stream, flush=True)
    sys.argv = ["lmms-eval", *argv]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    print(f"<<exit {index} {code}>>", flush=True)
"""


def run_cases(cases: list[list[str]], env: dict[str, str]) -> list[tuple[int, str]]:
    """Run each argv through lmms-eval's CLI main in one subprocess; (exit status, log) per case."""
    completed = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(cases)], env=env, capture_output=True, text=True, timeout=900
    )
    results = []
    for index in range(len(cases)):
        marker = f"<<exit {index} "
        assert marker in completed.stdout, completed.stdout[-3000:] + completed.stderr[-3000:]
        code = int(completed.stdout.split(marker, 1)[1].split(">>", 1)[0])
        log = "".join(
            stream.split(f"<<case {index}>>", 1)[1].split(f"<<case {index + 1}>>", 1)[0]
            for stream in (completed.stdout, completed.stderr)
        )
        results.append((code, log))
    return results


MODEL_ARGUMENT_CASES = {
    "alpha=abc": ("method=scaling_vis,alpha=abc", [], "alpha='abc' is not a number"),
    "method=foo": ("method=foo", [], "method='foo' is not supported; allowed: baseline"),
    "baseline-with-alpha": ("method=baseline,alpha=0.8", [], "alpha is not used by method=baseline"),
    "misspelt-argument": ("method=scaling_vis,alpah=0.8", [], "unknown model argument(s) alpah"),
    "comma-in-alphas": ("method=sweep,alphas=0.5,0.8", [], "'0.8' is not name=value"),
    "max_batch_size": ("method=baseline", ["--max_batch_size", "8"], "max_batch_size=8 only bounds"),
}


@pytest.mark.e2e
def test_failed_runs_of_this_suite_exit_1_with_a_readable_message(
    tiny_llava: Path, synthetic_mirror: Any, tmp_path: Path
) -> None:
    output = tmp_path / "results"
    cases = [
        lmms_eval_command(
            "llava_adaptvis", f"pretrained={tiny_llava},device=cpu,{extra}", "whatsup_controlled_a", output, *flags
        )[1:]
        for extra, flags, _ in MODEL_ARGUMENT_CASES.values()
    ]
    missing_checkpoint = tmp_path / "no-such-checkpoint"
    cases.append(
        lmms_eval_command("llava_adaptvis", f"pretrained={missing_checkpoint}", "whatsup_controlled_a", output)[1:]
    )
    cases.append(
        lmms_eval_command("llava_adaptvis", f"pretrained={tiny_llava},device=cpu", "whatsup_controled_a", output)[1:]
    )
    # Another model on lmms-eval's own task: left exactly as lmms-eval handles it.
    cases.append(lmms_eval_command("llava_hf", f"pretrained={missing_checkpoint}", "mme", output)[1:])
    results = run_cases(cases, base_env(synthetic_mirror.data_dir, synthetic_mirror.image_root))

    expected = [text for _, _, text in MODEL_ARGUMENT_CASES.values()] + [f"pretrained='{missing_checkpoint}'"]
    for (code, log), text in zip(results[:-2], expected, strict=True):
        assert code == 1, log[-3000:]
        report = log[log.index("adaptvis-eval: the evaluation FAILED") :]
        assert text in report, report
        assert "No results were written. Exit status 1" in report
        assert "Error during evaluation" in log  # lmms-eval's own line is still printed
        assert "Error during evaluation" not in report  # ... and is the last line that says so
    assert "Did you mean: --model_args" in results[4][1] and "alphas=0.5|0.8'" in results[4][1]
    misspelt_task_code, misspelt_task_log = results[-2]
    assert misspelt_task_code == 1, misspelt_task_log[-3000:]
    assert "adaptvis-eval: unknown task name(s) in --tasks: whatsup_controled_a" in misspelt_task_log
    assert "whatsup_controled_a: did you mean whatsup_controlled_a" in misspelt_task_log
    foreign_code, foreign_log = results[-1]
    assert "Error during evaluation" in foreign_log and "adaptvis-eval:" not in foreign_log
    assert foreign_code == 0  # lmms-eval 0.7.3's own behaviour, unchanged for other models and tasks
    assert not list(output.rglob("*_results.json"))


@pytest.mark.e2e
def test_missing_configs_of_a_group_are_all_named_with_one_doctor_command(
    tiny_llava: Path, make_mirror: Callable[..., Any], tmp_path: Path
) -> None:
    """The console script itself, on ``--tasks whatsup`` with two of its six configs missing."""
    mirror = make_mirror({subset: 4 for subset in ("Controlled_A", "Controlled_B", "COCO_one_obj", "COCO_two_obj")})
    command = lmms_eval_command("llava_adaptvis", f"pretrained={tiny_llava},device=cpu", "whatsup", tmp_path / "out")
    assert command[0] == LMMS_EVAL
    completed = subprocess.run(
        command, env=base_env(mirror.data_dir, mirror.image_root), capture_output=True, text=True, timeout=600
    )
    log = completed.stdout + completed.stderr
    assert completed.returncode == 1, log[-3000:]
    report = completed.stderr[completed.stderr.index("adaptvis-eval: the evaluation FAILED") :]
    assert "(DataSetupError)" in report
    assert f"6 configuration(s); 2 missing from ADAPTVIS_DATA_DIR={mirror.data_dir}: VG_one_obj, VG_two_obj." in report
    assert f"adaptvis-doctor --configs {' '.join(WHATSUP)}" in report
    assert not list((tmp_path / "out").rglob("*_results.json"))
