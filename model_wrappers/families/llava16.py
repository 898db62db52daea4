"""LLaVA-1.6 (``model_type`` ``llava_next``): any-resolution tiles plus a base image, one newline token per row."""

from __future__ import annotations

import torch

from adaptvis_tasks.families import family_entry
from model_wrappers.families.llava15 import projector
from model_wrappers.families.spec import FamilySpec, GridPart, llama_positions


def anyres_grid(model, inputs) -> list[GridPart]:
    """The base image's square grid, then the unpadded tile grid whose rows end in ``image_newline``."""
    from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image

    vision = model.config.vision_config
    side = int(vision.image_size) // int(vision.patch_size)
    original = [int(v) for v in inputs["image_sizes"][0]]
    tiles_h, tiles_w = get_anyres_image_grid_shape(original, model.config.image_grid_pinpoints, int(vision.image_size))
    dummy = torch.zeros(1, tiles_h * side, tiles_w * side)
    rows, cols = unpad_image(dummy, torch.tensor(original)).shape[1:]
    return [("base", 0, side, side, side), ("tiles", side * side, int(rows), int(cols), int(cols) + 1)]


SPEC = FamilySpec(
    entry=family_entry("llava_next"),
    model_class="LlavaNextForConditionalGeneration",
    vision_keys=("pixel_values", "image_sizes"),
    position_ids=llama_positions,
    image_grid=anyres_grid,
    projector=projector,
    prompt_styles=("chat", "paper"),
    vision_layer_option=True,
)
