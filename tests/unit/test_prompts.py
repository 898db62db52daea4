"""Prompts: both formats byte-identical to the reference, the LLaVA-1.5 split/format pair, the variants."""

from __future__ import annotations

import datasets
import pytest

from adaptvis_tasks import prompts, vsr, whatsup
from adaptvis_tasks.data import DataSetupError, load_descriptors

# Rows copied from the reference prompts files (shiqichen17/AdaptVis, prompts/*.jsonl), which the
# hub dataset AdaptVis/all_datasets was made from: (subset, question, answer, expected bare text).
REFERENCE_ROWS = [
    (
        "Controlled_A",
        "<image>\nUSER: Where is the beer bottle in relation to the armchair? "
        "Answer with left, right, on or under.\nASSISTANT:",
        ["On"],
        "Where is the beer bottle in relation to the armchair? Answer with left, right, on or under.",
    ),
    (
        "Controlled_B",
        "<image>\nUSER: Where is the mug in relation to the knife? "
        "Answer with left, right, front or behind.\nASSISTANT:",
        ["Right"],
        "Where is the mug in relation to the knife? Answer with left, right, front or behind.",
    ),
    (
        "COCO_one_obj",
        "<image>\nUSER: Where is the dining table in the photo? Answer with left, right, top or bottom.\nASSISTANT:",
        ["Bottom"],
        "Where is the dining table in the photo? Answer with left, right, top or bottom.",
    ),
    (
        "COCO_two_obj",
        "<image>\nUSER: Where is the dining table in relation to the refrigerator? "
        "Answer with left, right, above, or below.\nASSISTANT:",
        ["Left"],
        "Where is the dining table in relation to the refrigerator? Answer with left, right, above, or below.",
    ),
    (
        "COCO_two_obj",  # published with a double space after USER:
        "<image>\nUSER:  Where is the toilet in relation to the sink? "
        "Answer with left, right, above or below.\nASSISTANT:",
        ["Below"],
        "Where is the toilet in relation to the sink? Answer with left, right, above or below.",
    ),
    (
        "VG_one_obj",
        "<image>\nUSER: Where is the purse in the photo? "
        "Answer with left, right, front, behind, top or bottom.\nASSISTANT:",
        ["Right"],
        "Where is the purse in the photo? Answer with left, right, front, behind, top or bottom.",
    ),
    (
        "VG_one_obj",
        "<image>\nUSER: Where is the grass in the photo? Answer with behind or front.\nASSISTANT:",
        ["Behind"],
        "Where is the grass in the photo? Answer with behind or front.",
    ),
    (
        "VG_two_obj",
        "<image>\nUSER: Where is the cart in relation to the green trees? "
        "Answer with left, right, front, behind, above or below.\nASSISTANT:",
        ["Front"],
        "Where is the cart in relation to the green trees? Answer with left, right, front, behind, above or below.",
    ),
    (
        "VG_two_obj",  # the stray newline before "Answer with" stays (data kept as published)
        "<image>\nUSER: Where are the black trees in relation to the fence? "
        "\nAnswer with left, right, front, behind, above or below.\nASSISTANT:",
        ["Behind"],
        "Where are the black trees in relation to the fence? \nAnswer with left, right, front, behind, above or below.",
    ),
    (
        "VG_two_obj",
        "<image>\nUSER: Where is the horse in relation to the roof?"
        "\nAnswer with left, right, front, behind, above or below.\n\nASSISTANT:",
        ["Front"],
        "Where is the horse in relation to the roof?\nAnswer with left, right, front, behind, above or below.",
    ),
]

VSR_CAPTION = "The cat is behind the laptop."
# The reference builds: prompt + caption + " Assistant:" (model_zoo/llava15.py, get_judge_scores_vsr_batched).
VSR_REFERENCE = (
    "User: <image>\n Determine whether the description about the spatial relationship is correct or not. "
    "Answer with yes or no: " + VSR_CAPTION + " Assistant:"
)
VSR_BARE = (
    "Determine whether the description about the spatial relationship is correct or not. Answer with yes or no: "
    + VSR_CAPTION
)

PAPER = {"prompt_format": "llava15_paper"}
BARE = {"prompt_format": "bare"}


def _doc(subset: str, question: str, answer: list[str], row: int = 0) -> dict:
    return {"question": question, "answer": answer, "row": row, "subset": subset, "image_path": "a_left_of_b.jpeg"}


# ----------------------------------------------------------------------------------------------
# WhatsUp doc_to_text
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subset", "question", "answer", "bare"), REFERENCE_ROWS)
def test_llava15_paper_format_is_the_published_prompt_byte_for_byte(subset, question, answer, bare):
    assert whatsup.doc_to_text(_doc(subset, question, answer), PAPER) == question


