"""LLaVA-OneVision (``model_type`` ``llava_onevision``): SigLIP tokens, AnyRes tiles with row newlines, Qwen2 LM.

What differs from LLaVA-1.6:

* **AnyRes with a budget** (``vision_aspect_ratio="anyres_max_N"``): the unpadded tile grid is
  bilinearly downsampled when it exceeds ``N`` base grids by more than 10 %, so the tile grid
  behind the tokens can be smaller than the tiles (:func:`onevision_grid`).
* **Newline tokens**: one ``image_newline`` embedding ends every row of the tile grid. They sit at
  ``<image>`` positions, so Eq. 2 scales them with the patch tokens, as for LLaVA-1.6 in this
  suite (docs/guides/FAMILIES.md, "Image-token columns").
* **Language model**: Qwen2 with 1-D RoPE (left-padded position ids as for Llama).
"""

from __future__ import annotations

import math

import torch

from adaptvis_tasks.families import family_entry
from model_wrappers.families.llava15 import projector
from model_wrappers.families.spec import FamilySpec, GridPart, llama_positions


def onevision_grid(model, inputs) -> list[GridPart]:
    """The base image's square grid, then the (possibly downsampled) tile grid whose rows end in a newline."""
    from transformers.models.llava_onevision.modeling_llava_onevision import get_anyres_image_grid_shape, unpad_image

    vision = model.config.vision_config
    side = int(vision.image_size) // int(vision.patch_size)
    original = [int(v) for v in inputs["image_sizes"][0]]
    tiles_h, tiles_w = get_anyres_image_grid_shape(original, model.config.image_grid_pinpoints, int(vision.image_size))
    rows, cols = unpad_image(torch.zeros(1, tiles_h * side, tiles_w * side), torch.tensor(original)).shape[1:]
    budget = int(str(model.config.vision_aspect_ratio).removeprefix("anyres_max_"))
    ratio = math.sqrt(rows * cols / (budget * side**2))
    if ratio > 1.1:
        rows, cols = int(rows // ratio), int(cols // ratio)
    return [("base", 0, side, side, side), ("tiles", side * side, int(rows), int(cols), int(cols) + 1)]


SPEC = FamilySpec(
    entry=family_entry("llava_onevision"),
    model_class="LlavaOnevisionForConditionalGeneration",
    vision_keys=("pixel_values", "image_sizes", "batch_num_images"),
    position_ids=llama_positions,
    image_grid=onevision_grid,
    projector=projector,
    prompt_styles=("chat",),
    prompt_style_note="LLaVA-OneVision is prompted through its chat template (the paper has no OneVision prompt)",
)
