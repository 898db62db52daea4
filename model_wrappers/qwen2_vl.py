"""``qwen2_vl_adaptvis``, ``qwen2_5_vl_adaptvis``, ``qwen3_vl_adaptvis``: Qwen-VL checkpoints (M-RoPE, dynamic grids).

Each name is lmms-eval's built-in model name plus ``_adaptvis``, so a user switches
``--model qwen2_5_vl`` to ``--model qwen2_5_vl_adaptvis``. The Qwen2.5-VL and Qwen3-VL wrappers
open the conversation with the system turn lmms-eval 0.7.3's ``qwen2_5_vl`` / ``qwen3_vl`` send
by default (``system_prompt="You are a helpful assistant."``); ``qwen2_vl_adaptvis`` keeps its
earlier convention (no system turn; docs/guides/FAMILIES.md).

lmms-eval's ``qwen2_5_vl`` also sends every image through a JPEG data URL (quality 85) before the
processor; ``qwen2_5_vl_adaptvis`` does the same round trip (:func:`lmms_eval_jpeg`), so its pixel
inputs equal the built-in model's. lmms-eval's ``qwen3_vl`` passes the image itself.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from model_wrappers.base import AdaptVisLMM
from model_wrappers.prompting import bare_question, chat_prompt

LMMS_EVAL_SYSTEM_PROMPT = "You are a helpful assistant."
"""The ``system_prompt`` default of lmms-eval 0.7.3's ``qwen2_5_vl`` and ``qwen3_vl`` models."""


class Qwen2VLAdaptVis(AdaptVisLMM):
    """Qwen2-VL with the AdaptVis family of interventions, prompted through its chat template."""

    wrapper_name = "qwen2_vl_adaptvis"

    def format_prompt(self, context: str, where: str) -> str:
        return chat_prompt(self.processor, context, where)


class _SystemTurnQwenAdaptVis(AdaptVisLMM):
    """A Qwen-VL wrapper whose prompt is lmms-eval's: system turn, then the image(s), then the question."""

    system_prompt: str = LMMS_EVAL_SYSTEM_PROMPT

    def format_prompt(self, context: str, where: str) -> str:
        chat_prompt(self.processor, context, where)  # the same checks (chat template present, one image)
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": bare_question(context, where)}]},
        ]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def lmms_eval_jpeg(image: Image.Image) -> Image.Image:
    """``image`` after lmms-eval 0.7.3 ``qwen2_5_vl``'s transport: a JPEG (quality 85) data URL, decoded to RGB."""
    from lmms_eval.models.model_utils.media_encoder import encode_image_to_data_url

    url = encode_image_to_data_url(image, image_format="JPEG", mime_type="image/jpeg", convert_rgb=True, quality=85)
    payload = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(payload)) as decoded:
        return decoded.convert("RGB")


class Qwen2_5_VLAdaptVis(_SystemTurnQwenAdaptVis):
    """Qwen2.5-VL (``qwen2_5_vl``) with the AdaptVis interventions; images take lmms-eval's JPEG round trip."""

    wrapper_name = "qwen2_5_vl_adaptvis"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.input_pipeline["image_transport"] = "lmms_eval_jpeg_q85"

    def _image_of(self, request, where: str) -> Image.Image:
        return lmms_eval_jpeg(super()._image_of(request, where))


class Qwen3VLAdaptVis(_SystemTurnQwenAdaptVis):
    """Qwen3-VL (``qwen3_vl``) with the AdaptVis interventions."""

    wrapper_name = "qwen3_vl_adaptvis"
