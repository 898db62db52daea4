"""lmms-eval's spatial tasks: method=baseline builds exactly what lmms-eval's own models build.

For every supported task, on the same tiny checkpoint and the same mirrored documents,
``llava_adaptvis`` is compared with lmms-eval's ``llava_hf`` (the chat class ``--model llava_hf``
resolves to) and ``qwen2_vl_adaptvis`` with lmms-eval's ``qwen2_vl``: the prompt text, the
input ids, the pixel tensors and the answers. Both sides are real lmms-eval objects: tasks from
lmms-eval's own YAML/utils.py through its ``TaskManager``, models from ``lmms_eval.models``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from lmms_eval.api.instance import Instance

from adaptvis_tasks.spatial import MIRROR_ENV, SPATIAL_TASKS
from model_wrappers.lmms_eval_convention import convention_for, uses_lmms_eval_convention
from tests.support.spatial_mirrors import write_spatial_mirrors

TASKS = list(SPATIAL_TASKS)
MAX_NEW_TOKENS = 12
"""Both sides get the same cap (the tasks ask for 16 to 4096 tokens, which a random tiny model fills)."""


class Recorder:
    """Stands in for a processor and records what each call received and returned."""

    def __init__(self, processor: Any) -> None:
        self.processor, self.calls = processor, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.processor(*args, **kwargs)
        self.calls.append((kwargs, out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)


@pytest.fixture(scope="module")
def spatial_tasks(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """{"simple": {task: Task}, "chat": {task: Task}} loaded from the mirror, offline."""
    root = write_spatial_mirrors(tmp_path_factory.mktemp("spatial_mirror"))
    patch = pytest.MonkeyPatch()
    patch.setenv(MIRROR_ENV, str(root))
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    patch.setenv("HF_HUB_OFFLINE", "1")
    from lmms_eval.tasks import TaskManager, get_task_dict

    from model_wrappers.registry import model_manifests

    model_manifests()
    manager = TaskManager("WARNING")
    loaded = {kind: get_task_dict(TASKS, manager, kind) for kind in ("simple", "chat")}
    yield loaded
    patch.undo()


def _docs(task) -> tuple[str, Any]:
    split = task.config.test_split or task.config.validation_split
    return split, task.dataset[split]


def _generation_kwargs(task) -> dict:
    return {**copy.deepcopy(task.config.generation_kwargs), "max_new_tokens": MAX_NEW_TOKENS}


def simple_requests(task, name: str, limit: int = 2) -> list[Instance]:
    split, docs = _docs(task)
    return [
        Instance(
            "generate_until",
            (
                task.doc_to_text(docs[i]),
                _generation_kwargs(task),
                task.doc_to_visual,
                i,
                name,
                split,
            ),
            0,
            metadata={"task": name, "doc_id": i, "repeats": 1},
        )
        for i in range(min(limit, len(docs)))
    ]


def chat_requests(task, name: str, limit: int = 2) -> list[Instance]:
    split, docs = _docs(task)
    return [
        Instance(
            "generate_until",
            (
                task.doc_to_text(docs[i]),
                task.doc_to_messages,
                _generation_kwargs(task),
                i,
                name,
                split,
            ),
            0,
            metadata={"task": name, "doc_id": i, "repeats": 1},
        )
        for i in range(min(limit, len(docs)))
    ]


def _task_dict(tasks: dict, name: str) -> dict:
    split, docs = _docs(tasks[name])
    return {name: {split: docs}}


def _answers(outputs: list) -> list[str]:
    return [out.text if hasattr(out, "text") else out for out in outputs]


def _same_inputs(ours: dict, theirs: dict, where: str) -> None:
    for key in ("input_ids", "pixel_values", "image_grid_thw", "image_sizes"):
        if key in theirs:
            assert key in ours, f"{where}: {key} missing"
            assert torch.equal(ours[key].cpu(), theirs[key].cpu()), f"{where}: {key} differs"


@pytest.fixture(scope="module")
def llava_pair(tiny_llava):
    from lmms_eval.models.chat.llava_hf import LlavaHf

    from model_wrappers.llava import LlavaAdaptVis

    return LlavaAdaptVis(pretrained=str(tiny_llava), device="cpu"), LlavaHf(
        pretrained=str(tiny_llava), device="cpu", device_map="cpu"
    )


@pytest.fixture(scope="module")
def qwen_pair(tiny_qwen2_vl):
    from lmms_eval.models.simple.qwen2_vl import Qwen2_VL

    from model_wrappers.qwen2_vl import Qwen2VLAdaptVis

    return Qwen2VLAdaptVis(pretrained=str(tiny_qwen2_vl), device="cpu"), Qwen2_VL(
        pretrained=str(tiny_qwen2_vl), device="cpu", device_map="cpu"
    )


def test_the_lmms_eval_convention_applies_to_the_supported_spatial_tasks_only():
    for name in (*TASKS, "cv_bench_val", "mmvp_test"):
        assert uses_lmms_eval_convention(name)
    for name in ("whatsup_controlled_a", "vsr_zeroshot", "whatsup_synthetic_a_val", "pope_adv", "gqa"):
        assert not uses_lmms_eval_convention(name)


@pytest.mark.parametrize("name", TASKS)
def test_llava_baseline_matches_lmms_eval_llava_hf(spatial_tasks, llava_pair, name):
    ours, theirs = llava_pair
    ours.task_dict = theirs.task_dict = _task_dict(spatial_tasks["simple"], name)
    theirs._image_processor = their_recorder = Recorder(theirs._image_processor)
    convention = convention_for(ours, name)
    convention.__dict__["processor"] = our_recorder = Recorder(convention.processor)
    try:
        # one request per call on both sides, so the recorded calls pair up document by document
        their_answers = [
            _answers(theirs.generate_until([r]))[0] for r in chat_requests(spatial_tasks["chat"][name], name)
        ]
        our_answers = [ours.generate_until([r])[0] for r in simple_requests(spatial_tasks["simple"][name], name)]
    finally:
        theirs._image_processor = their_recorder.processor
        convention.__dict__["processor"] = our_recorder.processor
    assert our_answers == their_answers
    assert len(our_recorder.calls) == len(their_recorder.calls)
    for (our_kwargs, our_out), (their_kwargs, their_out) in zip(our_recorder.calls, their_recorder.calls, strict=True):
        assert our_kwargs["text"] == [their_kwargs["text"]], name
        assert their_kwargs["text"].startswith("USER: <image>\n") and their_kwargs["text"].endswith(" ASSISTANT:")
        _same_inputs(our_out, their_out, name)


@pytest.mark.parametrize("name", TASKS)
def test_qwen2_vl_baseline_matches_lmms_eval_qwen2_vl(spatial_tasks, qwen_pair, name):
    ours, theirs = qwen_pair
    ours.task_dict = theirs.task_dict = _task_dict(spatial_tasks["simple"], name)
    theirs.processor = their_recorder = Recorder(theirs.processor)
    convention = convention_for(ours, name)
    convention.__dict__["processor"] = our_recorder = Recorder(convention.processor)
    requests = simple_requests(spatial_tasks["simple"][name], name)
    try:
        their_answers = [theirs.generate_until([r])[0] for r in copy.deepcopy(requests)]
        our_answers = [ours.generate_until([r])[0] for r in requests]
    finally:
        theirs.processor = their_recorder.processor
        convention.__dict__["processor"] = our_recorder.processor
    assert our_answers == their_answers
    assert len(our_recorder.calls) == len(their_recorder.calls)
    for (our_kwargs, our_out), (their_kwargs, their_out) in zip(our_recorder.calls, their_recorder.calls, strict=True):
        assert our_kwargs["text"] == their_kwargs["text"], name
        assert their_kwargs["text"][0].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
        _same_inputs(our_out, their_out, name)
