"""Metric definitions against hand-computed cases (reference rules first, then our additions)."""

from __future__ import annotations

import pytest

from adaptvis_tasks import scoring, vsr, whatsup
from adaptvis_tasks.data import load_descriptors, load_rows

FOUR_A = ("left", "right", "on", "under")

# ----------------------------------------------------------------------------------------------
# The paper's substring rule
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "gold", "expected"),
    [
        ("Left", "Left", True),
        ("The beer bottle is to the left of the armchair.", "Left", True),  # case-insensitive
        ("LEFT", "Left", True),
        ("Right", "Left", False),
        ("On", "On", True),
        ("Under", "On", False),
        ("In front of the armchair", "On", False),  # 'front' contains 'on': gold On loses
        ("It is on the table, in front of the lamp", "On", False),  # 'front' anywhere beats gold On
        ("It is positioned above", "On", True),  # a known looseness: 'on' inside 'positioned'
        ("left, right, on or under", "Left", True),  # listing every option is rewarded
        ("left, right, on or under", "Under", True),
        ("Front", "Front", True),
        ("in front", "Front", True),
        ("", "Left", False),
    ],
)
def test_substring_rule(generation, gold, expected):
    assert scoring.substring_correct(generation, gold) is expected


# ----------------------------------------------------------------------------------------------
# Our strict rule
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "gold", "expected"),
    [
        ("Left", "Left", True),
        ("left or right", "Right", False),  # first option word counts, not any
        ("left, right, on or under", "Under", False),
        ("In front of the armchair", "On", False),  # no whole-word option at all
        ("It is positioned on the table", "On", True),  # whole words only: 'positioned' is not 'on'
        ("UNDER the table", "Under", True),
        ("", "Left", False),
    ],
)
def test_strict_rule_takes_the_first_whole_option_word(generation, gold, expected):
    assert scoring.strict_correct(generation, gold, FOUR_A) is expected


def test_first_option_is_the_earliest_match_not_the_first_listed_option():
    assert scoring.first_option("It is under, not left", FOUR_A) == "under"
    assert scoring.first_option("Above, or maybe below", ("left", "right", "above", "below")) == "above"
    assert scoring.first_option("nothing useful", FOUR_A) is None


def test_relation_accuracy_groups_by_lowercased_gold():
    result = scoring.relation_accuracy(["Left", "left", "On", "Under"], [True, False, True, False])
    assert result == {"left": 0.5, "on": 1.0, "under": 0.0}


def test_mean_of_nothing_is_zero():
    assert scoring.mean([]) == 0.0
    assert scoring.mean([1.0, 0.0, 1.0, 1.0]) == 0.75


# ----------------------------------------------------------------------------------------------
# Controlled pair / set accuracy (reference Controlled_Images.evaluate_scores)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data/controlled_images/beer-bottle_on_armchair.jpeg", (("beer-bottle", "armchair"), "on")),
        ("data/controlled_images/mug_left_of_knife.jpeg", (("mug", "knife"), "left")),
        ("controlled_clevr/mug_in-front_of_knife.jpeg", (("mug", "knife"), "in-front")),
        ("mug_behind_knife.jpeg", (("mug", "knife"), "behind")),
    ],
)
def test_controlled_image_key_reads_file_names_like_the_reference(path, expected):
    assert scoring.controlled_image_key(path) == expected


def _set_a(first: str, second: str, correct: dict[str, bool], start_row: int) -> list[tuple[int, str, bool]]:
    tokens = {"left": "left_of", "right": "right_of", "on": "on", "under": "under"}
    return [
        (start_row + index, f"data/controlled_images/{first}_{tokens[relation]}_{second}.jpeg", correct[relation])
        for index, relation in enumerate(FOUR_A)
    ]


def test_pair_and_set_accuracy_hand_computed_controlled_a():
    records = (
        _set_a("mug", "table", {"left": True, "right": True, "on": True, "under": True}, 0)  # 2 pairs, 1 set
        + _set_a("cup", "chair", {"left": True, "right": True, "on": True, "under": False}, 4)  # 1 pair
        + _set_a("book", "sofa", {"left": True, "right": False, "on": True, "under": True}, 8)  # 1 pair
    )
    result = scoring.pair_set_accuracy(records, "Controlled_A")
    assert (result.n, result.pair_correct, result.set_correct) == (12, 4, 1)
    assert result.pair_accuracy == pytest.approx(4 / 6)  # N/2 = 6
    assert result.set_accuracy == pytest.approx(1 / 3)  # N/4 = 3


def test_pair_and_set_accuracy_controlled_b_uses_in_front_and_behind():
    records = [
        (0, "controlled_clevr/mug_left_of_knife.jpeg", True),
        (1, "controlled_clevr/mug_right_of_knife.jpeg", False),
        (2, "controlled_clevr/mug_in-front_of_knife.jpeg", True),
        (3, "controlled_clevr/mug_behind_knife.jpeg", True),
    ]
    result = scoring.pair_set_accuracy(records, "Controlled_B")
    assert (result.pair_correct, result.set_correct) == (1, 0)
    assert result.pair_accuracy == pytest.approx(0.5)


def test_later_doc_of_the_same_image_overwrites_and_order_comes_from_row():
    rows = _set_a("mug", "table", dict.fromkeys(FOUR_A, True), 0)
    duplicate = (9, rows[0][1], False)  # a later row with the same file, answered wrong
    in_gather_order = [duplicate, *reversed(rows)]  # as another rank might deliver them
    result = scoring.pair_set_accuracy(in_gather_order, "Controlled_A")
    assert (result.n, result.pair_correct, result.set_correct) == (5, 1, 0)
    assert result.pair_accuracy == pytest.approx(1 / 2.5)


