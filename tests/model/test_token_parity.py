"""LLaVA-1.5 gets exactly the authors' token ids under transformers 5 (issue: paper-faithful inputs).

The authors ran transformers 4.39.1, whose fast Llama tokenizer used llava-hf's ``tokenizer.json``
as is: its legacy normalizer prepends "▁" to every text segment, so the text after ``<image>``
starts with "▁" (29871). The reference ids here come from an independent SentencePiece-BPE encoder
(``tests/support/spm_reference.py``) over the real Llama-2 vocabulary (``tests/support/llama_vocabulary.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, LlamaTokenizer

from model_wrappers.llava import LlavaAdaptVis
from model_wrappers.loading import load_checkpoint
from model_wrappers.methods import MethodArgumentError
from model_wrappers.qwen2_vl import Qwen2VLAdaptVis
from tests.support.spm_reference import SentencePieceBPE, collapse_image_runs, reference_ids
from tests.support.tiny_checkpoints import LLAVA_HF_IMAGE_TOKEN_ID, build_tiny_llava
from tests.support.token_corpus import build_corpus

PROMPT = (
    "<image>\nUSER: Where is the mug in relation to the knife? Answer with left, right, front or behind.\nASSISTANT:"
)
IMAGE = Image.new("RGB", (40, 30), (200, 120, 40))


@pytest.fixture(scope="module")
def encoder(llama_vocabulary) -> SentencePieceBPE:
    return SentencePieceBPE(llama_vocabulary)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[tuple[str, str]]:
    return build_corpus(tmp_path_factory.mktemp("corpus_images"))


@pytest.fixture(scope="module")
def llava(tiny_llava) -> LlavaAdaptVis:
    return LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu")


def _mismatches(corpus, encode, encoder) -> list[str]:
    return [
        f"{label}: {prompt!r}\n  expected {reference_ids(encoder, prompt)}\n  got      {encode(prompt)}"
        for label, prompt in corpus
        if encode(prompt) != reference_ids(encoder, prompt)
    ]


def test_the_vocabulary_is_llama_2s(llama_vocabulary):
    assert len(llama_vocabulary.pieces) == 32000 and len(llama_vocabulary.merges) == 61249
    assert llama_vocabulary.pieces[29871] == "▁" and llama_vocabulary.pieces[13] == "<0x0A>"
    assert llama_vocabulary.merges[0] == ("▁", "t")


def test_the_reference_gives_the_ids_quoted_in_the_issue(encoder):
    assert reference_ids(encoder, "<image>\nUSER: Where is")[:6] == [1, 32000, 29871, 13, 11889, 29901]


def test_the_checkpoint_has_llava_hfs_tokenizer_files(tiny_llava):
    tokenizer_json = json.loads((tiny_llava / "tokenizer.json").read_text())
    assert [n["type"] for n in tokenizer_json["normalizer"]["normalizers"]] == ["Prepend", "Replace"]
    assert tokenizer_json["pre_tokenizer"] is None
    config = json.loads((tiny_llava / "tokenizer_config.json").read_text())
    assert config["legacy"] is False and config["tokenizer_class"] == "LlamaTokenizer"
    assert config["added_tokens_decoder"]["32000"]["content"] == "<image>"
    assert config["added_tokens_decoder"]["32001"]["content"] == "<pad>"


def test_every_prompt_shape_gets_the_authors_ids(llava, corpus, encoder):
    assert len(corpus) > 150
    for label, prompt in corpus:  # the wrapper sends these prompts verbatim
        assert llava.format_prompt(prompt, label) == prompt
    tokenizer = llava.processor.tokenizer
    assert _mismatches(corpus, lambda p: tokenizer(p).input_ids, encoder) == []


def test_the_processor_output_is_the_authors_ids_with_the_image_expanded(llava, corpus, encoder):
    def processed(prompt: str) -> list[int]:
        ids = llava.processor(images=[IMAGE], text=[prompt], return_tensors="pt").input_ids[0].tolist()
        assert ids.count(LLAVA_HF_IMAGE_TOKEN_ID) == 16  # (56 / 14) ** 2 image features of the tiny checkpoint
        return collapse_image_runs(ids)

    assert _mismatches(corpus, processed, encoder) == []


def test_transformers_5s_llama_tokenizer_alone_drops_the_token_after_image(tiny_llava, corpus, encoder):
    """What the loader corrects: LlamaTokenizer with the checkpoint's legacy=false loses 29871 and nothing else."""
    plain = LlamaTokenizer.from_pretrained(str(tiny_llava))
    for _label, prompt in corpus:
        expected = reference_ids(encoder, prompt)
        at = expected.index(LLAVA_HF_IMAGE_TOKEN_ID) + 1
        assert expected[at] == 29871
        assert plain(prompt).input_ids == expected[:at] + expected[at + 1 :]


