"""What differs between LLaVA-1.5, LLaVA-1.6 and Qwen2-VL once a prompt is tokenised.

The decoder (``model_wrappers.decoding``) drives every model the same way: prefill the prompt
minus its last token with the vision inputs, then single-token steps. It needs, per
architecture, only: which inputs carry the image, where the image tokens are, and the position
ids of every prompt token (1-D RoPE for the Llama/Mistral language models of LLaVA, 3-D
multimodal RoPE for Qwen2-VL). Position ids are computed once, explicitly, so that left padding
never shifts them and no hidden model state is relied on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

SUPPORTED_MODEL_TYPES = {
    "llava": "LLaVA-1.5",
    "llava_next": "LLaVA-1.6",
    "qwen2_vl": "Qwen2-VL",
}

_VISION_KEYS = {
    "llava": ("pixel_values",),
    "llava_next": ("pixel_values", "image_sizes"),
    "qwen2_vl": ("pixel_values", "image_grid_thw"),
}


@dataclass
class PromptBatch:
    """A left-padded batch of tokenised prompts ready for :func:`model_wrappers.decoding.generate`.

    ``position_ids`` is ``[batch, length]`` (1-D RoPE) or ``[3, batch, length]`` (M-RoPE); the
    position of the k-th generated token is the last prompt position plus k in every axis.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    image_token_mask: torch.Tensor
    vision_inputs: dict[str, torch.Tensor]

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])


def model_type_of(model) -> str:
    return getattr(model.config, "model_type", "")


def image_token_id(model) -> int:
    config = model.config
    token_id = getattr(config, "image_token_id", None)
    if token_id is None:
        token_id = getattr(config, "image_token_index", None)
    if token_id is None:
        raise ValueError(f"{type(model).__name__} config names no image_token_id")
    return int(token_id)


def num_text_layers(model) -> int:
    config = getattr(model.config, "text_config", None) or model.config
    return int(config.num_hidden_layers)


def _llama_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def _qwen2_vl_positions(model, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    mm_token_type_ids = inputs.get("mm_token_type_ids")
    if mm_token_type_ids is None:
        mm_token_type_ids = (inputs["input_ids"] == image_token_id(model)).int()
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=inputs.get("image_grid_thw"),
        attention_mask=inputs["attention_mask"],
    )
    return positions


def prompt_batch(model, inputs: Mapping[str, torch.Tensor]) -> PromptBatch:
    """Turn a processor's output for ``model`` into a :class:`PromptBatch` on the model's device."""
    model_type = model_type_of(model)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type={model_type!r} is not supported; supported: "
            + ", ".join(f"{k} ({v})" for k, v in SUPPORTED_MODEL_TYPES.items())
        )
    device = model.device
    dtype = model.dtype
    moved = {k: v.to(device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    input_ids, attention_mask = moved["input_ids"], moved["attention_mask"]
    if model_type == "qwen2_vl":
        position_ids = _qwen2_vl_positions(model, moved)
    else:
        position_ids = _llama_positions(attention_mask)
    vision_inputs = {}
    for key in _VISION_KEYS[model_type]:
        if key in moved:
            value = moved[key]
            vision_inputs[key] = value.to(dtype) if value.is_floating_point() else value
    return PromptBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        image_token_mask=input_ids == image_token_id(model),
        vision_inputs=vision_inputs,
    )
