"""Qwen2.5-VL (``model_type`` ``qwen2_5_vl``): Qwen2-VL's M-RoPE and merged dynamic grids; windowed vision attention.

What differs from Qwen2-VL is inside the vision tower (window attention in most blocks, an MLP
merger, absolute-time video positions); the language model, the image-token convention and the
3-D position ids (``get_rope_index``) are Qwen2-VL's, so Eq. 2 acts on the same image-token
columns in the same way.
"""

from __future__ import annotations

from adaptvis_tasks.families import family_entry
from model_wrappers.families.qwen2_vl import merged_grid, mrope_positions, projector
from model_wrappers.families.spec import FamilySpec

SPEC = FamilySpec(
    entry=family_entry("qwen2_5_vl"),
    model_class="Qwen2_5_VLForConditionalGeneration",
    vision_keys=("pixel_values", "image_grid_thw"),
    position_ids=mrope_positions,
    image_grid=merged_grid,
    projector=projector,
    prompt_styles=("chat",),
    prompt_style_note="Qwen2.5-VL has no <image> placeholder token, so it is prompted through its chat template",
    pixel_arguments=True,
)
