"""Load a checkpoint (hub id or local folder) for the AdaptVis wrappers, with errors that say what to do.

This is the only place that calls ``from_pretrained``; tests, the demo and real 7B runs all go
through it, so the tiny local checkpoints exercise the same path as ``llava-hf/llava-1.5-7b-hf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from model_wrappers.architectures import SUPPORTED_MODEL_TYPES


class CheckpointError(RuntimeError):
    """``pretrained=`` does not name a usable checkpoint for this wrapper."""


_MODEL_CLASSES = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
}


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    processor: object
    model_type: str


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype | str:
    """``auto``: the checkpoint's own dtype on accelerators, float32 on CPU (half precision on CPU is
    slow and, for some kernels, unsupported)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto" if device.type != "cpu" else torch.float32
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise CheckpointError(f"dtype={dtype!r} is not a torch dtype; use auto, float32, float16 or bfloat16")
    return resolved


def _check_local_folder(pretrained: str) -> None:
    """Clear errors for local folders; hub ids (``org/name``) are left to ``from_pretrained``."""
    path = Path(pretrained).expanduser()
    if not path.exists():
        if pretrained.startswith((".", "/", "~")) or pretrained.count("/") > 1:
            raise CheckpointError(f"pretrained={pretrained!r}: no such folder")
        return
    if not path.is_dir():
        raise CheckpointError(f"pretrained={pretrained!r} is a file; give the checkpoint folder that holds config.json")
    if not (path / "config.json").is_file():
        found = sorted(p.name for p in path.iterdir())[:10]
        raise CheckpointError(
            f"pretrained={pretrained!r} has no config.json (found: {found or 'nothing'}); give a Hugging Face "
            "checkpoint folder (config.json, weights, tokenizer and processor files) or a hub id"
        )


def load_checkpoint(
    pretrained: str,
    allowed_model_types: tuple[str, ...],
    wrapper_name: str,
    device: torch.device,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedCheckpoint:
    """Load model and processor; refuse architectures ``wrapper_name`` does not support."""
    import transformers
    from transformers import AutoConfig, AutoProcessor

    _check_local_folder(str(pretrained))
    try:
        config = AutoConfig.from_pretrained(pretrained, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as error:  # transformers raises OSError/ValueError with long texts
        raise CheckpointError(
            f"pretrained={pretrained!r}: cannot read its config "
            f"({type(error).__name__}: {str(error).splitlines()[0]}); "
            "check the folder or hub id (offline machines need a local folder)"
        ) from error
    model_type = getattr(config, "model_type", None)
    if model_type not in allowed_model_types:
        others = {t: n for t, n in SUPPORTED_MODEL_TYPES.items() if t not in allowed_model_types}
        hint = ""
        if model_type in others:
            hint = " (use --model qwen2_vl_adaptvis)" if model_type == "qwen2_vl" else " (use --model llava_adaptvis)"
        raise CheckpointError(
            f"pretrained={pretrained!r} is a {model_type!r} checkpoint; {wrapper_name} supports "
            + ", ".join(f"{t} ({SUPPORTED_MODEL_TYPES[t]})" for t in allowed_model_types)
            + hint
        )
    model_class = getattr(transformers, _MODEL_CLASSES[model_type])
    try:
        model = model_class.from_pretrained(
            pretrained,
            revision=revision,
            dtype=resolve_dtype(dtype, device),
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
        )
        processor = AutoProcessor.from_pretrained(pretrained, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise CheckpointError(
            f"pretrained={pretrained!r}: loading the {model_type} weights or processor failed "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); the checkpoint folder "
            "looks incomplete or corrupt -- re-download or re-save it"
        ) from error
    model.to(device)
    model.eval()
    processor.tokenizer.padding_side = "left"
    return LoadedCheckpoint(model=model, processor=processor, model_type=model_type)
