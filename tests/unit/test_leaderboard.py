"""The leaderboard's pieces on hand-made runs: the overall score (mean of category rates), the
paired bootstrap against values computed by hand, the refusal of runs that are not comparable,
and the four files it writes."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import pytest

from toolbench.app.leaderboard import (
    PromptSettings,
    RunResult,
    TaskOutcome,
    build_leaderboard,
    category_counts,
    check_comparable,
    load_run,
    make_leaderboard,
    overall_score,
    paired_bootstrap,
)
from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import write_json, write_jsonl
from toolbench.foundation.summaries import CostSummary

SETTINGS = PromptSettings(mode="chat", k_demos=0, retriever="-", system_prompt="default", call_format="auto")


def outcomes(spec: dict[str, list[bool]]) -> list[TaskOutcome]:
    """{category: [success per task]} → outcomes with ids `<category>-<i>`."""
    return [
        TaskOutcome(id=f"{category}-{i}", category=category, success=s)
        for category, flags in spec.items()
        for i, s in enumerate(flags)
    ]


def run(name: str, spec: dict[str, list[bool]], **changes) -> RunResult:
    fields = {"folder": f"runs/{name}", "model": f"hf:models/{name}", "settings": SETTINGS}
    fields.update(changes)
    return RunResult(outcomes=outcomes(spec), **fields)


def test_overall_score_is_the_unweighted_mean_of_category_rates():
    tasks = outcomes({"single": [True, True, False, False], "parallel": [True, True, True]})
    assert category_counts(tasks) == {"parallel": (3, 3), "single": (2, 4)}
    assert overall_score(tasks) == pytest.approx((0.5 + 1.0) / 2)  # not the pooled 5/7
    assert overall_score([]) == 0.0


def test_paired_bootstrap_agrees_with_the_normal_approximation():
    # 200 tasks: the leader alone right on 30, the other alone right on 10, the same on 160
    leader = outcomes({"single": [True] * 30 + [False] * 10 + [True] * 80 + [False] * 80})
    other = outcomes({"single": [False] * 30 + [True] * 10 + [True] * 80 + [False] * 80})
    test = paired_bootstrap(leader, other, seed=0, resamples=20_000)
    # per-task differences d in {+1 x30, -1 x10, 0 x160}: mean 0.1, sd/sqrt(n) = sqrt((0.2 - 0.01)/200)
    se = math.sqrt((40 / 200 - 0.1**2) / 200)
    assert test.shared_tasks == 200 and test.delta == pytest.approx(0.1)
    assert test.ci95[0] == pytest.approx(0.1 - 1.96 * se, abs=0.006)
    assert test.ci95[1] == pytest.approx(0.1 + 1.96 * se, abs=0.006)
    assert test.p_value < 0.01 and not test.within_noise
    assert paired_bootstrap(leader, other, seed=0, resamples=20_000) == test  # seeded: reproducible


def test_one_task_of_twenty_is_within_noise_with_the_exact_bootstrap_p_value():
    leader = outcomes({"single": [True] + [False] * 19})
    other = outcomes({"single": [False] * 20})
    test = paired_bootstrap(leader, other, seed=3)
    # a replicate's difference is <= 0 exactly when the one discordant task is not drawn
    assert test.delta == pytest.approx(0.05)
    assert test.p_value == pytest.approx(2 * (19 / 20) ** 20, abs=0.02)
    assert test.within_noise and test.ci95[0] == 0.0


def test_identical_runs_differ_by_exactly_nothing():
    tasks = outcomes({"single": [True, False] * 10, "parallel": [True] * 5})
    test = paired_bootstrap(tasks, tasks)
    assert (test.delta, test.ci95, test.p_value, test.within_noise) == (0.0, (0.0, 0.0), 1.0, True)


def test_the_difference_is_stratified_by_category_and_uses_shared_tasks_only():
    leader = outcomes({"parallel": [True] * 5 + [False] * 5, "single": [True] * 100})
    other = outcomes({"parallel": [False] * 10, "single": [True] * 100})
    test = paired_bootstrap(leader, other)
    assert test.delta == pytest.approx((0.5 + 0.0) / 2)  # not the pooled 5/110
    fewer = [o for o in other if o.id != "single-0"] + [TaskOutcome(id="x", category="single", success=True)]
    assert paired_bootstrap(leader, fewer).shared_tasks == 109
    elsewhere = paired_bootstrap(leader, [TaskOutcome(id="elsewhere", category="single", success=True)])
    assert (elsewhere.shared_tasks, elsewhere.p_value, elsewhere.within_noise) == (
        0,
        None,
        None,
    )  # untestable


def test_runs_with_other_settings_or_tasks_are_refused_in_one_line():
    base = run("a", {"single": [True, False]})
    other_k = run(
        "b",
        {"single": [True, True]},
        settings=SETTINGS.model_copy(update={"k_demos": 3, "retriever": "bm25"}),
    )
    with pytest.raises(UserError) as error:
        check_comparable([base, other_k])
    assert str(error.value) == (
        "runs/a and runs/b differ in k demos (0 vs 3), retriever (- vs bm25); "
        "pass --allow-mixed to compare them anyway"
    )
    fewer = run("c", {"single": [True]})
    with pytest.raises(UserError, match=r"^runs/a and runs/c differ in task set \(2 vs 1 tasks, 1 shared\);"):
        check_comparable([base, fewer])
    changed = run("d", {"single": [True, False]}, tasks_sha256="b" * 64)
    with pytest.raises(UserError, match="task contents"):
        check_comparable([base.model_copy(update={"tasks_sha256": "a" * 64}), changed])
    assert check_comparable([base, changed]) == []  # a run without a digest is compared by ids
    assert check_comparable([base, other_k, fewer], allow_mixed=True) == ["task set", "k_demos", "retriever"]


def test_system_prompts_are_told_apart_by_their_text():
    assert PromptSettings.from_config({"system_prompt": DEFAULT_SYSTEM_PROMPT}).system_prompt == "default"
    assert PromptSettings.from_config({"system_prompt": None}).system_prompt == "none"
    custom = PromptSettings.from_config({"system_prompt": "Be brief.", "k_demos": 0, "retriever": "dense"})
    assert custom.system_prompt.startswith("custom ") and custom.retriever == "-"  # k = 0: no retriever


def test_ranking_ties_share_a_rank_the_floor_never_leads_a_tie_and_the_leader_is_not_tested():
    board = build_leaderboard(
        [
            run("low", {"single": [True, False, False, False]}),
            run("a-random", {"single": [True, True, True, False]}),  # the untrained floor, by its name
            run("high", {"single": [True, True, True, False]}),
            run("high2", {"single": [True, True, False, True]}),
        ]
    )
    ranks = [(r.rank, r.label) for r in board.rows]
    assert ranks == [(1, "high"), (1, "high2"), (1, "a-random"), (4, "low")]
    assert board.rows[0].vs_leader is None and board.rows[1].vs_leader.delta == 0.0
    assert board.rows[3].vs_leader.delta == pytest.approx(0.5)
    with pytest.raises(UserError, match="at least two"):
        build_leaderboard([run("one", {"single": [True]})])


# ------------------------------------------------------------------- files


def write_run(
    folder: Path, model: str, spec: dict[str, list[bool]], system_prompt: str | None, cost=None
) -> Path:
    """A run folder as `toolbench eval` writes it (the parts the leaderboard reads)."""
    folder.mkdir(parents=True)
    config = {
        "model": model,
        "mode": "chat",
        "k_demos": 0,
        "retriever": "bm25",
        "system_prompt": system_prompt,
        "call_format": "auto",
    }
    record = {"command": "eval", "config": config, "started_at": "x", "counts": {"tasks_sha256": "f" * 64}}
    write_json(folder / "summary.json", {"summary": {}, "cost": cost, "run": record})
    write_jsonl(folder / "scores.jsonl", [o.model_dump() | {"tool": "weather"} for o in outcomes(spec)])
    return folder


COST = CostSummary(
    requests=20,
    cached=5,
    timed=15,
    usage_reported=20,
    prompt_tokens=4000,
    completion_tokens=300,
    latency_p50_ms=12.5,
    latency_p95_ms=250.0,
).model_dump()


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    best = {"single": [True] * 9 + [False], "parallel": [True] * 8 + [False] * 2}
    close = {"single": [True] * 8 + [False] * 2, "parallel": [True] * 8 + [False] * 2}
    floor = {"single": [False] * 10, "parallel": [False] * 9 + [True]}
    return [
        write_run(tmp_path / "close", "hf:models/close", close, DEFAULT_SYSTEM_PROMPT),
        write_run(tmp_path / "best", "openai:best", best, DEFAULT_SYSTEM_PROMPT, COST),
        write_run(tmp_path / "random", "hf:models/random", floor, DEFAULT_SYSTEM_PROMPT),
    ]


def test_the_four_outputs_hold_the_same_figures(runs, tmp_path):
    from PIL import Image

    out = tmp_path / "board"
    board = make_leaderboard(runs, out, seed=7)
    assert [row.label for row in board.rows] == ["best", "close", "random"]
    assert board.rows[0].overall == pytest.approx((0.9 + 0.8) / 2)
    assert board.rows[1].vs_leader.within_noise and not board.rows[2].vs_leader.within_noise

    md = (out / "leaderboard.md").read_text()
    assert (
        "All runs scored the same 20 tasks with: mode chat, k demos 0, retriever -, system prompt default"
        in md
    )
    rows = [line for line in md.splitlines() if re.match(r"^\| \d ", line)]
    assert rows[0].startswith("| 1 | best | 85.0 | ")
    assert (
        "| leader | 80.0 (49.0–94.3) n=10 | 90.0 (59.6–98.2) n=10 | 20 | 20 | 5 | 4,000 | 300 | 12.5 | 250 |"
        in rows[0]
    )
    assert rows[1].startswith("| 2 | close | 80.0 | ") and "| yes |" in rows[1]
    assert rows[2].startswith("| 3 | random | 5.0 | ") and "| no |" in rows[2]
    assert rows[2].endswith("| 20 | n/a | n/a | n/a | n/a | n/a | n/a |")  # no cost recorded

    table = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert [r["label"] for r in table] == ["best", "close", "random"]
    assert float(table[0]["overall"]) == pytest.approx(0.85) and table[0]["delta_to_leader"] == ""
    assert float(table[1]["delta_to_leader"]) == pytest.approx(0.05) and table[1]["within_noise"] == "True"
    assert float(table[2]["single_success"]) == 0.0 and table[2]["single_n"] == "10"
    assert table[0]["prompt_tokens"] == "4000" and table[2]["prompt_tokens"] == ""
    assert float(table[1]["p_value"]) == board.rows[1].vs_leader.p_value

    page = (out / "leaderboard.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1 and "<script" not in page and "http" not in page
    for data in (base64.b64decode(images[0]), (out / "leaderboard.png").read_bytes()):
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.format == "PNG" and image.width > 300
    assert "<td>best</td>" in page and "within noise" in page

    saved = json.loads((out / "leaderboard.json").read_text())
    assert saved["run"]["command"] == "leaderboard" and saved["run"]["seed"] == 7
    assert saved["run"]["config"]["runs"] == [str(r) for r in runs]
    assert saved["leaderboard"]["rows"][0]["cost"]["prompt_tokens"] == 4000

    again = make_leaderboard(runs, tmp_path / "again", seed=7)
    assert again == board and (tmp_path / "again" / "leaderboard.md").read_text() == md  # reproducible


def test_mixed_runs_show_what_differs_and_are_marked(runs, tmp_path):
    other = write_run(
        tmp_path / "nosys", "hf:models/close", {"single": [True] * 10, "parallel": [True] * 10}, None
    )
    with pytest.raises(UserError, match=r"differ in system prompt \(default vs none\)"):
        make_leaderboard([runs[0], other], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    board = make_leaderboard([runs[0], other], tmp_path / "mixed", allow_mixed=True)
    assert board.mixed == ["system_prompt"]
    assert [row.label for row in board.rows] == ["close · sys none", "close · sys default"]
    md = (tmp_path / "mixed" / "leaderboard.md").read_text()
    assert "**Mixed runs** (--allow-mixed): they differ in system prompt" in md
    assert (
        "| rank | model | system prompt | overall % |" in md
        and "| 1 | close · sys none | none | 100.0 |" in md
    )


def test_folders_that_are_not_eval_runs_are_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="no summary.json"):
        load_run(tmp_path)
    write_json(tmp_path / "summary.json", {"summary": {}, "run": {"command": "score", "config": {}}})
    with pytest.raises(UserError, match="written by `toolbench score`, not `toolbench eval`"):
        load_run(tmp_path)
    write_json(tmp_path / "summary.json", {"summary": {}, "run": {"command": "eval", "config": {}}})
    with pytest.raises(UserError, match="no scores.jsonl"):
        load_run(tmp_path)
    (tmp_path / "scores.jsonl").write_text('{"id": "a", "category": "single", "success": true}\n' * 2)
    with pytest.raises(UserError, match="line 2 repeats task id 'a'"):
        load_run(tmp_path)
