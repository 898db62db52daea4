"""Each checkpoint family gets the prompt it should: LLaVA-1.5 the paper's, the others their chat template."""

from __future__ import annotations

import pytest

from model_wrappers.llava import LlavaAdaptVis
from model_wrappers.qwen2_vl import Qwen2VLAdaptVis

WHATSUP_PAPER = (
    "<image>\nUSER: Where is the beer bottle in relation to the armchair? Answer with left, right, on or under."
    "\nASSISTANT:"
)
WHATSUP_BARE = "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under."
VSR_PAPER = (
    "User: <image>\n Determine whether the description about the spatial relationship is correct or not. "
    "Answer with yes or no: The cat is on the left of the dog. Assistant:"
)
VSR_BARE = (
    "Determine whether the description about the spatial relationship is correct or not. "
    "Answer with yes or no: The cat is on the left of the dog."
)


@pytest.fixture(scope="module")
def wrappers(tiny_checkpoints):
    return {
        "llava": LlavaAdaptVis(pretrained=str(tiny_checkpoints["llava"]), device="cpu"),
        "llava_next": LlavaAdaptVis(pretrained=str(tiny_checkpoints["llava_next"]), device="cpu"),
        "qwen2_vl": Qwen2VLAdaptVis(pretrained=str(tiny_checkpoints["qwen2_vl"]), device="cpu"),
    }


def test_llava15_uses_paper_prompts_verbatim_and_wraps_bare_questions_in_the_paper_template(wrappers):
    llava = wrappers["llava"]
    assert llava.format_prompt(WHATSUP_PAPER, "t") == WHATSUP_PAPER
    assert llava.format_prompt(VSR_PAPER, "t") == VSR_PAPER  # the reference's own VSR template
    assert llava.format_prompt(WHATSUP_BARE, "t") == WHATSUP_PAPER


@pytest.mark.parametrize("family", ["llava_next", "qwen2_vl"])
def test_other_families_get_the_bare_question_in_their_chat_template(wrappers, family):
    wrapper = wrappers[family]
    for paper, bare in ((WHATSUP_PAPER, WHATSUP_BARE), (VSR_PAPER, VSR_BARE)):
        from_paper = wrapper.format_prompt(paper, "t")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": bare}]}]
        expected = wrapper.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert from_paper == wrapper.format_prompt(bare, "t") == expected
        assert from_paper.count(bare) == 1
        assert "USER:" not in from_paper and "Assistant:" not in from_paper
