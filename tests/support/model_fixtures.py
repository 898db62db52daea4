"""Tiny random checkpoints built from configs at session start (seconds on CPU, no network).

The LLaVA-1.5 checkpoint carries the real Llama-2 vocabulary in llava-hf's tokenizer format, so
every test that sends it a paper prompt tokenizes exactly as llava-hf/llava-1.5-7b-hf does (the
vocabulary comes from the npm package that ``make test`` fetches; ``tests/support/llama_vocabulary.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.llama_vocabulary import load_llama_vocabulary
from tests.support.tiny_checkpoints import (
    LlamaVocabulary,
    build_tiny_llava,
    build_tiny_llava_onevision,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen2_vl,
    build_tiny_qwen3_vl,
)

ARCHITECTURES = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision")
MROPE_ARCHITECTURES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
"""Families with 3-D multimodal RoPE position ids (``get_rope_index``)."""


@pytest.fixture(scope="session")
def llama_vocabulary() -> LlamaVocabulary:
    """The Llama-2 vocabulary (32,000 pieces and merges); a clear error if ``make test`` has not fetched it."""
    return load_llama_vocabulary()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, llama_vocabulary) -> dict[str, Path]:
    """Paths of the tiny checkpoints keyed by model_type (LLaVA-1.5 with the real Llama vocabulary)."""
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    return {
        "llava": build_tiny_llava(root / "llava", vocabulary=llama_vocabulary),
        "llava_next": build_tiny_llava(root / "llava_next", next_version=True),
        "qwen2_vl": build_tiny_qwen2_vl(root / "qwen2_vl"),
        "qwen2_5_vl": build_tiny_qwen2_5_vl(root / "qwen2_5_vl"),
        "qwen3_vl": build_tiny_qwen3_vl(root / "qwen3_vl"),
        "llava_onevision": build_tiny_llava_onevision(root / "llava_onevision"),
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


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tiny_checkpoints) -> Path:
    return tiny_checkpoints["qwen2_5_vl"]


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tiny_checkpoints) -> Path:
    return tiny_checkpoints["qwen3_vl"]


@pytest.fixture(scope="session")
def tiny_llava_onevision(tiny_checkpoints) -> Path:
    return tiny_checkpoints["llava_onevision"]