@pytest.mark.parametrize(("subset", "question", "answer", "bare"), REFERENCE_ROWS)
def test_bare_format_is_the_question_and_option_instruction_only(subset, question, answer, bare):
    assert whatsup.doc_to_text(_doc(subset, question, answer), BARE) == bare
    assert whatsup.doc_to_text(_doc(subset, question, answer)) == bare  # no kwargs: bare


@pytest.mark.parametrize(("subset", "question", "answer", "bare"), REFERENCE_ROWS[:4])
def test_rows_published_without_the_template_get_the_papers_template(subset, question, answer, bare):
    assert whatsup.doc_to_text(_doc(subset, bare, answer), PAPER) == question
    assert whatsup.doc_to_text(_doc(subset, bare, answer), BARE) == bare


def test_bare_format_honours_optional_pre_and_post_prompt():
    subset, question, answer, bare = REFERENCE_ROWS[0]
    kwargs = {"prompt_format": "bare", "pre_prompt": "Look. ", "post_prompt": "\nOne word."}
    assert whatsup.doc_to_text(_doc(subset, question, answer), kwargs) == f"Look. {bare}\nOne word."


def test_unknown_prompt_format_is_rejected():
    subset, question, answer, _bare = REFERENCE_ROWS[0]
    with pytest.raises(ValueError, match="prompt_format"):
        whatsup.doc_to_text(_doc(subset, question, answer), {"prompt_format": "llava16"})


# ----------------------------------------------------------------------------------------------
# VSR doc_to_text
# ----------------------------------------------------------------------------------------------


def test_vsr_prompts_match_the_reference_construction():
    doc = {"caption": VSR_CAPTION, "label": 1, "row": 0}
    assert vsr.doc_to_text(doc, PAPER) == VSR_REFERENCE
    assert vsr.doc_to_text(doc, BARE) == VSR_BARE
    assert prompts.split_llava15_prompt(VSR_REFERENCE) == VSR_BARE


# ----------------------------------------------------------------------------------------------
# split / format
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subset", "question", "answer", "bare"), REFERENCE_ROWS)
def test_split_llava15_prompt_returns_the_bare_question(subset, question, answer, bare):
    assert prompts.split_llava15_prompt(question) == bare
    assert prompts.split_llava15_prompt(bare) == bare  # bare text passes through
    assert prompts.split_llava15_prompt(f"  {bare}\n") == bare


def test_format_is_the_inverse_of_split_for_canonical_rows():
    for _subset, question, _answer, bare in REFERENCE_ROWS[:4]:
        assert prompts.format_llava15_prompt(bare) == question
    assert prompts.format_vsr_llava15_prompt(VSR_BARE) == VSR_REFERENCE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<image>\n<image>\nUSER: Where is it?\nASSISTANT:", "2 <image>"),
        ("USER: Where is it?\nASSISTANT:", "0 <image>"),
        ("<image>\nUSER: Where is it?", "not a LLaVA-1.5 prompt"),
        ("<image>\nUSER: Where is it?\nASSISTANT: Left", "not a LLaVA-1.5 prompt"),
        ("<image>\nWhere is it?", "no USER:/ASSISTANT: roles"),
        ("<image>\nUSER: \nASSISTANT:", "empty"),
        ("   ", "empty"),
        ("<image>\nUSER: Where? USER: again\nASSISTANT:", "role marker inside"),
    ],
)
def test_split_llava15_prompt_rejects_malformed_prompts(text, reason):
    with pytest.raises(ValueError, match=reason):
        prompts.split_llava15_prompt(text)


def test_format_refuses_text_that_is_already_templated():
    with pytest.raises(ValueError, match="bare"):
        prompts.format_llava15_prompt(REFERENCE_ROWS[0][1])
    with pytest.raises(ValueError, match="empty"):
        prompts.format_llava15_prompt(" ")


# ----------------------------------------------------------------------------------------------
# Option clauses and variants
# ----------------------------------------------------------------------------------------------


def test_option_words_handle_every_published_spelling():
    assert prompts.option_words("Answer with left, right, on or under.") == ("left", "right", "on", "under")
    assert prompts.option_words("x? Answer with left, right, above, or below.") == ("left", "right", "above", "below")
    assert prompts.option_words("Answer with behind or front.") == ("behind", "front")
    assert prompts.option_words("Answer with left, right, front, behind, top, or bottom.")[-1] == "bottom"
    with pytest.raises(ValueError, match="0 'Answer with"):
        prompts.option_words("Where is the cat?")
    with pytest.raises(ValueError, match="2 'Answer with"):
        prompts.option_words("Answer with left or right. Answer with on or under.")


def test_converse_relation_keeps_capitalisation():
    assert prompts.converse_relation("On") == "Under"
    assert prompts.converse_relation("left") == "right"
    assert prompts.converse_relation("Top") == "Bottom"
    assert prompts.converse_relation("Behind") == "Front"
    assert prompts.converse_relation("ABOVE") == "BELOW"
    with pytest.raises(ValueError, match="no converse"):
        prompts.converse_relation("next to")


