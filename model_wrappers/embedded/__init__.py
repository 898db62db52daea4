"""The embedded default checkpoint: a tiny LLaVA-1.5-architecture model trained on synthetic WhatsUp.

``whatsup-synthetic-llava/`` is a complete Hugging Face checkpoint folder (weights, config,
tokenizer, ``LlavaProcessor`` with ``CLIPImageProcessor``) shipped inside the package, so the
suite's main job runs from a fresh clone with no training and no network. It is a toy trained by
``scripts/train_embedded_model.py`` on the synthetic benchmark's *training* object pairs (see its
``README.md`` and docs/EMBEDDED_MODEL.md); it loads through the same ``llava_adaptvis`` path as any
llava-hf checkpoint:

    lmms-eval --model llava_adaptvis --model_args pretrained=$(python -m model_wrappers.embedded),device=cpu \\
      --tasks whatsup_synthetic_test
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_NAME = "whatsup-synthetic-llava"


def checkpoint_path() -> Path:
    """Absolute path of the shipped checkpoint folder (``model_wrappers/embedded/whatsup-synthetic-llava``)."""
    path = Path(__file__).resolve().parent / EMBEDDED_NAME
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded checkpoint is missing from {path}; reinstall adaptvis-eval, or rebuild it with "
            f"`python scripts/train_embedded_model.py --out {path}` from a clone of the repository"
        )
    return path
