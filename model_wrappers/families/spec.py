"""What the suite needs to know about one checkpoint family: :class:`FamilySpec`.

A family module (``llava15``, ``llava16``, ``qwen2_vl``) defines ``SPEC = FamilySpec(...)`` and is
registered by one :class:`~adaptvis_tasks.families.FamilyEntry` in ``adaptvis_tasks.families``
(docs/guides/ADDING_A_FAMILY.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from PIL import Image

from adaptvis_tasks.families import FamilyEntry

GridPart = tuple[str, int, int, int, int]
"""``(name, token offset, rows, cols, stride)`` of one patch grid behind the image tokens; ``stride`` >
``cols`` when each grid row is followed by a separator token (LLaVA-1.6's ``image_newline``)."""


def config_image_token_id(model, attributes: tuple[str, ...] = ("image_token_id", "image_token_index")) -> int:
    """The image token id from the first of ``attributes`` the model's config sets."""
    for attribute in attributes:
        token_id = getattr(model.config, attribute, None)
        if token_id is not None:
            return int(token_id)
    raise ValueError(f"{type(model).__name__} config names no image token id ({', '.join(attributes)})")


def llama_positions(model, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """1-D RoPE position ids of a left-padded batch (``[batch, length]``; padding gets 1)."""
    attention_mask = inputs["attention_mask"]
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def language_model_layers(model) -> torch.nn.ModuleList:
    """The decoder layers of a transformers ``*ForConditionalGeneration`` model's language model."""
    return model.model.language_model.layers


def whole_image(model, image: Image.Image) -> Image.Image:
    """The region of ``image`` the model's grid covers, when the processor keeps the whole image."""
    return image


@dataclass(frozen=True)
class FamilySpec:
    """Everything model-side about one family; every other module asks for it (``family_spec``)."""

    entry: FamilyEntry
    """The family's registration (model_type, name, lmms-eval model, tuning defaults)."""
    model_class: str
    """The transformers class that loads it, e.g. ``LlavaForConditionalGeneration``."""
    vision_keys: tuple[str, ...]
    """The processor outputs that carry the image into the prefill."""
    position_ids: Callable[[object, Mapping[str, torch.Tensor]], torch.Tensor]
    """Position ids of every prompt token of a left-padded batch (``[batch, len]`` or ``[3, batch, len]``)."""
    image_grid: Callable[[object, Mapping[str, torch.Tensor]], list[GridPart]]
    """The patch grid(s) behind the first prompt's image tokens (attention maps)."""
    projector: Callable[[object], torch.nn.Module]
    """The module whose output is the vision tokens the language model receives."""
    prompt_styles: tuple[str, ...]
    """Allowed ``prompt_style=`` values; the first is the default."""
    prompt_style_note: str = ""
    """Why other prompt styles are unavailable (in the error message)."""
    decoder_layers: Callable[[object], torch.nn.ModuleList] = language_model_layers
    """Layer access for the probes: the language model's decoder layers."""
    model_view: Callable[[object, Image.Image], Image.Image] = whole_image
    """The image region the grid covers (attention-map overlays)."""
    image_token_attributes: tuple[str, ...] = ("image_token_id", "image_token_index")
    """Config attributes that may hold the image token id (first found wins)."""
    pixel_arguments: bool = False
    """Whether ``min_pixels`` / ``max_pixels`` apply (dynamic image grids)."""
    vision_layer_option: bool = False
    """Whether ``vision_layer=`` (re-selecting the vision tower's layers) applies."""
    token_shuffle_option: bool = False
    """Whether ``vision_token_order=shuffled`` applies (one fixed grid of vision tokens per image)."""
    checkpoint_extras: bool = False
    """Whether converted checkpoints of this family may declare vision extras (``vision_extras``)."""

    @property
    def model_type(self) -> str:
        return self.entry.model_type

    @property
    def default_prompt_style(self) -> str:
        return self.prompt_styles[0]