@pytest.mark.parametrize(
    ("question", "reversed_question"),
    [
        (
            "<image>\nUSER: Where is the beer bottle in relation to the armchair? "
            "Answer with left, right, on or under.\nASSISTANT:",
            "<image>\nUSER: Where is the armchair in relation to the beer bottle? "
            "Answer with left, right, on or under.\nASSISTANT:",
        ),
        (  # the verb follows the new subject
            "Where are the sunglasses in relation to the chair? Answer with left, right, on or under.",
            "Where is the chair in relation to the sunglasses? Answer with left, right, on or under.",
        ),
        (
            "Where is the cart in relation to the green trees? "
            "\nAnswer with left, right, front, behind, above or below.",
            "Where are the green trees in relation to the cart? "
            "\nAnswer with left, right, front, behind, above or below.",
        ),
        (
            "Where is the bus in relation to the glass? Answer with left or right.",
            "Where is the glass in relation to the bus? Answer with left or right.",
        ),
    ],
)
def test_reverse_entities(question, reversed_question):
    assert prompts.reverse_entities(question) == reversed_question


def test_reverse_entities_rejects_questions_it_cannot_parse():
    with pytest.raises(ValueError, match="0 'Where is X in relation to Y"):
        prompts.reverse_entities("Where is the cat in the photo? Answer with left or right.")


def _descriptor_docs(subset: str) -> datasets.Dataset:
    descriptor = load_descriptors()[subset]
    row = {
        "subset": descriptor.subset,
        "hub_dataset": descriptor.hub_dataset,
        "hub_config": descriptor.hub_config,
        "split": descriptor.split,
        "paper_rows": descriptor.paper_rows,
    }
    return datasets.Dataset.from_list([row])


def test_two_option_variant_offers_the_gold_and_its_converse(data_env):
    docs = whatsup.process_docs_two_options(_descriptor_docs("Controlled_A"))
    full = whatsup.process_docs(_descriptor_docs("Controlled_A"))
    expected = {"Left": "left or right", "Right": "left or right", "On": "on or under", "Under": "on or under"}
    for doc, original in zip(docs, full, strict=True):
        assert doc["published_question"] == original["question"]
        assert doc["answer"] == original["answer"]
        assert whatsup.doc_to_text(doc, BARE).endswith(f"Answer with {expected[doc['answer'][0]]}.")
        assert prompts.is_templated(doc["question"])  # still the paper's template for LLaVA
    docs_b = whatsup.process_docs_two_options(_descriptor_docs("Controlled_B"))
    assert {prompts.option_words(doc["question"]) for doc in docs_b} == {("left", "right"), ("front", "behind")}


def test_six_option_variant_uses_the_vg_wording(data_env):
    one = whatsup.process_docs_six_options(_descriptor_docs("COCO_one_obj"))
    two = whatsup.process_docs_six_options(_descriptor_docs("COCO_two_obj"))
    assert {prompts.option_words(doc["question"]) for doc in one} == {
        ("left", "right", "front", "behind", "top", "bottom")
    }
    assert {prompts.option_words(doc["question"]) for doc in two} == {
        ("left", "right", "front", "behind", "above", "below")
    }
    assert "Answer with left, right, front, behind, top or bottom." in whatsup.doc_to_text(one[0], BARE)


def test_reversed_variant_swaps_entities_and_converts_the_gold(data_env):
    docs = whatsup.process_docs_reversed(_descriptor_docs("Controlled_A"))
    full = whatsup.process_docs(_descriptor_docs("Controlled_A"))
    for doc, original in zip(docs, full, strict=True):
        assert doc["answer"][0] == prompts.converse_relation(original["answer"][0])
        assert doc["published_answer"] == original["answer"]
        assert doc["question"] == prompts.reverse_entities(original["question"])
        assert doc["image_path"] == original["image_path"]


def test_variants_are_refused_for_subsets_they_do_not_apply_to(data_env):
    docs = whatsup.process_docs_reversed(_descriptor_docs("COCO_one_obj"))
    with pytest.raises(DataSetupError, match="reversed variant is defined for Controlled_A"):
        whatsup.doc_to_text(docs[0])


def test_reversed_variant_fails_loudly_naming_the_row_it_cannot_parse(make_mirror, monkeypatch):
    mirror = make_mirror({"VG_two_obj": 6})
    path = mirror.data_dir / "VG_two_obj" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("in relation to the", "near the")
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ADAPTVIS_DATA_DIR", str(mirror.data_dir))
    docs = whatsup.process_docs_reversed(_descriptor_docs("VG_two_obj"))
    assert len(docs) == 1  # the placeholder that carries the error
    with pytest.raises(DataSetupError) as caught:
        whatsup.doc_to_text(docs[0])
    message = str(caught.value)
    assert "row 3" in message and str(path) in message and "reversed" in message and "adaptvis-doctor" in message
