"""VAF, the visual amplification fusion of ClearSight (Yin et al., CVPR 2025; code ``ustc-hyin/ClearSight``), greedy.

In the chosen middle decoder layers, the pre-softmax attention logits of every text query *after
the image* -- the question's tokens in the prefill, the last prompt token and every generated
token -- are multiplied by ``vaf_enhance`` on the image columns and by ``vaf_suppress`` on the
columns before the image (the system prompt and the start of the user turn); all other logits are
unchanged. As in ``visaug/inference/AttnAdapter.py``, the product is formed before the mask is
added (on visible columns that order does not matter).

Defaults: ``vaf_enhance=1.15``, ``vaf_suppress=0.95`` (``visaug/inference/infer_pope.sh``) and
``vaf_layers=9-14`` (``infer_pope.py`` replaces the attention of layers ``8 < i < 15``).

Named deviation ``real positions``: the authors hard-code ``SYS_LEN = 35`` and ``IMG_LEN = 576``
(LLaVA-1.5's vicuna_v1 prompt and one 336 px image); here the columns come from each prompt's
actual image-token positions (columns before the first image token = "system", image tokens =
"image", rows after the last image token = the edited queries), so the method is the same on
other prompts, models and under left padding. On LLaVA-1.5 with the vicuna_v1 prompt the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from model_wrappers.architectures import PromptBatch
from model_wrappers.errors import MethodArgumentError
from model_wrappers.intervention import require_adaptvis_backend
from model_wrappers.logit_edit import LogitEdit
from model_wrappers.methods.arguments import format_layers, parse_layers, positive
from model_wrappers.methods.contract import DecodingMethod
from model_wrappers.methods.registry import MethodParameters, register_method


@dataclass(frozen=True)
class VafParameters(MethodParameters):
    """``method=vaf``: factors ``vaf_enhance`` / ``vaf_suppress`` (> 0) in the decoder layers ``vaf_layers``.

    Defaults: ``--enh-para 1.15 --sup-para 0.95`` (``infer_pope.sh``); layers ``i > 8 and i < 15``
    (``infer_pope.py``).
    """

    vaf_enhance: float = 1.15
    vaf_suppress: float = 0.95
    vaf_layers: tuple[int, ...] = (9, 10, 11, 12, 13, 14)
    layers_hint: ClassVar[str] = " (VAF's layers are vaf_layers)"

    @classmethod
    def parse(cls, raw) -> VafParameters:
        """Defaults for what is not given; :class:`MethodArgumentError` naming a bad argument."""
        default = cls()
        enhance = default.vaf_enhance if raw["vaf_enhance"] is None else positive("vaf_enhance", raw["vaf_enhance"])
        suppress = (
            default.vaf_suppress if raw["vaf_suppress"] is None else positive("vaf_suppress", raw["vaf_suppress"])
        )
        if raw["vaf_layers"] is None:
            return cls(vaf_enhance=enhance, vaf_suppress=suppress)
        try:
            layers = parse_layers(raw["vaf_layers"])
        except MethodArgumentError as error:
            raise MethodArgumentError(str(error).replace("layers=", "vaf_layers=")) from None
        if layers is None:
            raise MethodArgumentError(
                f"vaf_layers={raw['vaf_layers']!r}: VAF acts in chosen middle layers; "
                "give indices, e.g. vaf_layers=9-14"
            )
        return cls(vaf_enhance=enhance, vaf_suppress=suppress, vaf_layers=layers)

    def check_layers(self, num_layers: int) -> None:
        if max(self.vaf_layers) >= num_layers:
            raise MethodArgumentError(
                f"vaf_layers={format_layers(self.vaf_layers)} names layer {max(self.vaf_layers)}, but the language "
                f"model has {num_layers} decoder layers (0..{num_layers - 1}); give vaf_layers=... within them"
            )

    def describe(self, config) -> dict[str, object]:
        return {
            "vaf_enhance": self.vaf_enhance,
            "vaf_suppress": self.vaf_suppress,
            "vaf_layers": format_layers(self.vaf_layers),
        }


def vaf_edit(batch: PromptBatch, parameters: VafParameters) -> LogitEdit:
    """Per row: queries after the last image token; ``enhance`` on image columns, ``suppress`` before the image."""
    image = batch.image_token_mask
    if not bool(image.any(dim=1).all()):
        raise ValueError("method=vaf needs an image in every prompt; a prompt of this batch has no image tokens")
    length = image.shape[1]
    index = torch.arange(length, device=image.device)
    first_image = torch.where(image, index, length).min(dim=1).values
    last_image = torch.where(image, index, -1).max(dim=1).values
    before_image = (index[None, :] < first_image[:, None]) & batch.attention_mask.bool()
    scale = torch.ones(image.shape, dtype=torch.float32, device=image.device)
    scale = scale.masked_fill(image, parameters.vaf_enhance).masked_fill(before_image, parameters.vaf_suppress)
    return LogitEdit.build(last_image + 1, scale, None, parameters.vaf_layers)


@register_method("vaf", VafParameters)
class Vaf(DecodingMethod):
    """``method=vaf``: the edit in force at the prefill and every step; plain logits as scores.

    Named deviation ``confidence under VAF``: VAF edits the prefill itself, so the unedited
    first-token distribution would cost a second prefill; the recorded confidence is ``C`` of
    VAF's own first-token distribution.
    """

    def __init__(self, config, model, need_confidence: bool = True) -> None:
        super().__init__(config, model, need_confidence)
        require_adaptvis_backend(model, "vaf")

    def attention_edit(self, batch: PromptBatch) -> LogitEdit | None:
        if self.config.vaf_enhance == 1 and self.config.vaf_suppress == 1:
            return None  # factors of 1: the plain fused kernel, bit for bit
        return vaf_edit(batch, self.config.parameters)
