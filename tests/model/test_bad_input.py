"""Bad input (issue 5): every case is handled, or evaluation stops with a message that names the
file, row or argument and says what to do -- never a bare traceback from transformers/PIL, never a
silently skipped document.

The wrappers are driven in-process the way lmms-eval drives them: ``Instance`` requests whose
``doc_to_visual`` is the real task function, docs looked up in ``wrapper.task_dict``.

Covered elsewhere and not repeated here:

* missing, corrupt and truncated image files at the data layer:
  ``test_data.py::test_missing_image_names_file_row_and_env_var``,
  ``test_data.py::test_undecodable_image_is_an_image_load_error_not_a_pil_traceback``,
  ``test_task_loading.py::test_missing_image_fails_at_doc_to_visual_with_image_load_error``,
  ``test_doctor.py::test_damaged_mirror_fails_and_names_what_is_wrong``;
* pixel rules of each colour mode and the PIL size limit: ``test_data.py`` (``test_*_rgb*``,
  ``test_sixteen_bit_greyscale_is_scaled_not_clipped``, ``test_very_large_image_loads_without_...``);
* rows without a gold, with a gold that is no relation word, or templated with 0 or 2 ``<image>``:
  ``test_data.py::test_invalid_rows_raise_naming_file_row_and_problem``;
* a missing config folder or data dir: ``test_data.py::test_missing_config_folder_names_the_expected_files``,
  ``test_data.py::test_data_dir_that_does_not_exist``,
  ``test_task_loading.py::test_missing_config_folder_fails_task_loading_naming_the_expected_files``;
* parsing of method arguments: ``test_methods.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from lmms_eval.api.instance import Instance
from PIL import Image, ImageFile

from adaptvis_tasks import whatsup
from adaptvis_tasks.data import DataSetupError, image_relpath, load_descriptors, load_rows
from adaptvis_tasks.doctor import run_checks
from adaptvis_tasks.synthetic import write_mirror
from model_wrappers.base import AdaptVisLMM, RequestError
from model_wrappers.llava import LlavaAdaptVis, LlavaOnevisionAdaptVis
from model_wrappers.loading import CheckpointError
from model_wrappers.methods import MethodArgumentError
from model_wrappers.prompting import PromptError
from model_wrappers.qwen2_vl import Qwen2_5_VLAdaptVis, Qwen2VLAdaptVis, Qwen3VLAdaptVis
from tests.support.cli import base_env, lmms_eval_command

DESCRIPTORS = load_descriptors()
TASK = "whatsup_controlled_a"
FAMILIES = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_onevision")
WRAPPERS: dict[str, type[AdaptVisLMM]] = {
    "llava": LlavaAdaptVis,
    "llava_next": LlavaAdaptVis,
    "qwen2_vl": Qwen2VLAdaptVis,
    "qwen2_5_vl": Qwen2_5_VLAdaptVis,
    "qwen3_vl": Qwen3VLAdaptVis,
    "llava_onevision": LlavaOnevisionAdaptVis,
}
GREEDY = {"max_new_tokens": 3, "until": []}
PAPER_FORMAT = {"prompt_format": "llava15_paper"}


# ----------------------------------------------------------------------------------------------
# Helpers and fixtures
# ----------------------------------------------------------------------------------------------


def make_request(
    context: str,
    doc_id: int,
    gen_kwargs: Mapping[str, Any] | None = None,
    doc_to_visual: Callable[[Mapping[str, Any]], list] = whatsup.doc_to_visual,
    task: str = TASK,
) -> Instance:
    """A ``generate_until`` request as lmms-eval builds it."""
    return Instance(
        request_type="generate_until",
        arguments=(context, dict(GREEDY if gen_kwargs is None else gen_kwargs), doc_to_visual, doc_id, task, "test"),
        idx=0,
        metadata={"task": task, "doc_id": doc_id, "repeats": 1},
    )


def generate(wrapper: AdaptVisLMM, docs: list[Mapping[str, Any]], requests: list[Instance]) -> list[str]:
    """Answer ``requests`` over ``docs`` (the task's test split) like lmms-eval's evaluator."""
    wrapper.task_dict = {request.args[4]: {"test": docs} for request in requests}
    return wrapper.generate_until(requests)


def context_for(wrapper: AdaptVisLMM, doc: Mapping[str, Any]) -> str:
    """What the real task sends this wrapper: the paper's prompt for LLaVA-1.5, the bare question otherwise."""
    return whatsup.doc_to_text(doc, PAPER_FORMAT if wrapper.model_type == "llava" else None)


def ask(wrapper: AdaptVisLMM, docs: list[Mapping[str, Any]], doc_id: int, **request: Any) -> str:
    """One request for ``docs[doc_id]`` with the task's own prompt unless ``context`` is given."""
    context = request.pop("context", None)
    if context is None:
        context = context_for(wrapper, docs[doc_id])
    (answer,) = generate(wrapper, docs, [make_request(context, doc_id, **request)])
    return answer


def assert_names(message: str, *parts: str) -> None:
    """Every part occurs in the message (shown whole when one is missing)."""
    for part in parts:
        assert part in message, f"{part!r} missing from: {message}"


@pytest.fixture(scope="module")
def wrappers(tiny_checkpoints: dict[str, Path]) -> dict[str, AdaptVisLMM]:
    """One wrapper per checkpoint family, batch size 2 (so mixed image sizes share a batch)."""
    return {
        family: WRAPPERS[family](pretrained=str(tiny_checkpoints[family]), device="cpu", batch_size=2)
        for family in FAMILIES
    }


def controlled_a_docs(mirror_data_dir: Path) -> list[dict[str, Any]]:
    """The validated Controlled_A docs of a mirror, as the task's ``process_docs`` builds them."""
    return load_rows(DESCRIPTORS["Controlled_A"], mirror_data_dir).rows


def image_file(image_root: Path, doc: Mapping[str, Any]) -> Path:
    """The file ``doc_to_visual`` reads for ``doc``."""
    return image_root / image_relpath(doc["subset"], doc)


# ----------------------------------------------------------------------------------------------
# 1. Missing, corrupt and truncated images reach the wrapper as one clear error
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "corrupt", "truncated"])
def test_unusable_image_stops_the_wrapper_naming_task_doc_file_and_fix(
    damage: str, wrappers: dict[str, AdaptVisLMM], make_mirror: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what importing lmms-eval does process-wide
    mirror = make_mirror({"Controlled_A": 4})
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mirror.image_root))
    docs = controlled_a_docs(mirror.data_dir)
    path = image_file(mirror.image_root, docs[2])
    if damage == "missing":
        path.unlink()
    else:
        content = path.read_bytes()
        path.write_bytes(b"not an image" if damage == "corrupt" else content[: len(content) // 3])
    wrapper = wrappers["llava"]
    requests = [make_request(context_for(wrapper, doc), index) for index, doc in enumerate(docs)]
    with pytest.raises(RequestError) as caught:
        generate(wrapper, docs, requests)  # the other three documents are not answered without it
    expected = "is missing" if damage == "missing" else "cannot be decoded"
    assert_names(
        str(caught.value), f"task {TASK} doc_id 2", str(path), expected, "ADAPTVIS_IMAGE_ROOT", "adaptvis-doctor"
    )


@pytest.mark.e2e
def test_lmms_eval_cli_stops_on_a_missing_image_with_our_message_and_writes_no_results(
    tiny_checkpoints: dict[str, Path], make_mirror: Callable[..., Any], tmp_path: Path
) -> None:
    mirror = make_mirror({"Controlled_A": 4})
    docs = controlled_a_docs(mirror.data_dir)
    missing = image_file(mirror.image_root, docs[1])
    missing.unlink()
    output = tmp_path / "results"
    command = lmms_eval_command(
        "llava_adaptvis",
        f"pretrained={tiny_checkpoints['llava']},device=cpu",
        TASK,
        output,
        "--batch_size",
        "2",
        "--gen_kwargs",
        "max_new_tokens=3",
    )
    completed = subprocess.run(
        command, env=base_env(mirror.data_dir, mirror.image_root), capture_output=True, text=True, timeout=600
    )
    log = completed.stdout + completed.stderr
    # lmms-eval 0.7.3 exits 0 even when the evaluation fails: what counts is what it wrote and said.
    assert not list(output.rglob("*_results.json")), log[-3000:]
    error_lines = [line for line in log.splitlines() if "Error during evaluation" in line]
    assert error_lines, log[-3000:]
    assert_names(error_lines[-1], f"task {TASK} doc_id 1", str(missing), "ADAPTVIS_IMAGE_ROOT", "adaptvis-doctor")


# ----------------------------------------------------------------------------------------------
# 2. Colour modes and extreme sizes: end to end through the task function and the wrappers
# ----------------------------------------------------------------------------------------------

RED, BLUE, GREEN = (200, 40, 40), (40, 70, 200), (40, 160, 60)
_SIZE = (48, 32)


def _halves(mode: str, left: Any, right: Any) -> Image.Image:
    image = Image.new(mode, _SIZE, left)
    image.paste(right, (_SIZE[0] // 2, 0, _SIZE[0], _SIZE[1]))
    return image


def _rgb_halves(left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    return _halves("RGB", left, right)


def _palette(transparency: bool) -> Image.Image:
    image = _halves("P", 0, 1)
    image.putpalette([*RED, *GREEN] + [0] * (256 - 2) * 3)
    if transparency:
        image.info["transparency"] = 0
    return image


def _colour_key(image: Image.Image, key: Any) -> Image.Image:
    """A PNG colour key: pixels of this value are transparent (a tRNS chunk, no alpha channel)."""
    image.info["transparency"] = key
    return image


def _sixteen_bit() -> Image.Image:
    image = Image.new("I;16", _SIZE)
    for x in range(_SIZE[0]):
        for y in range(_SIZE[1]):
            image.putpixel((x, y), 25700 if x < _SIZE[0] // 2 else 65535)  # 100 and 255 after value/257
    return image


# name -> (file content, file format, the RGB image the model must see)
COLOUR_MODES: dict[str, tuple[Callable[[], Image.Image], str, Callable[[], Image.Image]]] = {
    "RGBA": (lambda: _halves("RGBA", (*RED, 0), (*BLUE, 128)), "PNG", lambda: _rgb_halves(RED, BLUE)),
    "L": (lambda: _halves("L", 30, 220), "PNG", lambda: _rgb_halves((30,) * 3, (220,) * 3)),
    "P": (lambda: _palette(transparency=False), "PNG", lambda: _rgb_halves(RED, GREEN)),
    "P+transparency": (lambda: _palette(transparency=True), "PNG", lambda: _rgb_halves(RED, GREEN)),
    "RGB+colour-key": (lambda: _colour_key(_rgb_halves(RED, BLUE), RED), "PNG", lambda: _rgb_halves(RED, BLUE)),
    "L+colour-key": (lambda: _colour_key(_halves("L", 30, 220), 30), "PNG", lambda: _rgb_halves((30,) * 3, (220,) * 3)),
    "CMYK": (
        lambda: _halves("CMYK", (0, 255, 255, 0), (255, 255, 0, 0)),
        "TIFF",
        lambda: _rgb_halves((255, 0, 0), (0, 0, 255)),
    ),
    "I;16": (_sixteen_bit, "PNG", lambda: _rgb_halves((100,) * 3, (255,) * 3)),
    "1x1": (lambda: Image.new("RGB", (1, 1), (1, 2, 3)), "PNG", lambda: Image.new("RGB", (1, 1), (1, 2, 3))),
}
HUGE = "10000x10000"


class ModeMirror:
    """A Controlled_A mirror whose image files are replaced: one row per colour mode, plus a huge image."""

    def __init__(self, root: Path) -> None:
        data_dir, self.image_root = write_mirror(root, {"Controlled_A": len(COLOUR_MODES) + 1}, seed=3)
        self.docs = controlled_a_docs(data_dir)
        self.row = {name: index for index, name in enumerate([*COLOUR_MODES, HUGE])}
        for name, (make, file_format, _) in COLOUR_MODES.items():
            make().save(self.path(name), format=file_format)
        Image.new("RGB", (10000, 10000), RED).save(self.path(HUGE), format="JPEG", quality=95)

    def path(self, name: str) -> Path:
        return image_file(self.image_root, self.docs[self.row[name]])


@pytest.fixture(scope="module")
def mode_mirror(tmp_path_factory: pytest.TempPathFactory) -> ModeMirror:
    return ModeMirror(tmp_path_factory.mktemp("mode_mirror"))


@pytest.fixture
def mode_env(mode_mirror: ModeMirror, monkeypatch: pytest.MonkeyPatch) -> ModeMirror:
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mode_mirror.image_root))
    return mode_mirror


@pytest.mark.parametrize("mode", list(COLOUR_MODES))
def test_image_files_in_every_colour_mode_reach_the_model_as_their_rgb_pixels(
    mode: str, mode_env: ModeMirror, wrappers: dict[str, AdaptVisLMM]
) -> None:
    doc_id = mode_env.row[mode]
    expected = COLOUR_MODES[mode][2]()
    (loaded,) = whatsup.doc_to_visual(mode_env.docs[doc_id])
    assert (loaded.mode, loaded.size) == ("RGB", expected.size)
    assert loaded.tobytes() == expected.tobytes()
    wrapper = wrappers["llava"]
    from_file = ask(wrapper, mode_env.docs, doc_id)
    from_rgb = ask(wrapper, mode_env.docs, doc_id, doc_to_visual=lambda _doc: [expected])
    assert isinstance(from_file, str) and from_file == from_rgb


@pytest.mark.parametrize("family", FAMILIES)
def test_one_pixel_and_10000_pixel_images_are_resized_by_each_processor(
    family: str, mode_env: ModeMirror, wrappers: dict[str, AdaptVisLMM]
) -> None:
    wrapper = wrappers[family]
    tiny, huge = mode_env.row["1x1"], mode_env.row[HUGE]
    requests = [make_request(context_for(wrapper, mode_env.docs[i]), i) for i in (tiny, huge)]
    answers = generate(wrapper, mode_env.docs, requests)  # one batch of 2: different image-token counts
    assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
    assert answers[0] == ask(wrapper, mode_env.docs, tiny)  # the huge neighbour changes nothing


# ----------------------------------------------------------------------------------------------
# 3. Questions: empty, zero or two <image> placeholders, non-ASCII text
# ----------------------------------------------------------------------------------------------

EMPTY_CONTEXTS = ["", "   \n", "<image>\nUSER: \nASSISTANT:"]
TWO_IMAGE_CONTEXTS = [
    "<image>\n<image>\nUSER: Where is the mug in relation to the knife? Answer with left or right.\nASSISTANT:",
    "Compare <image> and <image>. Answer with left or right.",
]


@pytest.fixture(scope="module")
def plain_docs() -> list[dict[str, Any]]:
    """Docs whose image is handed over in memory (the prompt checks do not need files)."""
    return [{"id": index} for index in range(4)]


def _in_memory(_doc: Mapping[str, Any]) -> list[Image.Image]:
    return [_rgb_halves(RED, BLUE)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("context", EMPTY_CONTEXTS, ids=["empty", "blank", "empty-llava15-template"])
def test_empty_question_stops_naming_task_and_doc(
    family: str, context: str, wrappers: dict[str, AdaptVisLMM], plain_docs: list[dict[str, Any]]
) -> None:
    with pytest.raises(PromptError) as caught:
        ask(wrappers[family], plain_docs, 3, context=context, doc_to_visual=_in_memory)
    assert_names(str(caught.value), f"task {TASK} doc_id 3", "empty", "doc_to_text")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("context", TWO_IMAGE_CONTEXTS, ids=["templated", "bare"])
def test_two_image_placeholders_stop_naming_task_and_doc(
    family: str, context: str, wrappers: dict[str, AdaptVisLMM], plain_docs: list[dict[str, Any]]
) -> None:
    with pytest.raises(PromptError) as caught:
        ask(wrappers[family], plain_docs, 1, context=context, doc_to_visual=_in_memory)
    assert_names(str(caught.value), f"task {TASK} doc_id 1", "2 '<image>' placeholders", "one image")


@pytest.mark.parametrize("family", FAMILIES)
def test_templated_context_without_image_placeholder_stops_naming_task_and_doc(
    family: str, wrappers: dict[str, AdaptVisLMM], plain_docs: list[dict[str, Any]]
) -> None:
    context = "USER: Where is the mug in relation to the knife? Answer with left or right.\nASSISTANT:"
    with pytest.raises(PromptError) as caught:
        ask(wrappers[family], plain_docs, 2, context=context, doc_to_visual=_in_memory)
    assert_names(str(caught.value), f"task {TASK} doc_id 2", "0 <image> placeholders")


def test_bare_row_with_an_image_placeholder_but_no_roles_is_refused_at_load(make_mirror: Callable[..., Any]) -> None:
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[3]["question"] = "<image> Where is the mug in relation to the knife? Answer with left, right, on or under."
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["Controlled_A"], mirror.data_dir)
    assert_names(str(caught.value), str(path), "row 3", "1 <image> placeholder(s) but no USER:/ASSISTANT: roles")


NON_ASCII = "Où est le café 中文 🐱 in relation to the naïve knife? Answer with left, right, on or under."


@pytest.mark.parametrize("family", FAMILIES)
def test_non_ascii_question_from_a_utf8_row_gets_an_answer(
    family: str, wrappers: dict[str, AdaptVisLMM], make_mirror: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = make_mirror({"Controlled_A": 4})
    monkeypatch.setenv("ADAPTVIS_IMAGE_ROOT", str(mirror.image_root))
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["question"] = f"<image>\nUSER: {NON_ASCII}\nASSISTANT:"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    docs = controlled_a_docs(mirror.data_dir)
    wrapper = wrappers[family]
    context = context_for(wrapper, docs[1])
    assert NON_ASCII in context  # byte for byte, in both prompt formats
    answer = ask(wrapper, docs, 1, context=context)
    assert isinstance(answer, str)


def test_row_file_that_is_not_utf8_names_file_and_line(make_mirror: Callable[..., Any]) -> None:
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("Where is", "Où est")
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["Controlled_A"], mirror.data_dir)
    assert_names(str(caught.value), str(path), "line 3", "not UTF-8", "ADAPTVIS_DATA_DIR", "adaptvis-doctor")


def test_row_file_with_a_utf8_byte_order_mark_loads(make_mirror: Callable[..., Any]) -> None:
    mirror = make_mirror({"Controlled_A": 4})
    path = mirror.data_dir / "Controlled_A" / "test.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_rows(DESCRIPTORS["Controlled_A"], mirror.data_dir).rows) == 4


# ----------------------------------------------------------------------------------------------
# 4. Gold answers outside the row's options: accepted as published, reported by the doctor
# ----------------------------------------------------------------------------------------------

# Published VG_two_obj rows, verbatim (shiqichen17/AdaptVis prompts/VG_QA_two_obj_with_answer_six_options.jsonl,
# from which AdaptVis/all_datasets was made). Id 56 is the only published row whose gold is not among its
# own options; ids 40 and 1 use the same "top, or bottom" wording and the stray newline, with golds inside.
PUBLISHED_VG_TWO = {
    56: {
        "question": "<image>\nUSER: Where is the girl in relation to the pillow? "
        "Answer with left, right, front, behind, top, or bottom.\nASSISTANT:",
        "answer": ["Above"],
    },
    40: {
        "question": "<image>\nUSER: Where are the children in relation to the trees? "
        "Answer with left, right, front, behind, top, or bottom.\nASSISTANT:",
        "answer": ["Front"],
    },
    1: {
        "question": "<image>\nUSER: Where are the black trees in relation to the fence? "
        "\nAnswer with left, right, front, behind, above or below.\nASSISTANT:",
        "answer": ["Behind"],
    },
}


def test_published_row_with_gold_outside_its_options_loads_is_scored_and_reported(
    make_mirror: Callable[..., Any],
) -> None:
    # the synthetic COCO_two_obj/VG_one_obj rows copy the other published option spellings
    # ("left, right, above, or below"; "behind or front" with gold Behind): no warning for them
    mirror = make_mirror({"VG_two_obj": 4, "COCO_two_obj": 4, "VG_one_obj": 5})
    path = mirror.data_dir / "VG_two_obj" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1].update(PUBLISHED_VG_TWO[40])
    rows[2].update(PUBLISHED_VG_TWO[56])
    rows[3].update(PUBLISHED_VG_TWO[1])
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    doc = load_rows(DESCRIPTORS["VG_two_obj"], mirror.data_dir).rows[2]
    assert whatsup.process_results(doc, ["The girl is above the pillow."])["accuracy"] == 1.0
    assert whatsup.process_results(doc, ["Above."])["strict_accuracy"] == 0.0  # 'above' is not an option
    reports = {
        r.config: r
        for r in run_checks(["VG_two_obj", "COCO_two_obj", "VG_one_obj"], mirror.data_dir, mirror.image_root).configs
    }
    assert all(report.ok for report in reports.values())
    warnings = {name: [text for text in r.warnings if "not among the options" in text] for name, r in reports.items()}
    assert warnings["COCO_two_obj"] == warnings["VG_one_obj"] == []
    (warning,) = warnings["VG_two_obj"]
    assert_names(warning, "VG_two_obj", "1 row(s)", "row 2: gold 'Above'", "top, bottom", "Kept as published")


# ----------------------------------------------------------------------------------------------
# 5. A data dir whose config folder holds no rows file
# ----------------------------------------------------------------------------------------------


def test_config_folder_without_rows_file_names_both_expected_files(make_mirror: Callable[..., Any]) -> None:
    mirror = make_mirror({"COCO_two_obj": 4})
    (mirror.data_dir / "COCO_two_obj" / "test.jsonl").unlink()
    with pytest.raises(DataSetupError) as caught:
        load_rows(DESCRIPTORS["COCO_two_obj"], mirror.data_dir)
    folder = mirror.data_dir / "COCO_two_obj"
    assert_names(
        str(caught.value),
        "has neither test.jsonl nor test.parquet",
        str(folder / "test.jsonl"),
        str(folder / "test.parquet"),
        "ADAPTVIS_DATA_DIR",
        "adaptvis-doctor",
    )


# ----------------------------------------------------------------------------------------------
# 6. Checkpoint problems through the wrapper constructor
# ----------------------------------------------------------------------------------------------


def _copy(tiny: dict[str, Path], family: str, target: Path) -> Path:
    shutil.copytree(tiny[family], target)
    return target


def _missing_folder(tiny: dict[str, Path], target: Path) -> Path:
    return target / "does_not_exist"


def _empty_folder(tiny: dict[str, Path], target: Path) -> Path:
    target.mkdir()
    return target


def _rewrite(name: str, content: bytes | Callable[[bytes], bytes], family: str = "llava"):
    def breaker(tiny: dict[str, Path], target: Path) -> Path:
        folder = _copy(tiny, family, target)
        old = (folder / name).read_bytes()
        (folder / name).write_bytes(content(old) if callable(content) else content)
        return folder

    return breaker


def _remove(*names: str, family: str = "llava"):
    def breaker(tiny: dict[str, Path], target: Path) -> Path:
        folder = _copy(tiny, family, target)
        for name in names:
            (folder / name).unlink()
        return folder

    return breaker


def _weights_without_layer_1(tiny: dict[str, Path], target: Path) -> Path:
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny, "llava", target)
    tensors = load_file(folder / "model.safetensors")
    kept = {name: tensor for name, tensor in tensors.items() if ".layers.1." not in name}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _config_without_model_type(content: bytes) -> bytes:
    config = json.loads(content)
    config.pop("model_type")
    return json.dumps(config).encode()


def _plain_llama(tiny: dict[str, Path], target: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    LlamaForCausalLM(config).save_pretrained(target)
    return target


def _other_family(family: str):
    return lambda tiny, target: tiny[family]


CHECKPOINT_PROBLEMS = {
    # id: (wrapper, how to break the checkpoint, what the message must say)
    "missing-folder": ("llava", _missing_folder, "no such folder"),
    "empty-folder": ("llava", _empty_folder, "has no config.json (found: nothing)"),
    "garbage-config": ("llava", _rewrite("config.json", b"{not json"), "cannot read its config"),
    "config-without-model-type": ("llava", _rewrite("config.json", _config_without_model_type), "cannot read its"),
    "truncated-weights": ("llava", _rewrite("model.safetensors", lambda b: b[: len(b) // 2]), "cannot load the llava"),
    "garbage-weights": ("llava", _rewrite("model.safetensors", b"garbage" * 64), "cannot load the llava weights"),
    "no-weights": ("llava", _remove("model.safetensors"), "cannot load the llava weights"),
    "weights-missing-tensors": ("llava", _weights_without_layer_1, "initialise them randomly"),
    "no-tokenizer": ("llava", _remove("tokenizer.json", "tokenizer_config.json"), "cannot load its processor"),
    "garbage-tokenizer": ("llava", _rewrite("tokenizer.json", b"{garbage"), "cannot load its processor"),
    "no-image-processor": ("llava", _remove("processor_config.json"), "cannot load its processor"),
    "llava-next-without-chat-template": (
        "llava_next",
        _remove("chat_template.jinja", family="llava_next"),
        "no chat template",
    ),
    "qwen2-vl-without-chat-template": (
        "qwen2_vl",
        _remove("chat_template.jinja", family="qwen2_vl"),
        "no chat template",
    ),
    "plain-llama-to-llava": ("llava", _plain_llama, "is a 'llama' checkpoint; llava_adaptvis supports"),
    "plain-llama-to-qwen2-vl": ("qwen2_vl", _plain_llama, "is a 'llama' checkpoint; qwen2_vl_adaptvis supports"),
    "qwen2-vl-to-llava": ("llava", _other_family("qwen2_vl"), "use --model qwen2_vl_adaptvis"),
    "llava-to-qwen2-vl": ("qwen2_vl", _other_family("llava"), "use --model llava_adaptvis"),
    "llava-next-to-qwen2-vl": ("qwen2_vl", _other_family("llava_next"), "use --model llava_adaptvis"),
}


@pytest.mark.parametrize("problem", list(CHECKPOINT_PROBLEMS))
def test_unusable_checkpoint_is_a_checkpoint_error_naming_pretrained(
    problem: str, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    family, breaker, expected = CHECKPOINT_PROBLEMS[problem]
    pretrained = str(breaker(tiny_checkpoints, tmp_path / "checkpoint"))
    with pytest.raises(CheckpointError) as caught:
        WRAPPERS[family](pretrained=pretrained, device="cpu")
    message = str(caught.value)
    assert_names(message, f"pretrained={pretrained!r}", expected)
    what_to_do = ("give ", "use --model", "re-download", "re-save", "check the folder")
    assert any(hint in message for hint in what_to_do), message


# ----------------------------------------------------------------------------------------------
# 7. Model arguments of the wrong type or value
# ----------------------------------------------------------------------------------------------

MODEL_ARGUMENT_PROBLEMS = {
    "alpha=abc": ({"method": "scaling_vis", "alpha": "abc"}, "alpha='abc' is not a number"),
    "batch_size=auto": ({"batch_size": "auto"}, "batch_size='auto': give a positive integer"),
    "batch_size=0": ({"batch_size": 0}, "batch_size=0: give a positive integer"),
    "unknown-name": ({"alhpa": 0.5}, "unknown model argument(s) alhpa"),
    "layers=99": ({"layers": 99}, "layers=99 names layer 99, but the language model has 2 decoder layers"),
    "resume-without-trace": ({"resume": "true"}, "give trace=<path> too"),
    "trust_remote_code=maybe": ({"trust_remote_code": "maybe"}, "trust_remote_code='maybe' must be true or false"),
    "dtype=float33": ({"dtype": "float33"}, "dtype='float33' is not a torch dtype"),
    "dtype=float64": ({"dtype": "float64"}, "dtype='float64' is not supported here; allowed: auto, float32, float16"),
    "dtype=int8": ({"dtype": "int8"}, "dtype='int8' is not supported here; allowed: auto, float32, float16, bfloat16"),
    "misspelt-name-suggests": (
        {"alpah": 0.5},
        "unknown model argument(s) alpah (alpah: did you mean alpha or alphas?)",
    ),
    "attn_implementation=eager": ({"attn_implementation": "eager"}, "attn_implementation='eager' is not supported"),
    "device=cuda:7": ({"device": "cuda:7"}, "device='cuda:7'"),
}


@pytest.mark.parametrize("problem", list(MODEL_ARGUMENT_PROBLEMS))
def test_invalid_model_argument_is_a_method_argument_error_naming_it(
    problem: str, tiny_checkpoints: dict[str, Path]
) -> None:
    arguments, expected = MODEL_ARGUMENT_PROBLEMS[problem]
    model_args = {"pretrained": str(tiny_checkpoints["llava"]), "device": "cpu", **arguments}
    with pytest.raises(MethodArgumentError) as caught:
        LlavaAdaptVis(**model_args)
    assert expected in str(caught.value)


# ----------------------------------------------------------------------------------------------
# 8. Tasks asking for sampling or beam search
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gen_kwargs", "expected"),
    [
        ({"temperature": 0.7, "max_new_tokens": 3}, "asks for sampling"),
        ({"do_sample": True, "max_new_tokens": 3}, "asks for sampling"),
        ({"num_beams": 4, "max_new_tokens": 3}, "asks for beam search"),
    ],
    ids=["temperature", "do_sample", "num_beams"],
)
def test_sampling_or_beam_search_is_refused_naming_the_task(
    gen_kwargs: dict[str, Any], expected: str, wrappers: dict[str, AdaptVisLMM], plain_docs: list[dict[str, Any]]
) -> None:
    context = "Where is the red half? Answer with left or right."
    with pytest.raises(RequestError) as caught:
        ask(wrappers["llava"], plain_docs, 0, context=context, gen_kwargs=gen_kwargs, doc_to_visual=_in_memory)
    assert_names(str(caught.value), f"task {TASK}", expected, "greedily")


def test_explicitly_greedy_settings_are_accepted(
    wrappers: dict[str, AdaptVisLMM], plain_docs: list[dict[str, Any]]
) -> None:
    greedy = {"temperature": 0, "do_sample": False, "num_beams": 1, "max_new_tokens": 3, "until": []}
    context = "Where is the red half? Answer with left or right."
    assert isinstance(
        ask(wrappers["llava"], plain_docs, 0, context=context, gen_kwargs=greedy, doc_to_visual=_in_memory), str
    )
