"""LLaVA-1.5 (``model_type`` ``llava``): CLIP ViT-L/336 tokens through an MLP projector into Llama/Vicuna."""

from __future__ import annotations

from PIL import Image

from adaptvis_tasks.families import family_entry
from model_wrappers.families.spec import FamilySpec, GridPart, llama_positions


def square_grid(model, inputs) -> list[GridPart]:
    """One ``image_size / patch_size`` square grid of patch tokens."""
    vision = model.config.vision_config
    side = int(vision.image_size) // int(vision.patch_size)
    return [("image", 0, side, side, side)]


def projector(model):
    return model.model.multi_modal_projector


def centre_crop(model, image: Image.Image) -> Image.Image:
    """CLIP preprocessing of LLaVA-1.5: shortest side to the vision tower's size, then a centre crop."""
    size = int(model.config.vision_config.image_size)
    scale = size / min(image.size)
    resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))))
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


SPEC = FamilySpec(
    entry=family_entry("llava"),
    model_class="LlavaForConditionalGeneration",
    vision_keys=("pixel_values",),
    position_ids=llama_positions,
    image_grid=square_grid,
    projector=projector,
    prompt_styles=("paper",),
    prompt_style_note="LLaVA-1.5 is always prompted with the paper's prompt (the reference's)",
    model_view=centre_crop,
    vision_layer_option=True,
    token_shuffle_option=True,
    checkpoint_extras=True,
)