def test_a_checkpoint_resaved_by_transformers_5_still_gets_the_authors_ids(tiny_llava, tmp_path, encoder):
    copy = Path(shutil.copytree(tiny_llava, tmp_path / "resaved"))
    LlamaTokenizer.from_pretrained(str(copy)).save_pretrained(str(copy))  # Metaspace, prepend_scheme="first"
    assert json.loads((copy / "tokenizer.json").read_text())["pre_tokenizer"]["prepend_scheme"] == "first"
    assert AutoTokenizer.from_pretrained(str(copy))(PROMPT).input_ids != reference_ids(encoder, PROMPT)
    loaded = load_checkpoint(str(copy), ("llava",), "llava_adaptvis", device=torch.device("cpu"))
    assert loaded.tokenizer_rule == "llama_legacy"
    assert loaded.processor.tokenizer(PROMPT).input_ids == reference_ids(encoder, PROMPT)


def test_other_tokenizers_are_used_as_the_checkpoint_defines_them(tmp_path, tiny_qwen2_vl):
    byte_level = build_tiny_llava(tmp_path / "byte_level_llava")  # the byte-level BPE of the small test models
    wrapper = LlavaAdaptVis(pretrained=str(byte_level), device="cpu")
    assert wrapper.input_pipeline["tokenizer"] == "checkpoint"
    plain = AutoProcessor.from_pretrained(str(byte_level)).tokenizer
    assert type(wrapper.processor.tokenizer) is type(plain)
    assert wrapper.processor.tokenizer(PROMPT).input_ids == plain(PROMPT).input_ids
    qwen = Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu")
    assert qwen.input_pipeline["tokenizer"] == "checkpoint"
    text = qwen.format_prompt(PROMPT, "t")
    assert (
        qwen.processor.tokenizer(text).input_ids
        == AutoProcessor.from_pretrained(str(tiny_qwen2_vl)).tokenizer(text).input_ids
    )


def test_llava_16_takes_the_paper_prompt_and_ids_only_when_asked(tmp_path, llama_vocabulary, encoder):
    checkpoint = build_tiny_llava(tmp_path / "llava_next", next_version=True, vocabulary=llama_vocabulary)
    chat = LlavaAdaptVis(pretrained=str(checkpoint), device="cpu")
    assert chat.prompt_style == "chat" and chat.input_pipeline["tokenizer"] == "checkpoint"
    assert chat.format_prompt(PROMPT, "t").startswith("[INST]")
    paper = LlavaAdaptVis(pretrained=str(checkpoint), device="cpu", prompt_style="paper")
    assert paper.input_pipeline["tokenizer"] == "llama_legacy"
    assert paper.format_prompt(PROMPT, "t") == PROMPT
    ids = paper.processor(images=[IMAGE], text=[PROMPT], return_tensors="pt").input_ids[0].tolist()
    assert collapse_image_runs(ids) == reference_ids(encoder, PROMPT)


@pytest.mark.parametrize(
    ("family", "style", "message"),
    [
        ("llava", "chat", "LLaVA-1.5 is always prompted with the paper's prompt"),
        ("qwen2_vl", "paper", "Qwen2-VL has no <image> placeholder"),
        ("llava", "verbatim", "prompt_style='verbatim': use one of chat, paper"),
    ],
)
def test_unavailable_prompt_styles_are_refused_by_name(tiny_checkpoints, family, style, message):
    wrapper = Qwen2VLAdaptVis if family == "qwen2_vl" else LlavaAdaptVis
    with pytest.raises(MethodArgumentError, match="prompt_style") as error:
        wrapper(pretrained=str(tiny_checkpoints[family]), device="cpu", prompt_style=style)
    assert message in str(error.value)
