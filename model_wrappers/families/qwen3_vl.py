"""Qwen3-VL (``model_type`` ``qwen3_vl``): interleaved M-RoPE, DeepStack vision features, merged dynamic grids.

* **Interleaved M-RoPE**: the rotary frequencies of the temporal / height / width axes are
  interleaved rather than chunked. The position ids themselves are still ``[3, batch, length]``
  from the model's own ``get_rope_index`` (:func:`~model_wrappers.families.qwen2_vl.mrope_positions`);
  the interleaving happens inside the model's rotary embedding, before the keys reach the
  attention backend, so scaling keys by alpha still equals scaling the logits (RoPE is linear).
* **DeepStack**: features of intermediate vision blocks are *added* to the hidden states at the
  image-token positions after each of the first decoder layers. They create no extra tokens, so
  the image-key columns of Eq. 2 are exactly the ``<|image_pad|>`` positions in every layer; the
  keys of those columns already include the injected features (``docs/guides/FAMILIES.md``).
"""

from __future__ import annotations

from adaptvis_tasks.families import family_entry
from model_wrappers.families.qwen2_vl import merged_grid, mrope_positions, projector
from model_wrappers.families.spec import FamilySpec

SPEC = FamilySpec(
    entry=family_entry("qwen3_vl"),
    model_class="Qwen3VLForConditionalGeneration",
    vision_keys=("pixel_values", "image_grid_thw"),
    position_ids=mrope_positions,
    image_grid=merged_grid,
    projector=projector,
    prompt_styles=("chat",),
    prompt_style_note="Qwen3-VL has no <image> placeholder token, so it is prompted through its chat template",
    pixel_arguments=True,
)
