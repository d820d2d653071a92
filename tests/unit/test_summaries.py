"""The typed run summaries (`toolbench.foundation.summaries`) through their one writer and reader
(`toolbench.foundation.run_folder`): each kind round-trips, keeps the keys its files have always had, reads
files written before keys were added, and renders the exact Markdown its summary.md holds."""

from __future__ import annotations

import json

import pytest

from toolbench.distill.draft.grid import grid_markdown
from toolbench.distill.speculative.spec_eval import markdown_report
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import RunRecord
from toolbench.foundation.run_folder import read_run_file, write_run_folder
from toolbench.foundation.summaries import (
    Aggregate,
    CellSummary,
    CostSummary,
    DemoStep,
    DemoSummary,
    EvalRun,
    EvalSummary,
    GridSummary,
    MacroFigures,
    SpecRun,
    SpecSummary,
)
from toolbench.pipelines.results import run_markdown

RECORD = RunRecord(
    command="eval", config={"model": "replay:x.jsonl"}, seed=0, started_at="2026-01-01T00:00:00+00:00"
)
RATES = {
    "success": 0.5,
    "state_f1": 0.75,
    "ast_match": 0.5,
    "parse_error_rate": 0.25,
    "no_call_rate": 0.25,
    "tool_error_rate": 0.0,
    "crash_rate": 0.0,
    "executability": 0.75,
    "lcs": 0.5,
}
CELL = CellSummary(n=4, success=0.5, ci95=(0.15, 0.85), diagnoses={"parse_error": 1, "no_call": 1})
SUMMARY = EvalSummary(
    per_tool={"weather": Aggregate(n=4, error_types={"parse:syntax": 1}, **RATES)},
    macro=MacroFigures(**RATES),
    micro=Aggregate(n=4, error_types={"parse:syntax": 1}, **RATES),
    per_category={"single": CELL},
    cells={"weather/single": CELL},
)
COST = CostSummary(
    requests=4,
    cached=1,
    timed=3,
    usage_reported=3,
    prompt_tokens=1200,
    completion_tokens=40,
    latency_p50_ms=12.5,
    latency_p95_ms=250.0,
)
EVAL_MD = """\
| tool | n | success % | state F1 % | AST match % | parse err % | no call % | tool err % | crash % |
|---|---|---|---|---|---|---|---|---|
| weather | 4 | 50.0 | 75.0 | 50.0 | 25.0 | 25.0 | 0.0 | 0.0 |
| macro | 4 | 50.0 | 75.0 | 50.0 | 25.0 | 25.0 | 0.0 | 0.0 |

| tool / category | n | success % | 95% CI (Wilson) | failures |
|---|---|---|---|---|
| all / single | 4 | 50.0 | 15.0–85.0 | no_call 1, parse_error 1 |
| weather/single | 4 | 50.0 | 15.0–85.0 | no_call 1, parse_error 1 |
"""
COST_MD = """\
| requests | cached | prompt tokens | completion tokens | latency p50 ms | latency p95 ms |
|---:|---:|---:|---:|---:|---:|
| 4 | 1 | 1,200 (3 of 4 reported) | 40 (3 of 4 reported) | 12.5 | 250 |

Cost: 4 backend requests (1 served from the answer cache). Tokens as the backend reported them \
(cached answers included); latency per request over the 3 requests asked in this run (cached ones \
are not timed).
"""


