"""Tiny random checkpoints built from configs at session start (seconds on CPU, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_wrappers.tiny_checkpoints import build_tiny_llava, build_tiny_qwen2_vl

ARCHITECTURES = ("llava", "llava_next", "qwen2_vl")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Paths of a tiny LLaVA-1.5, LLaVA-1.6 and Qwen2-VL checkpoint, keyed by model_type."""
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    return {
        "llava": build_tiny_llava(root / "llava"),
        "llava_next": build_tiny_llava(root / "llava_next", next_version=True),
        "qwen2_vl": build_tiny_qwen2_vl(root / "qwen2_vl"),
    }


@pytest.fixture(scope="session")
def tiny_llava(tiny_checkpoints) -> Path:
    return tiny_checkpoints["llava"]


@pytest.fixture(scope="session")
def tiny_llava_next(tiny_checkpoints) -> Path:
    return tiny_checkpoints["llava_next"]


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tiny_checkpoints) -> Path:
    return tiny_checkpoints["qwen2_vl"]
