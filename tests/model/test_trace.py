"""The trace file: whole lines, no duplicates, per-rank files that merge completely, and the API."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from model_wrappers.api import adaptvis_generate
from model_wrappers.architectures import prompt_batch
from model_wrappers.decoding import DecodeSettings, generate
from model_wrappers.intervention import enable_image_attention_scaling, text_attention_implementation
from model_wrappers.methods import MethodConfig
from model_wrappers.trace import TraceWriter, main, merge_traces, rank_path, read_trace


def _record(doc_id: int, answer: str = "Left", run: str = "r1", task: str = "whatsup_controlled_a") -> dict:
    return {
        "task": task,
        "split": "test",
        "doc_id": doc_id,
        "method": "baseline",
        "confidence": 0.5,
        "alpha": None,
        "answer": answer,
        "run": run,
        "input_sha": "0" * 16,
    }


def test_each_record_is_one_complete_line_and_repeats_are_not_written(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path)
    assert writer.write(_record(0)) and writer.write(_record(1))
    assert not writer.write(_record(0, answer="other"))  # same (run, task, split, doc_id)
    assert writer.write(_record(0, run="r2"))  # other settings are another run
    writer.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["doc_id"] for line in lines] == [0, 1, 0]
    reopened = TraceWriter(path)  # a rerun of the same command
    assert not reopened.write(_record(1))
    assert reopened.recorded("r1", "whatsup_controlled_a", "test", 1)["answer"] == "Left"
    reopened.close()
    assert path.read_text().count("\n") == 3


def test_an_incomplete_last_line_is_cut_off_when_the_file_is_reopened(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_record(0)) + "\n" + '{"task": "whatsup_contr')
    writer = TraceWriter(path)
    writer.write(_record(1))
    writer.close()
    assert [r["doc_id"] for r in read_trace(path)] == [0, 1]


def test_a_malformed_line_is_reported_with_its_line_number(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(_record(0)) + "\nnot json\n")
    with pytest.raises(ValueError, match=r"t.jsonl:2: not a JSON object"):
        list(read_trace(path))


def test_ranks_write_their_own_files_and_rank_zero_merges_them(tmp_path):
    path = tmp_path / "t.jsonl"
    writers = [TraceWriter(path, rank=r, world_size=2) for r in (0, 1)]
    for doc_id in range(6):
        writers[doc_id % 2].write(_record(doc_id))
    for writer in writers:
        writer.close()
    assert [w.path for w in writers] == [tmp_path / "t.rank0.jsonl", tmp_path / "t.rank1.jsonl"]
    assert writers[1].merge_ranks() is None  # only rank 0 merges
    assert writers[0].merge_ranks() == path
    assert [r["doc_id"] for r in read_trace(path)] == list(range(6))
    assert rank_path(path, 3).name == "t.rank3.jsonl"


def test_merge_refuses_two_different_answers_for_one_document(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(_record(0, "Left")) + "\n")
    b.write_text(json.dumps(_record(0, "Right")) + "\n")
    with pytest.raises(ValueError, match="conflicting lines"):
        merge_traces([a, b], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_merge_command_line(tmp_path, capsys):
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps(_record(2)) + "\n" + json.dumps(_record(1)) + "\n")
    assert main(["merge", str(a), "-o", str(tmp_path / "m.jsonl")]) == 0
    assert [r["doc_id"] for r in read_trace(tmp_path / "m.jsonl")] == [1, 2]


def test_python_api_matches_the_decoder_and_leaves_the_model_as_it_was(tiny_llava):
    processor = AutoProcessor.from_pretrained(tiny_llava)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava).eval()
    images = [Image.new("RGB", (60, 40), (200, 30, 30)), Image.new("RGB", (40, 60), (30, 30, 200))]
    prompts = [
        "<image>\nUSER: Where is the mug in relation to the knife? Answer with left, right or under.\nASSISTANT:",
        "<image>\nUSER: Where is it?\nASSISTANT:",
    ]
    inputs = processor(images=images, text=prompts, padding=True, return_tensors="pt")
    outputs = adaptvis_generate(model, inputs, "adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3, max_new_tokens=5)
    assert text_attention_implementation(model) == "sdpa"  # switched back after the call
    enable_image_attention_scaling(model)
    eos = model.generation_config.eos_token_id
    settings = DecodeSettings(max_new_tokens=5, eos_token_ids=(eos,), pad_token_id=model.generation_config.pad_token_id)
    method = MethodConfig.from_model_args(method="adapt_vis", alpha1=0.5, alpha2=1.5, threshold=0.3)
    expected = generate(model, prompt_batch(model, inputs), method, settings)
    assert [(o.tokens, o.alpha, o.confidence) for o in outputs] == [(e.tokens, e.alpha, e.confidence) for e in expected]
    processor.tokenizer.padding_side = "right"
    right_padded = processor(images=images, text=prompts, padding=True, return_tensors="pt")
    with pytest.raises(ValueError, match="right-padded"):
        adaptvis_generate(model, right_padded)
    assert isinstance(outputs[0].tokens, list) and torch.is_tensor(inputs["input_ids"])
