"""``adaptvis table``: the paper's Table 1 layout from hand-built results files, and leaderboard rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptvis_tasks.analysis import table
from model_wrappers import cli


def _results(path: Path, model_args: str, results: dict, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "results": {
            task: {"alias": task, **{f"{k},none": v for k, v in values.items()}} for task, values in results.items()
        },
        "config": {"model": "llava_adaptvis", "model_args": model_args, "batch_size": "8", "limit": None},
        "versions": {task: 1.0 for task in results},
        "task_hashes": {task: f"hash-{task}" for task in results},
        "lmms_eval_version": "main@abc",
        "git_hash": "abc",
        "date": "20260101_000000",
        **extra,
    }
    path.write_text(json.dumps(body))
    return path


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    base = _results(
        tmp_path / "base" / "m" / "20260101_000000_results.json",
        "pretrained=llava-hf/llava-1.5-7b-hf",
        {
            "whatsup_controlled_a_test": {
                "accuracy": 0.5,
                "pair_accuracy": 0.25,
                "set_accuracy": 0.125,
                "strict_accuracy": 0.4,
            },
            "whatsup_coco_one_test": {"accuracy": 0.6},
            "whatsup_synthetic_a": {"accuracy": 0.3, "pair_accuracy": 0.1},
            "vsr_zeroshot_test": {"accuracy": 0.55, "paper_f1": 0.5, "f1": 0.6},
            "pope_adv": {"pope_accuracy": 0.8},
            "whatsup_variants": {"accuracy": 0.4},  # a group's aggregate: not a column
        },
        group_subtasks={"whatsup_variants": ["whatsup_controlled_a_two_options"], "pope_adv": []},
    )
    adapt = _results(
        tmp_path / "adapt" / "m" / "20260101_000000_results.json",
        "pretrained=llava-hf/llava-1.5-7b-hf,method=adapt_vis,alpha1=0.5,alpha2=1.2,threshold=0.3,dtype=float16",
        {
            "whatsup_controlled_a_test": {"accuracy": 0.75, "pair_accuracy": 0.5, "set_accuracy": 0.25},
            "whatsup_coco_one_test": {"accuracy": 0.5},
            "vsr_zeroshot_test": {"accuracy": 0.6, "paper_f1": 0.625},
        },
        adaptvis_eval={
            "version": "0.1.0",
            "git_hash": "deadbeef",
            "lmms_eval": "0.7.3",
            "transformers": "5.23.0",
            "torch": "2.14.1",
        },
    )
    return base, adapt


def test_columns_follow_table_1_then_other_whatsup_subsets_then_vsr(tmp_path):
    base, adapt = _two_runs(tmp_path)
    built = table.build_table([table.load_run(base), table.load_run(adapt)], None, "0")
    assert [(c["label"], c["headers"]) for c in built["columns"]] == [
        ("Controlled_A (test)", ["Acc", "P-Acc", "S-Acc"]),
        ("COCO_one (test)", ["Acc"]),
        ("synthetic_a", ["Acc", "P-Acc"]),
        ("VSR (test)", ["Acc", "F1"]),
    ]
    names = [row["name"] for row in built["rows"]]
    assert names == ["llava-1.5-7b-hf baseline", "llava-1.5-7b-hf adapt_vis(alpha1=0.5,alpha2=1.2,threshold=0.3)"]
    adapt_row = built["rows"][1]
    assert adapt_row["cells"]["Controlled_A (test)|accuracy"] == 75.0
    assert adapt_row["deltas"]["Controlled_A (test)|accuracy"] == 25.0
    assert adapt_row["deltas"]["COCO_one (test)|accuracy"] == -10.0
    assert adapt_row["cells"]["VSR (test)|paper_f1"] == 62.5  # the paper's F1, not the positive-class F1
    assert adapt_row["cells"]["synthetic_a|accuracy"] is None


def test_markdown_csv_and_latex_outputs(tmp_path, capsys):
    base, adapt = _two_runs(tmp_path)
    assert cli.main(["table", str(base), str(adapt), "--names", "LLaVA-1.5,+AdaptVis", "--baseline", "LLaVA-1.5"]) == 0
    markdown = capsys.readouterr().out
    assert "| Method | Controlled_A (test) Acc | Controlled_A (test) P-Acc |" in markdown
    adapt_row = "| +AdaptVis | 75.00 (+25.00) | 50.00 (+25.00) | 25.00 (+12.50) | 50.00 (-10.00) | – | – |"
    assert adapt_row + " 60.00 (+5.00) | 62.50 (+12.50) |" in markdown
    assert "| LLaVA-1.5 | 50.00 | 25.00 | 12.50 | 60.00 | 30.00 | 10.00 | 55.00 | 50.00 |" in markdown
    assert cli.main(["table", str(base), str(adapt), "--format", "csv", "--baseline", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,Controlled_A (test) Acc,Controlled_A (test) Acc delta,")
    assert [float(v) for v in lines[2].split(",")[-4:]] == pytest.approx([60.0, 5.0, 62.5, 12.5])
    assert cli.main(["table", str(base), str(adapt), "--format", "latex", "--names", "Base,Adapt"]) == 0
    latex = capsys.readouterr().out
    assert "\\multicolumn{3}{c}{Controlled\\_A (test)}" in latex
    assert "Adapt & 75.00 & 50.00 & 25.00 & 50.00 & -- & -- & 60.00 & 62.50 \\\\" in latex


def test_leaderboard_rows_carry_full_provenance(tmp_path, capsys):
    base, adapt = _two_runs(tmp_path)
    assert cli.main(["table", str(base), str(adapt), "--leaderboard"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert second["intervention"] == {"method": "adapt_vis", "alpha1": "0.5", "alpha2": "1.2", "threshold": "0.3"}
    assert second["pretrained"] == "llava-hf/llava-1.5-7b-hf" and second["dtype"] == "float16"
    assert second["batch_size"] == "8" and second["task_hashes"]["vsr_zeroshot_test"] == "hash-vsr_zeroshot_test"
    assert (second["adaptvis_eval_version"], second["adaptvis_eval_git_hash"]) == ("0.1.0", "deadbeef")
    assert (second["transformers_version"], second["torch_version"], second["lmms_eval_version"]) == (
        "5.23.0",
        "2.14.1",
        "0.7.3",
    )
    assert second["metrics"]["whatsup_controlled_a_test"]["accuracy"] == 0.75
    assert first["intervention"] == {"method": "baseline"} and first["adaptvis_eval_git_hash"] is None


def test_results_json_written_by_lmms_eval_gets_the_suites_provenance(tmp_path):
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

    from model_wrappers.lmms_plugin.provenance import install_results_provenance, provenance

    assert install_results_provenance() and install_results_provenance()  # idempotent
    tracker = EvaluationTracker(output_path=str(tmp_path))
    tracker.general_config_tracker.log_experiment_args(
        model_source="llava_adaptvis",
        model_args="pretrained=org/tiny",
        system_instruction=None,
        chat_template=None,
        fewshot_as_multiturn=False,
    )
    tracker.save_results_aggregated(results={"results": {}}, samples=None, datetime_str="20260101_000000")
    [written] = tmp_path.rglob("*_results.json")
    recorded = json.loads(written.read_text())["adaptvis_eval"]
    assert recorded == provenance()
    assert recorded["transformers"] and recorded["torch"] and recorded["lmms_eval"]


def test_bad_input_names_the_problem(tmp_path, capsys):
    base, adapt = _two_runs(tmp_path)
    assert cli.main(["table", str(base), str(adapt), "--names", "only-one"]) == 2
    assert "--names gives 1 names for 2 runs" in capsys.readouterr().err
    assert cli.main(["table", str(base), "--baseline", "nope"]) == 2
    assert "--baseline 'nope'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert cli.main(["table", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not JSON" in capsys.readouterr().err
    pope_only = _results(tmp_path / "p" / "r_results.json", "pretrained=x", {"pope_adv": {"pope_accuracy": 0.8}})
    assert cli.main(["table", str(pope_only)]) == 2
    assert "none of the runs has a WhatsUp or VSR task" in capsys.readouterr().err


def test_runs_with_the_same_name_form_one_row_and_overlaps_are_refused(tmp_path):
    """A method tuned per subset runs once per subset; the table shows it as one method row."""
    base = _results(
        tmp_path / "base" / "r_results.json",
        "pretrained=m",
        {"whatsup_synthetic_a_test": {"accuracy": 0.5}, "whatsup_synthetic_b_test": {"accuracy": 0.6}},
    )
    adapt_a = _results(
        tmp_path / "a" / "r_results.json",
        "pretrained=m,method=adapt_vis",
        {"whatsup_synthetic_a_test": {"accuracy": 0.75}},
    )
    adapt_b = _results(
        tmp_path / "b" / "r_results.json",
        "pretrained=m,method=adapt_vis",
        {"whatsup_synthetic_b_test": {"accuracy": 0.5}},
    )
    runs = [table.load_run(p) for p in (base, adapt_a, adapt_b)]
    built = table.build_table(runs, ["Baseline", "AdaptVis", "AdaptVis"], "Baseline")
    assert [row["name"] for row in built["rows"]] == ["Baseline", "AdaptVis"]
    merged = built["rows"][1]
    assert merged["cells"] == {"synthetic_a (test)|accuracy": 75.0, "synthetic_b (test)|accuracy": 50.0}
    assert merged["deltas"]["synthetic_a (test)|accuracy"] == pytest.approx(25.0)
    assert merged["deltas"]["synthetic_b (test)|accuracy"] == pytest.approx(-10.0)
    with pytest.raises(table.AnalysisError, match="share the row name 'Baseline'"):
        table.build_table(runs, ["Baseline", "Baseline", "AdaptVis"], None)


def test_pai_and_vaf_rows_are_labelled_with_their_coefficients(tmp_path, capsys):
    scores = {"whatsup_controlled_a": {"accuracy": 0.5, "pair_accuracy": 0.25, "set_accuracy": 0.125}}
    runs = [
        _results(tmp_path / name / "r_results.json", f"pretrained=org/tiny,{args}", scores)
        for name, args in (
            ("pai", "method=pai,pai_alpha=0.5,pai_start_layer=1"),
            ("vaf", "method=vaf,vaf_layers=9-14,device=cpu"),
        )
    ]
    assert cli.main(["table", *map(str, runs)]) == 0
    markdown = capsys.readouterr().out
    assert "| tiny pai(pai_alpha=0.5,pai_start_layer=1) | 50.00 |" in markdown
    assert "| tiny vaf(vaf_layers=9-14) | 50.00 |" in markdown
