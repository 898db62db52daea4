"""Our Qwen2.5-VL / Qwen3-VL wrappers build lmms-eval 0.7.3's prompt ids and pixel inputs, on the same docs.

lmms-eval's own ``qwen2_5_vl`` / ``qwen3_vl`` classes (the simple ones: the chat classes of the same
names wrap them) are constructed on the tiny checkpoints; their ``model.generate`` is replaced by a
recorder, so their ``generate_until`` runs its whole input pipeline (system turn, ``qwen_vl_utils``
resizing, JPEG transport for Qwen2.5-VL, the processor) and we compare what it would have decoded.
LLaVA-OneVision has no such test: lmms-eval's ``llava_onevision`` needs the original LLaVA-NeXT
package and original checkpoints (docs/guides/FAMILIES.md).
"""

from __future__ import annotations

import pytest
import torch
from lmms_eval.api.instance import Instance
from PIL import Image

from tests.model.test_intervention import _image

PIXELS = {"min_pixels": 56 * 56, "max_pixels": 56 * 56 * 4}
QUESTIONS = [
    "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    "Where are the black trees in relation to the fence? \nAnswer with left, right, front, behind, above or below.",
    "Where is it?",
]


def _lmms_eval_class(model_type: str):
    if model_type == "qwen2_5_vl":
        from lmms_eval.models.simple.qwen2_5_vl import Qwen2_5_VL

        return Qwen2_5_VL
    from lmms_eval.models.simple.qwen3_vl import Qwen3_VL

    return Qwen3_VL


def _our_class(model_type: str):
    from model_wrappers.qwen2_vl import Qwen2_5_VLAdaptVis, Qwen3VLAdaptVis

    return {"qwen2_5_vl": Qwen2_5_VLAdaptVis, "qwen3_vl": Qwen3VLAdaptVis}[model_type]


def _requests(docs: list[dict]) -> list[Instance]:
    return [
        Instance(
            request_type="generate_until",
            arguments=(doc["question"], {"max_new_tokens": 1}, lambda d: [d["image"]], i, "parity", "test"),
            idx=0,
            metadata={"task": "parity", "doc_id": i, "repeats": 1},
        )
        for i, doc in enumerate(docs)
    ]


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen3_vl"])
def test_prompt_ids_and_pixel_inputs_equal_lmms_evals_own_model(model_type, tiny_checkpoints):
    path = str(tiny_checkpoints[model_type])
    docs = [{"question": q, "image": _image(i)} for i, q in enumerate(QUESTIONS)]
    theirs = _lmms_eval_class(model_type)(pretrained=path, device="cpu", device_map="cpu", **PIXELS)
    recorded: list[dict] = []

    def record(**inputs):
        recorded.append(inputs)
        return torch.cat([inputs["input_ids"], inputs["input_ids"][:, -1:]], dim=1)

    theirs.model.generate = record
    theirs.task_dict = {"parity": {"test": docs}}
    ours = _our_class(model_type)(pretrained=path, device="cpu", **PIXELS)
    ours.task_dict = theirs.task_dict
    for request in _requests(docs):  # one document per call: lmms-eval's batch is right-padded at size 1
        recorded.clear()
        theirs.generate_until([request])
        [expected] = recorded
        prepared = ours._prepare(request)
        mine = ours.processor(images=[prepared.image], text=[prepared.prompt], padding=True, return_tensors="pt")
        assert torch.equal(mine["input_ids"], expected["input_ids"]), request.args[0]
        assert torch.equal(mine["image_grid_thw"], expected["image_grid_thw"])
        assert mine["pixel_values"].shape == expected["pixel_values"].shape
        assert (mine["pixel_values"] - expected["pixel_values"]).abs().max().item() < 1e-5
    assert prepared.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")


def test_the_jpeg_round_trip_really_changes_qwen2_5_vl_pixels():
    """Guards the test above: without lmms-eval's JPEG transport the pixels would differ."""
    from model_wrappers.qwen2_vl import lmms_eval_jpeg

    image = _image(0)
    transported = lmms_eval_jpeg(image)
    assert isinstance(transported, Image.Image) and transported.size == image.size
    assert transported.tobytes() != image.tobytes()
