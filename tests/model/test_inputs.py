"""Inputs as the authors had them: PIL image preprocessing, their token ids, alpha applied in float32.

Runs ``llava_adaptvis`` in-process the way lmms-eval drives it and compares with plain
transformers calls on the reference inputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lmms_eval.api.instance import Instance
from PIL import Image
from transformers import (
    AutoProcessor,
    CLIPImageProcessor,
    CLIPImageProcessorPil,
    LlavaForConditionalGeneration,
    LlavaNextImageProcessorPil,
    Qwen2VLImageProcessorPil,
)

from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import first_token_logits
from model_wrappers.intervention import ImageKeyScaling, scale_image_keys
from model_wrappers.llava import LlavaAdaptVis
from model_wrappers.methods import MethodArgumentError
from model_wrappers.qwen2_vl import Qwen2VLAdaptVis
from tests.support.spm_reference import SentencePieceBPE, reference_ids
from tests.support.tiny_checkpoints import LLAVA_HF_IMAGE_TOKEN_ID

TASK = "inputs_probe"
PROMPTS = (
    "<image>\nUSER: Where is the mug in relation to the knife? Answer with left, right, front or behind.\nASSISTANT:",
    "<image>\nUSER:  Where is the toilet in relation to the sink? Answer with left, right, above, or below."
    "\nASSISTANT:",
    "User: <image>\n Determine whether the description about the spatial relationship is correct or not. Answer with "
    "yes or no: The cat is on the left of the dog. Assistant:",
)


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = ((97, 61), (40, 130), (300, 224))
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _run(wrapper, prompts, images, max_new_tokens: int = 6) -> list[str]:
    docs = [{"image": image} for image in images]
    requests = [
        Instance(
            request_type="generate_until",
            arguments=(
                prompt,
                {"max_new_tokens": max_new_tokens, "until": []},
                lambda d: [d["image"]],
                i,
                TASK,
                "test",
            ),
            idx=0,
            metadata={"task": TASK, "doc_id": i, "repeats": 1},
        )
        for i, prompt in enumerate(prompts)
    ]
    wrapper.task_dict = {TASK: {"test": docs}}
    return wrapper.generate_until(requests)


def _trace(path: Path) -> list[dict]:
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["doc_id"])


def _sha(ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def test_llava_pixel_values_are_exactly_the_pil_processors(tiny_llava):
    wrapper = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu")
    assert type(wrapper.processor.image_processor) is CLIPImageProcessorPil
    pil = CLIPImageProcessorPil.from_pretrained(str(tiny_llava))
    for image in _images():
        ours = wrapper.processor(images=[image], text=[PROMPTS[0]], return_tensors="pt").pixel_values
        assert torch.equal(ours, pil(images=[image], return_tensors="pt").pixel_values)


def test_the_torchvision_processor_is_opt_in(tiny_llava):
    wrapper = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", image_backend="torchvision")
    assert type(wrapper.processor.image_processor) is CLIPImageProcessor
    assert wrapper.input_pipeline["image_processor"] == "CLIPImageProcessor"
    with pytest.raises(MethodArgumentError, match="image_backend='fast': use pil"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", image_backend="fast")


def test_the_other_families_get_pil_processors_too(tiny_llava_next, tiny_qwen2_vl):
    assert type(LlavaAdaptVis(pretrained=str(tiny_llava_next), device="cpu").processor.image_processor) is (
        LlavaNextImageProcessorPil
    )
    assert type(Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu").processor.image_processor) is (
        Qwen2VLImageProcessorPil
    )


def test_greedy_answers_equal_plain_generate_with_the_pil_processor(tiny_llava):
    wrapper = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu")
    answers = _run(wrapper, PROMPTS, _images())
    processor = AutoProcessor.from_pretrained(str(tiny_llava))
    processor.image_processor = CLIPImageProcessorPil.from_pretrained(str(tiny_llava))
    model = LlavaForConditionalGeneration.from_pretrained(str(tiny_llava)).eval()
    expected = []
    for prompt, image in zip(PROMPTS, _images(), strict=True):
        inputs = processor(images=[image], text=[prompt], return_tensors="pt")
        out = model.generate(**inputs, do_sample=False, max_new_tokens=6)
        expected.append(processor.decode(out[0, inputs.input_ids.shape[1] :], skip_special_tokens=True).strip())
    assert answers == expected
    assert any(answers)


def test_first_token_probabilities_equal_a_forward_pass_on_the_authors_ids(tiny_llava, llama_vocabulary, tmp_path):
    trace = tmp_path / "trace.jsonl"
    wrapper = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", trace=str(trace), batch_size=3)
    _run(wrapper, PROMPTS, _images(), max_new_tokens=1)
    records = _trace(trace)
    encoder = SentencePieceBPE(llama_vocabulary)
    model = LlavaForConditionalGeneration.from_pretrained(str(tiny_llava), attn_implementation="eager").eval()
    pil = CLIPImageProcessorPil.from_pretrained(str(tiny_llava))
    for record, prompt, image in zip(records, PROMPTS, _images(), strict=True):
        authors = reference_ids(encoder, prompt)
        at = authors.index(LLAVA_HF_IMAGE_TOKEN_ID)
        expanded = authors[:at] + [LLAVA_HF_IMAGE_TOKEN_ID] * 16 + authors[at + 1 :]
        assert record["input_ids_sha"] == _sha(expanded)
        assert record["prompt_tokens"] == len(expanded) and record["image_tokens"] == 16
        with torch.no_grad():
            logits = model(
                input_ids=torch.tensor([expanded]), pixel_values=pil(images=[image], return_tensors="pt").pixel_values
            ).logits[0, -1]
        expected = torch.softmax(logits, -1)
        assert record["confidence"] == pytest.approx(expected.max().item(), abs=1e-6)
        inputs = wrapper.processor(images=[image], text=[prompt], return_tensors="pt")
        assert inputs.input_ids[0].tolist() == expanded
        with torch.no_grad():
            ours = torch.softmax(first_token_logits(wrapper.model, prompt_batch(wrapper.model, inputs), None)[0], -1)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_qwen2_vl_counts_image_pad_tokens_and_honours_max_pixels(tiny_qwen2_vl, tmp_path):
    big = [Image.new("RGB", (300, 224), (10, 200, 30))]
    prompt = ["Where is the mug in relation to the knife? Answer with left, right, front or behind."]
    counts = {}
    for name, limit in (("default", None), ("capped", 3136)):
        trace = tmp_path / f"{name}.jsonl"
        extra = {} if limit is None else {"max_pixels": str(limit)}
        wrapper = Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu", trace=str(trace), **extra)
        _run(wrapper, prompt, big, max_new_tokens=1)
        (record,) = _trace(trace)
        inputs = wrapper.processor(images=big, text=[wrapper.format_prompt(prompt[0], "t")], return_tensors="pt")
        pad = wrapper.model.config.image_token_id
        assert record["image_tokens"] == int((inputs.input_ids == pad).sum()) > 0
        assert record["prompt_tokens"] == inputs.input_ids.shape[1]
        counts[name] = record["image_tokens"]
    # Qwen2-VL keeps the aspect ratio in multiples of 28 px (patch 14 x merge 2), floor-rounded when over the
    # limit: 300x224 -> 112x84 under the checkpoint's 12544 px (4x3 = 12 tokens), 56x28 under 3136 px (2 tokens).
    assert counts == {"default": 12, "capped": 2}


def test_pixel_limits_apply_to_qwen2_vl_only(tiny_llava, tiny_qwen2_vl):
    with pytest.raises(MethodArgumentError, match="min_pixels/max_pixels apply to Qwen2-VL"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", max_pixels=1000)
    with pytest.raises(MethodArgumentError, match="min_pixels=5000 is larger than max_pixels=4000"):
        Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu", min_pixels=5000, max_pixels=4000)
    with pytest.raises(MethodArgumentError, match="max_pixels='lots'"):
        Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu", max_pixels="lots")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_alpha_is_applied_in_float32_and_only_the_product_is_rounded(dtype):
    key = torch.randn(2, 4, 12, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, 3:9] = True
    scaling = ImageKeyScaling.build(mask, torch.tensor([1.2, 0.8]))
    scaled = scale_image_keys(key, scaling)
    assert scaled.dtype == dtype
    assert torch.equal(scaled, (key.float() * scaling.factors).to(dtype))
    assert torch.equal(scaled[:, :, ~mask[0]], key[:, :, ~mask[0]])
    if dtype != torch.float32:
        assert torch.tensor(1.2, dtype=dtype).item() != 1.2  # so casting alpha first would change Eq. 2's alpha
        assert not torch.equal(scaled, key * scaling.factors.to(dtype))


def test_rms_norm_eps_is_a_named_opt_in_override_of_the_language_model(tiny_llava):
    def epsilons(wrapper) -> set[float]:
        return {m.variance_epsilon for m in wrapper.model.modules() if hasattr(m, "variance_epsilon")}

    default = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu")
    changed = LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", rms_norm_eps="1e-3")
    assert epsilons(default) == {default.model.config.text_config.rms_norm_eps} != {1e-3}
    assert epsilons(changed) == {1e-3}
    assert changed.input_pipeline["rms_norm_eps"] == 1e-3 and default.input_pipeline["rms_norm_eps"] is None
    inputs = default.processor(images=_images()[:1], text=[PROMPTS[0]], return_tensors="pt")
    with torch.no_grad():
        a = first_token_logits(default.model, prompt_batch(default.model, inputs), None)
        b = first_token_logits(changed.model, prompt_batch(changed.model, inputs), None)
    assert not torch.equal(a, b)
    with pytest.raises(MethodArgumentError, match="rms_norm_eps='tiny'"):
        LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu", rms_norm_eps="tiny")