def test_partial_sets_use_the_evaluated_count_as_denominator():
    records = [(0, "a_left_of_b.jpeg", True), (1, "a_right_of_b.jpeg", True)]
    result = scoring.pair_set_accuracy(records, "Controlled_A")
    assert result.pair_accuracy == 1.0  # 1 pair / (2 / 2)
    assert result.set_accuracy == 0.0


def test_pair_set_accuracy_is_only_for_controlled_subsets():
    with pytest.raises(ValueError, match="Controlled_A"):
        scoring.pair_set_accuracy([], "COCO_one_obj")
    assert scoring.pair_set_accuracy([], "Controlled_A").pair_accuracy == 0.0


def test_pair_and_set_through_process_results_on_a_full_synthetic_set(synthetic_mirror):
    descriptor = load_descriptors()["Controlled_A"]
    docs = load_rows(descriptor, synthetic_mirror.data_dir).rows
    assert len(docs) == 16  # four complete sets
    pairs = sorted({scoring.controlled_image_key(doc["image_path"])[0] for doc in docs})
    wrong = {(pairs[0], "under"), (pairs[1], "left"), (pairs[1], "on")}  # pair 0: 1 pair; pair 1: none
    values = []
    for doc in docs:
        key, relation = scoring.controlled_image_key(doc["image_path"])
        answer = "no idea" if (key, relation) in wrong else doc["answer"][0]
        values.append(whatsup.process_results(doc, [answer]))
    # 13 of 16 correct; pairs: 1 + 0 + 2 + 2 = 5 of N/2 = 8; sets: 2 of N/4 = 4.
    assert sum(value["accuracy"] for value in values) == 13
    assert whatsup.aggregate_pair_accuracy([value["pair_accuracy"] for value in values]) == pytest.approx(5 / 8)
    assert whatsup.aggregate_set_accuracy([value["set_accuracy"] for value in values]) == pytest.approx(2 / 4)


def test_process_results_reports_relation_and_controlled_only_metrics(synthetic_mirror):
    descriptors = load_descriptors()
    controlled = load_rows(descriptors["Controlled_B"], synthetic_mirror.data_dir).rows[0]
    coco = load_rows(descriptors["COCO_one_obj"], synthetic_mirror.data_dir).rows[0]
    controlled_values = whatsup.process_results(controlled, [controlled["answer"][0]])
    coco_values = whatsup.process_results(coco, ["nothing"])
    gold = controlled["answer"][0].lower()
    assert set(controlled_values) == {
        "accuracy",
        "strict_accuracy",
        f"accuracy_{gold}",
        "pair_accuracy",
        "set_accuracy",
    }
    assert controlled_values["pair_accuracy"]["row"] == 0 and controlled_values["pair_accuracy"]["correct"] is True
    assert set(coco_values) == {"accuracy", "strict_accuracy", f"accuracy_{coco['answer'][0].lower()}"}
    assert coco_values["accuracy"] == 0.0


# ----------------------------------------------------------------------------------------------
# VSR
# ----------------------------------------------------------------------------------------------

# (label, generation): TP, FN (case-sensitive!), FN, TN, TN ('No' inside 'Not'), FP
VSR_CASES = [(1, "Yes"), (1, "yes"), (1, "No"), (0, "No"), (0, "Not sure"), (0, "Yes")]


def test_vsr_reference_rule_is_case_sensitive_substring():
    assert [scoring.vsr_reference_correct(gen, label) for label, gen in VSR_CASES] == [
        True,
        False,
        False,
        True,
        True,
        False,
    ]


def test_vsr_confusion_and_both_f1s_hand_computed():
    confusion = scoring.vsr_confusion((label, scoring.vsr_reference_correct(gen, label)) for label, gen in VSR_CASES)
    assert (confusion.tp, confusion.fn, confusion.tn, confusion.fp) == (1, 2, 2, 1)
    assert confusion.accuracy == pytest.approx(3 / 6)
    assert confusion.f1 == pytest.approx(2 * 1 / (2 * 1 + 1 + 2))  # 0.4
    tpr, tnr = 1 / 3, 2 / 3
    assert confusion.paper_f1 == pytest.approx(2 * tpr * tnr / (tpr + tnr))  # 0.444...
    assert confusion.f1 != pytest.approx(confusion.paper_f1)


def test_vsr_zero_divisions_are_zero():
    only_negatives = scoring.vsr_confusion([(0, True), (0, True)])
    assert only_negatives.accuracy == 1.0
    assert only_negatives.f1 == 0.0  # 0 / 0
    assert only_negatives.true_positive_rate == 0.0
    assert only_negatives.paper_f1 == 0.0
    empty = scoring.vsr_confusion([])
    assert (empty.accuracy, empty.f1, empty.paper_f1) == (0.0, 0.0, 0.0)


def test_vsr_strict_rule_takes_first_yes_or_no_word_any_case():
    assert [scoring.vsr_strict_correct(gen, label) for label, gen in VSR_CASES] == [
        True,
        True,
        False,
        True,
        False,
        False,
    ]
    assert scoring.vsr_strict_correct("No, yes", 1) is False


def test_vsr_process_results_and_aggregations():
    docs = [{"row": index, "label": label, "caption": "x"} for index, (label, _gen) in enumerate(VSR_CASES)]
    values = [vsr.process_results(doc, [gen]) for doc, (_label, gen) in zip(docs, VSR_CASES, strict=True)]
    assert [value["accuracy"] for value in values] == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert vsr.aggregate_f1([value["f1"] for value in values]) == pytest.approx(0.4)
    assert vsr.aggregate_paper_f1([value["paper_f1"] for value in values]) == pytest.approx(4 / 9)
    assert vsr.doc_to_target(docs[0]) == "Yes" and vsr.doc_to_target(docs[3]) == "No"
