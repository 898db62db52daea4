"""Qwen2-VL (``model_type`` ``qwen2_vl``): dynamic image grids, merged patches, multimodal RoPE."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from adaptvis_tasks.families import family_entry
from model_wrappers.families.spec import FamilySpec, GridPart, config_image_token_id


def mrope_positions(model, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[3, batch, length]`` M-RoPE position ids from the model's own ``get_rope_index``."""
    mm_token_type_ids = inputs.get("mm_token_type_ids")
    if mm_token_type_ids is None:
        mm_token_type_ids = (inputs["input_ids"] == config_image_token_id(model)).int()
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=mm_token_type_ids,
        image_grid_thw=inputs.get("image_grid_thw"),
        attention_mask=inputs["attention_mask"],
    )
    return positions


def merged_grid(model, inputs) -> list[GridPart]:
    """The image's ``t * h/merge`` x ``w/merge`` grid of merged patches."""
    t, h, w = (int(v) for v in inputs["image_grid_thw"][0])
    merge = int(model.config.vision_config.spatial_merge_size)
    rows, cols = h // merge, w // merge
    return [("image", 0, rows * t, cols, cols)]


def projector(model):
    return model.model.visual.merger


SPEC = FamilySpec(
    entry=family_entry("qwen2_vl"),
    model_class="Qwen2VLForConditionalGeneration",
    vision_keys=("pixel_values", "image_grid_thw"),
    position_ids=mrope_positions,
    image_grid=merged_grid,
    projector=projector,
    prompt_styles=("chat",),
    prompt_style_note="Qwen2-VL has no <image> placeholder token, so it is prompted through its chat template",
    pixel_arguments=True,
)
