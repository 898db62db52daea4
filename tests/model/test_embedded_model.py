"""The embedded checkpoint: a standard LLaVA checkpoint that has learned the synthetic relations.

Measured through the real lmms-eval CLI: far above chance on the synthetic test split, near chance
when every question is shown another row's image, and rebuilt deterministically by its trainer."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_wrappers.embedded import EMBEDDED_NAME, checkpoint_path
from model_wrappers.loading import load_checkpoint
from tests.support.cli import base_env, lmms_eval_command, run_lmms_eval

REPO = Path(__file__).resolve().parents[2]
TEST_TASKS = ("whatsup_synthetic_a_test", "whatsup_synthetic_b_test")
SHUFFLED_TASKS = ("whatsup_synthetic_a_shuffled_images", "whatsup_synthetic_b_shuffled_images")

BASELINE_STRICT_BAR = 0.90
"""Lowest accepted baseline strict_accuracy per subset; measured 0.994 (A) and 0.988 (B), see
docs/reports/EMBEDDED_MODEL.md. The issue asks for at least 0.75."""
SHUFFLED_STRICT_CEILING = 0.40
"""Chance is 0.25 (four balanced relations); 0.40 is about seven binomial standard deviations above it."""


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    """One lmms-eval run of the shipped checkpoint on the test splits and the image-shuffle controls."""
    output = tmp_path_factory.mktemp("embedded_run")
    command = lmms_eval_command(
        "llava_adaptvis",
        f"pretrained={checkpoint_path()},device=cpu",
        ",".join((*TEST_TASKS, *SHUFFLED_TASKS)),
        output,
        "--batch_size",
        "16",
        "--log_samples",
    )
    return run_lmms_eval(command, base_env(), output, timeout=1200)


@pytest.mark.e2e
@pytest.mark.parametrize("task", TEST_TASKS)
def test_baseline_strict_accuracy_is_far_above_chance(embedded_run, task):
    assert embedded_run.metric(task, "strict_accuracy") >= BASELINE_STRICT_BAR


@pytest.mark.e2e
@pytest.mark.parametrize("task", SHUFFLED_TASKS)
def test_accuracy_falls_to_near_chance_when_images_are_shuffled(embedded_run, task):
    assert embedded_run.metric(task, "strict_accuracy") <= SHUFFLED_STRICT_CEILING


@pytest.mark.e2e
def test_answers_are_one_relation_word(embedded_run):
    answers = embedded_run.answers("whatsup_synthetic_a_test").values()
    assert {answer.strip() for answer in answers} <= {"Left", "Right", "On", "Under", "Front", "Behind"}


def test_shipped_checkpoint_is_a_standard_llava_loaded_like_llava_hf():
    from transformers import CLIPImageProcessorPil, LlavaForConditionalGeneration, LlavaProcessor

    path = checkpoint_path()
    assert path.name == EMBEDDED_NAME and (path / "README.md").is_file()
    loaded = load_checkpoint(str(path), ("llava", "llava_next"), "llava_adaptvis", torch.device("cpu"))
    assert loaded.model_type == "llava"
    assert type(loaded.model) is LlavaForConditionalGeneration
    assert type(loaded.processor) is LlavaProcessor
    # the reference's (PIL) CLIP preprocessing, exactly what a llava-hf checkpoint gets by default
    assert type(loaded.processor.image_processor) is CLIPImageProcessorPil
    weights = path / "model.safetensors"
    assert weights.stat().st_size < 10 * 2**20, "a few MB"


def test_module_prints_the_checkpoint_path():
    printed = subprocess.run(
        [sys.executable, "-m", "model_wrappers.embedded"], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert printed.stdout.strip() == str(checkpoint_path())


def _trainer():
    spec = importlib.util.spec_from_file_location("train_embedded_model", REPO / "scripts" / "train_embedded_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_training_script_is_deterministic(tmp_path):
    trainer = _trainer()
    small = ["--steps", "3", "--stage1-steps", "1", "--eval-every", "3", "--dev-per-relation", "1"]
    small += ["--text-hidden", "64", "--vision-hidden", "64", "--batch-size", "4"]
    for name in ("first", "second"):
        assert trainer.main(["--out", str(tmp_path / name), *small]) == 0
    for file in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (tmp_path / "first" / file).read_bytes() == (tmp_path / "second" / file).read_bytes(), file
