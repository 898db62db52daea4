"""``adaptvis curves``: accuracy per gold relation against alpha from a sweep trace (Figure 8)."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from model_wrappers import cli
from tests.model.test_tune import _answers, _doc, _record, _write


def test_accuracy_per_relation_and_alpha_by_hand(tmp_path, capsys):
    trace = _write(
        tmp_path / "sweep.jsonl",
        [
            _record(0, 0.2, _answers("Left", "Left", "Right", "Right", "Right", "Right"), _doc(0, "Left")),
            _record(1, 0.4, _answers("Left", "Right", "Right", "Left", "Left", "Left"), _doc(1, "Left")),
            _record(2, 0.9, _answers("Top", "Top", "Top", "Bottom", "Bottom", "Top"), _doc(2, "Top")),
        ],
    )
    out = tmp_path / "figs"
    assert cli.main(["curves", str(trace), "--output-dir", str(out), "--format", "csv"]) == 0
    rows = list(csv.DictReader((out / "curves.csv").open()))
    table = {(r["relation"], float(r["alpha"])): (float(r["accuracy"]), float(r["mean_confidence"])) for r in rows}
    # gold left: doc 0 right only at alpha 0.5/0.8, doc 1 right at 0.5 and >= 1.2
    assert [table[("left", a)][0] for a in (0.5, 0.8, 1.0, 1.2, 1.5, 2.0)] == [1.0, 0.5, 0.0, 0.5, 0.5, 0.5]
    assert [table[("top", a)][0] for a in (0.5, 0.8, 1.0, 1.2, 1.5, 2.0)] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert table[("left", 1.0)][1] == (0.2 + 0.4) / 2 and table[("all", 0.5)] == (1.0, (0.2 + 0.4 + 0.9) / 3)
    assert capsys.readouterr().out == (out / "curves.csv").read_text()
    with Image.open(out / "curves.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100


def test_a_trace_without_sweep_records_is_refused(tmp_path, capsys):
    trace = _write(tmp_path / "b.jsonl", [_record(0, 0.2, _answers(*"LLLLLL"), _doc(0, "Left"), method="adapt_vis")])
    assert cli.main(["curves", str(trace), "--output-dir", str(tmp_path)]) == 2
    assert "no method=sweep records" in capsys.readouterr().err


def test_confidence_per_alpha_comes_from_the_trace_when_recorded(tmp_path):
    """Sweep traces record C under every alpha; the curve's confidence at alpha is their mean per relation."""
    records = [
        _record(0, 0.2, _answers("Left", "Left", "Left", "Left", "Left", "Left"), _doc(0, "Left")),
        _record(1, 0.4, _answers("Left", "Left", "Left", "Left", "Left", "Left"), _doc(1, "Left")),
    ]
    per_alpha = [
        {"1.0": 0.2, "0.5": 0.1, "0.8": 0.15, "1.2": 0.3, "1.5": 0.35, "2.0": 0.5},
        {"1.0": 0.4, "0.5": 0.3, "0.8": 0.35, "1.2": 0.5, "1.5": 0.55, "2.0": 0.7},
    ]
    for record, confidences in zip(records, per_alpha, strict=True):
        record["confidences"] = confidences
    trace = _write(tmp_path / "sweep.jsonl", records)
    assert cli.main(["curves", str(trace), "--output-dir", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    left = {float(r["alpha"]): float(r["mean_confidence"]) for r in rows if r["relation"] == "left"}
    assert left == pytest.approx({0.5: 0.2, 0.8: 0.25, 1.0: 0.3, 1.2: 0.4, 1.5: 0.45, 2.0: 0.6})
