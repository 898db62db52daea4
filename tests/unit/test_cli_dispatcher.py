"""The ``adaptvis`` command: one dispatcher, each sub-command owned by its module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model_wrappers import cli


def test_every_subcommand_module_provides_the_contract():
    for name, (module_name, summary) in cli.COMMANDS.items():
        module = __import__(module_name, fromlist=["run"])
        assert callable(module.add_arguments) and callable(module.run), name
        assert summary, name


def test_doctor_runs_through_the_dispatcher_with_its_exit_code(capsys):
    assert cli.main(["doctor", "--configs", "COCO_three_obj"]) == 2
    assert "COCO_three_obj" in capsys.readouterr().err


def test_unknown_subcommand_is_an_argparse_error():
    with pytest.raises(SystemExit) as caught:
        cli.main(["no-such-tool"])
    assert caught.value.code == 2


def test_top_level_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "model_wrappers.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in cli.COMMANDS:
        assert name in result.stdout
