"""What differs between LLaVA-1.5, LLaVA-1.6 and Qwen2-VL once a prompt is tokenised.

The decoder (``model_wrappers.decoding``) drives every model the same way: prefill the prompt
minus its last token with the vision inputs, then single-token steps. It needs, per
architecture, only: which inputs carry the image, where the image tokens are, and the position
ids of every prompt token (1-D RoPE for the Llama/Mistral language models of LLaVA, 3-D
multimodal RoPE for Qwen2-VL) -- each family declares them (``model_wrappers.families``).
Position ids are computed once, explicitly, so that left padding
never shifts them and no hidden model state is relied on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from model_wrappers.families import family_spec
from model_wrappers.families.spec import config_image_token_id


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
    """The id of the image placeholder token in ``model``'s prompts (the family declares where it is)."""
    return config_image_token_id(model, family_spec(model).image_token_attributes)


def num_text_layers(model) -> int:
    config = getattr(model.config, "text_config", None) or model.config
    return int(config.num_hidden_layers)


def prompt_batch(model, inputs: Mapping[str, torch.Tensor]) -> PromptBatch:
    """Turn a processor's output for ``model`` into a :class:`PromptBatch` on the model's device."""
    family = family_spec(model)  # UnsupportedFamily (a ValueError) names the supported families
    device = model.device
    dtype = model.dtype
    moved = {k: v.to(device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    input_ids, attention_mask = moved["input_ids"], moved["attention_mask"]
    position_ids = family.position_ids(model, moved)
    vision_inputs = {}
    for key in family.vision_keys:
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