def _json(path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------ eval and score


def test_an_eval_run_round_trips_through_its_folder(tmp_path):
    run = EvalRun(summary=SUMMARY, cost=COST, run=RECORD)
    path = write_run_folder(tmp_path, run, run_markdown(run))
    assert path == tmp_path / "summary.json" and read_run_file(path, EvalRun) == run
    assert list(_json(path)) == ["summary", "cost", "run"]
    assert list(_json(path)["summary"]) == ["per_tool", "macro", "micro", "per_category", "cells"]
    assert _json(path)["summary"]["cells"]["weather/single"]["ci95"] == [0.15, 0.85]
    assert (tmp_path / "summary.md").read_text() == EVAL_MD + "\n" + COST_MD


def test_a_score_run_has_no_cost_key_and_no_cost_table(tmp_path):
    run = EvalRun(summary=SUMMARY, run=RECORD.model_copy(update={"command": "score"}))
    path = write_run_folder(tmp_path, run, run_markdown(run))
    assert list(_json(path)) == ["summary", "run"] and read_run_file(path, EvalRun).cost is None
    assert (tmp_path / "summary.md").read_text() == EVAL_MD


def test_a_summary_from_the_first_version_still_loads_and_renders(tmp_path):
    """No executability, LCS, no-call rate, categories or cost yet: the figures it lacks read as not
    measured ("-"), not as 0."""
    old = {"n": 2, "success": 0.5, "state_f1": 0.5, "ast_match": 0.5}
    old |= {"parse_error_rate": 0.0, "tool_error_rate": 0.5, "crash_rate": 0.0}
    macro = {k: v for k, v in old.items() if k != "n"}
    summary = {
        "per_tool": {"weather": {**old, "error_types": {"weather:zip": 1}}},
        "macro": macro,
        "micro": old,
    }
    (tmp_path / "summary.json").write_text(json.dumps({"summary": summary, "run": RECORD.model_dump()}))
    run = read_run_file(tmp_path / "summary.json", EvalRun)
    assert run.cost is None and run.summary.per_category == {} and run.summary.micro.error_types == {}
    assert run.summary.per_tool["weather"].executability is None
    assert run_markdown(run).splitlines()[2:] == [
        "| weather | 2 | 50.0 | 50.0 | 50.0 | 0.0 | - | 50.0 | 0.0 |",
        "| macro | 2 | 50.0 | 50.0 | 50.0 | 0.0 | - | 50.0 | 0.0 |",
    ]


def test_episode_rewards_add_a_column():
    summary = SUMMARY.model_copy(update={"macro": MacroFigures(**RATES, reward=0.9)})
    assert (
        run_markdown(EvalRun(summary=summary, run=RECORD)).splitlines()[0].endswith("| crash % | reward % |")
    )


# ------------------------------------------------------------------ spec


def _figures(**extra) -> dict:
    by_class = {"json_syntax": {"accepted": 6, "rejected": 2, "alpha": 0.75, "drafted": 9, "wasted": 3}}
    return {
        "prompts": 2,
        "tokens": 20,
        "gamma": 3,
        "rounds": 8,
        "drafted": 24,
        "accepted": 12,
        "rejected": 6,
        "alpha": 2 / 3,
        "draft_acceptance_rate": 0.5,
        "mean_accepted_length": 2.5,
        "expected_tau": 2.2,
        "analytic_alpha": None,
        "target_tokens_per_s": 100.0,
        "spec_tokens_per_s": 150.0,
        "target_calls_per_token": 0.4,
        "wasted_draft_tokens_per_call": 1.5,
        "speedup": 1.5,
        "spec_equal_target": "2/2",
        **extra,
        "by_class": by_class,
    }


def _spec(**extra) -> SpecSummary:
    return SpecSummary.model_validate(
        {
            "overall": _figures(**extra),
            "per_tool": {"weather": _figures(**extra)},
            "by_position": [{"position": 1, "drafted": 8, "accepted": 6, "rate": 0.75}],
            "config": {
                "policy": "confidence",
                "gamma": 3,
                "threshold": 0.5,
                "temperature": 0.0,
                "device": "cpu",
                "assisted": bool(extra),
            },
        }
    )


def test_a_spec_run_round_trips_and_writes_assisted_figures_only_when_it_ran(tmp_path):
    run = SpecRun(summary=_spec(), run=RECORD.model_copy(update={"command": "spec"}))
    path = write_run_folder(tmp_path / "a", run, markdown_report(run.summary))
    assert read_run_file(path, SpecRun) == run
    overall = _json(path)["summary"]["overall"]
    assert "assisted_tokens_per_s" not in overall and overall["analytic_alpha"] is None
    assert overall["by_class"]["json_syntax"]["policy_stops"] == 0  # written, where it defaults
    assisted = _spec(assisted_tokens_per_s=120.0, spec_vs_assisted=1.25, assisted_equal_target="2/2")
    path = write_run_folder(tmp_path / "b", SpecRun(summary=assisted, run=run.run), markdown_report(assisted))
    assert list(_json(path)["summary"]["overall"])[-4:] == [
        "assisted_tokens_per_s",
        "spec_vs_assisted",
        "assisted_equal_target",
        "by_class",
    ]
    assert (
        (tmp_path / "b" / "summary.md")
        .read_text()
        .endswith(
            "\n\nHF assisted generation (greedy, γ = 3): 120.0 tok/s; ours 150.0 tok/s (1.25×); "
            "outputs equal to target greedy: 2/2.\n"
        )
    )


def test_spec_markdown_is_exact():
    row = "| 2 | 20 | 0.667 | 0.500 | 2.50 | 2.20 | - | 1.50 | 0.400 | 100.0 | 150.0 | 1.50× | 2/2 |"
    assert markdown_report(_spec()).splitlines() == [
        "Draft policy: confidence, γ (budget) = 3, threshold = 0.5",
        "",
        "| tool | prompts | tokens | α = A/(A+R) | A/D | τ = 1+A/S | τ from α | analytic α | wasted (D−A)/S "
        "| calls S/tokens | target tok/s | spec tok/s | speedup | greedy equal |",
        "|---|" + "---:|" * 13,
        "| weather " + row,
        "| **all** " + row,
        "",
        "S rounds (target calls), D drafted tokens (γ·S at fixed γ: A/D is vLLM's draft acceptance rate), "
        "A accepted, R rounds ended by a rejection; τ from α = (1 − α^(γ+1)) / (1 − α); analytic α = mean "
        "Σ_v min(p, q) on the target's own outputs; wasted = drafted tokens not accepted per target call; "
        "calls = target calls per generated token.",
        "",
        "| token class | accepted | rejected | α | drafted | wasted | policy stops |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| json_syntax | 6 | 2 | 0.750 | 9 | 3 | 0 |",
        "",
        "| draft position | drafted | accepted | rate |",
        "|---:|---:|---:|---:|",
        "| 1 | 8 | 6 | 0.750 |",
    ]


# ------------------------------------------------------------------ grid and demo

GRID = {
    "rows": [
        {
            "name": "offline-fkl",
            "question": "baseline",
            "setting": "offline white fkl",
            "steps": 40,
            "train_seconds": 12.3,
            "cache_seconds": None,
            "prompts": {"II": 24},
            "wall_seconds": 20.1,
            "alpha": 0.512,
            "per_tool": {"weather": 0.5},
        }
    ],
    "generic_alpha": 0.301,
    "comparisons": [
        {
            "question": "white vs black box",
            "better": "offline-fkl",
            "worse": "black",
            "paper": "2–10%",
            "low": 2.0,
            "high": 10.0,
            "measured_percent": -5.1,
            "verdict": "opposite sign",
        },
        {
            "question": "synthetic vs real queries",
            "better": "synthetic-III",
            "worse": "real-I",
            "paper": "80–93%",
            "ratio": True,
            "measured_percent": 85.0,
            "verdict": "within the paper's range",
        },
    ],
    "best_divergence": "offline-fkl",
    "heldout": {"prompts": 5, "answer_tokens": 1234},
    "run": RECORD.model_copy(update={"command": "distill-grid"}).model_dump(),
}


def test_the_grid_keeps_its_file_names_and_exact_markdown(tmp_path):
    grid = GridSummary.model_validate(GRID)
    path = write_run_folder(tmp_path, grid, grid_markdown(grid), name="grid")
    first, second = GRID["comparisons"]
    defaults = [{**first, "ratio": False}, {**second, "low": None, "high": None}]  # a Claim's defaults
    assert path == tmp_path / "grid.json" and _json(path) == {**GRID, "comparisons": defaults}
    assert read_run_file(path, GridSummary) == grid
    assert (tmp_path / "grid.md").read_text() == (
        "Analytic α on 5 held-out prompts (1,234 target-answer tokens); generic draft α = 0.301.\n\n"
        "| setting | question | steps | train s | α |\n"
        "|---|---|---:|---:|---:|\n"
        "| offline white fkl | baseline | 40 | 12 | 0.512 |\n\n"
        "| comparison | measured | paper | verdict |\n"
        "|---|---:|---|---|\n"
        "| white vs black box (offline-fkl vs black) | -5.1% | 2–10% | opposite sign |\n"
        "| synthetic vs real queries (synthetic-III vs real-I) | 85.0% | 80–93% | within the paper's range |\n\n"
        "Best divergence here: offline-fkl (DistillSpec: the best choice depends on the task and the "
        "decoding strategy).\n"
    )


def test_the_demo_log_leaves_out_what_it_does_not_know_yet(tmp_path):
    log = DemoSummary(preset={"name": "smoke"}, steps=[DemoStep(name="generate", seconds=1.5)])
    with pytest.raises(TypeError, match="DemoSummary has no run record"):
        write_run_folder(tmp_path, log, name="demo")
    log.run = RECORD.model_copy(update={"command": "demo"})
    path = write_run_folder(tmp_path, log, name="demo")
    assert list(_json(path)) == ["preset", "steps", "run"] and not (tmp_path / "demo.md").exists()
    log.total_seconds, log.last_run_seconds = 1.5, 2.0
    write_run_folder(tmp_path, log, name="demo")
    assert list(_json(path)) == ["preset", "steps", "total_seconds", "last_run_seconds", "run"]
    assert read_run_file(path, DemoSummary) == log
    before_records = {"preset": {"name": "quick"}, "steps": [{"name": "x", "seconds": None, "skipped": True}]}
    (tmp_path / "old.json").write_text(json.dumps(before_records))
    assert read_run_file(tmp_path / "old.json", DemoSummary).run is None


# ------------------------------------------------------------------ the writer and the reader


def test_the_json_is_written_only_after_the_markdown(tmp_path):
    """summary.json marks a run as done (the demo skips a step that has one): a run whose Markdown
    could not be written leaves no JSON behind, and no half-written Markdown either."""
    with pytest.raises(TypeError):
        write_run_folder(tmp_path, EvalRun(summary=SUMMARY, run=RECORD), markdown=b"not text")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_unreadable_run_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="summary.json: no such file"):
        read_run_file(tmp_path / "summary.json", EvalRun)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match="summary.json: not valid JSON"):
        read_run_file(tmp_path / "summary.json", EvalRun)
    (tmp_path / "summary.json").write_text(json.dumps({"summary": {}, "run": RECORD.model_dump()}))
    with pytest.raises(
        UserError,
        match=r"not a run file this version reads \(EvalRun\): field 'summary.per_tool': Field required",
    ):
        read_run_file(tmp_path / "summary.json", EvalRun)
