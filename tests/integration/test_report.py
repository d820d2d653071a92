"""`toolbench report` on a small but real run folder: eval summaries from `run_eval` (replay
backend, two settings and an untrained floor), a before/after pair from `run_spec` on the tiny
models, and two training stages from the real Trainer. The HTML must carry every plot inside
itself as a PNG that decodes, and the tables must hold the numbers that went in.

No headless browser is installed here (no chromium, no playwright), so decoding every inlined
image is the check that the plots render."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration

TOOLS = ["cat_api", "weather"]
WEATHER_RIGHT = 3  # of the first 10 weather tasks, the target's replay gets these right


def _replays(folder: Path) -> tuple[Path, Path]:
    """Target: gold for cat_api, gold for 3 of 10 weather tasks (30%), no answer otherwise.
    Floor: the corrupted replay (intact, wrong value, missing call, broken syntax, in turn)."""
    from toolbench.core.registry import get_tool
    from toolbench.core.replay import corrupt_predictions, gold_predictions
    from toolbench.core.task_files import load_tasks
    from toolbench.foundation.io import write_jsonl
    from toolbench.foundation.records import Prediction

    tasks = {t: [n.task for n in load_tasks(get_tool(t).tasks_file())[:10]] for t in TOOLS}
    target = gold_predictions(tasks["cat_api"]) + gold_predictions(tasks["weather"][:WEATHER_RIGHT])
    target += [Prediction(id=task.id, text="") for task in tasks["weather"][WEATHER_RIGHT:]]
    write_jsonl(folder / "target.jsonl", target)
    write_jsonl(folder / "random.jsonl", corrupt_predictions(tasks["cat_api"] + tasks["weather"]))
    write_jsonl(folder / "tasks.jsonl", tasks["cat_api"] + tasks["weather"])
    write_jsonl(folder / "gold.jsonl", gold_predictions(tasks["cat_api"] + tasks["weather"]))
    return folder / "target.jsonl", folder / "random.jsonl"


def _train(model_dir: Path, out: Path, name: str, seed: int) -> None:
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolbench.distill.training.trainer import TrainConfig, Trainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rng = random.Random(seed)
    examples = []
    for _ in range(8):
        ids = [rng.randrange(10, len(tokenizer)) for _ in range(24)]
        examples.append({"input_ids": ids, "labels": ids})
    config = TrainConfig(
        max_steps=5, batch_size=4, learning_rate=5e-3, warmup_steps=1, log_every=1, dtype="float32"
    )
    Trainer(
        model, tokenizer, examples, config, out, name=name, record={"stage": name}, progress=False
    ).train()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_model_dir, tiny_draft_dir) -> dict:
    from PIL import Image

    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.distill.speculative.spec_eval import SpecConfig, run_spec
    from toolbench.pipelines.evaluate import EvalConfig, run_eval, setting_name
    from toolbench.pipelines.results import score_files

    tmp = tmp_path_factory.mktemp("report")
    run = tmp / "run"
    target, floor = _replays(tmp)
    summaries = {}
    for model, prompts in ((target, (DEFAULT_SYSTEM_PROMPT, None)), (floor, (DEFAULT_SYSTEM_PROMPT,))):
        for prompt in prompts:
            config = EvalConfig(
                model=f"replay:{model}",
                tools=TOOLS,
                k_demos=0,
                system_prompt=prompt,
                limit=10,
                use_cache=False,
                cache_dir=str(tmp / "cache"),
            )
            out = run / "eval" / model.stem / setting_name(config)
            summaries[(model.stem, prompt is not None)] = run_eval(config, out).summary
    score_files(
        tmp / "tasks.jsonl", tmp / "gold.jsonl", "python", run / "replay" / "gold"
    )  # the scorer check
    from toolbench.app.leaderboard import make_leaderboard

    sys_on = setting_name(EvalConfig(model="x:y", k_demos=0, system_prompt=DEFAULT_SYSTEM_PROMPT))
    make_leaderboard([run / "eval" / m / sys_on for m in ("target", "random")], run / "leaderboard")
    spec = {}
    spec_target = tmp / "target"  # named like the eval runs' model, so the report pairs α with its success
    spec_target.symlink_to(tiny_model_dir, target_is_directory=True)
    for name, draft in (
        ("before", tiny_draft_dir),
        ("after", tiny_model_dir),
    ):  # after: the target drafts itself
        config = SpecConfig(
            target=str(spec_target),
            draft=str(draft),
            tools=["tabletop", "virtual_home"],
            limit=1,
            max_tokens=10,
            gamma=3,
            threads=1,
            assisted=False,
            cache_dir=str(tmp / "cache"),
        )
        spec[name] = run_spec(config, run / "spec" / name)
    _train(tiny_model_dir, run / "models" / "target" / "pretrain", "pretrain", seed=0)
    _train(tiny_model_dir, run / "models" / "target", "sft", seed=1)
    grid = run / "grid"
    grid.mkdir()
    rows = [
        {"name": "offline-fkl", "setting": "offline white fkl", "steps": 40, "alpha": 0.512, "per_tool": {}},
        {"name": "rkl", "setting": "offline white rkl", "steps": 40, "alpha": 0.487, "per_tool": {}},
    ]
    (grid / "grid.json").write_text(json.dumps({"rows": rows, "generic_alpha": 0.301, "comparisons": []}))
    Image.new("RGB", (40, 20), "#4c72b0").save(grid / "grid.png")
    demo = {
        "preset": {"name": "quick"},
        "steps": [
            {"name": "generate 10,000 samples", "seconds": 12.5, "skipped": False},
            {"name": "train the tokenizer", "seconds": None, "skipped": True},
        ],
        "total_seconds": 130.0,
    }
    (run / "demo.json").write_text(json.dumps(demo))
    return {"run": run, "eval": summaries, "spec": spec}


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_html_is_self_contained_and_every_plot_decodes(run_folder):
    from PIL import Image

    from toolbench.app.report import build_report

    md, html = build_report(run_folder["run"])
    assert md == run_folder["run"] / "report.md" and html == run_folder["run"] / "report.html"
    page = _Images()
    page.feed(html.read_text())
    # success per tool, leaderboard, α by tool, α by token class, acceptance by position, loss curves, grid
    assert len(page.sources) == 7
    for src in page.sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        image.load()  # decodes every pixel, not just the header
        assert image.format == "PNG" and image.width > 0 and image.height > 0
    assert not page.tags & {"script", "link", "iframe", "object"}
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html.read_text())
    linked = re.findall(r"!\[[^\]]*\]\((report/[^)]+\.png)\)", md.read_text())
    assert len(linked) == 7 and all((run_folder["run"] / path).is_file() for path in linked)
    assert {p.name for p in (run_folder["run"] / "report").iterdir()} == {Path(p).name for p in linked}


def test_tables_hold_the_numbers_that_went_in(run_folder):
    from toolbench.app.report import build_report

    md, html = build_report(run_folder["run"])
    text = md.read_text()
    sys_on = run_folder["eval"][("target", True)]
    assert sys_on.per_tool["cat_api"].success == 1.0
    assert sys_on.per_tool["weather"].success == WEATHER_RIGHT / 10
    assert "| target · k=0, sys on | 100.0 | 30.0 | 65.0 |" in text
    assert "| target · k=0, sys off | 100.0 | 30.0 | 65.0 |" in text
    floor = run_folder["eval"][("random", True)]
    floor_row = f"| random · k=0, sys on | {100 * floor.per_tool['cat_api'].success:.1f} |"
    assert floor_row in text and 0 < floor.macro.success < 1
    assert f"65.0% vs {100 * floor.macro.success:.1f}% for the floor (random · k=0, sys on)" in text
    before, after = (run_folder["spec"][k].overall for k in ("before", "after"))
    assert after.alpha == 1.0  # the target as its own draft accepts everything
    assert f"| {before.alpha:.3f} → 1.000 |" in text
    assert f"| {before.speedup:.2f}× → {after.speedup:.2f}× |" in text
    assert "| after | 2 | 20 | 3 | 1.000 | 1.000 | 4.00 |" in text
    # the spec runs' target beside α: its success per setting (no in-distribution run here)
    assert "| target | setting | held out: success % | in distribution: success % |" in text
    assert "| target | k=0, sys off | 65.0 | - |" in text and "| target | k=0, sys on | 65.0 | - |" in text
    for stage in ("target (sft)", "target/pretrain (pretrain)"):
        assert f"| {stage} | 5 |" in text
    assert "| offline-fkl | offline white fkl | 40 | 0.512 |" in text  # the grid's rows, generically
    assert "| generate 10,000 samples | 12.5 s | ran |" in text
    assert "Slowest steps: generate 10,000 samples (12.5 s, 100%)." in text  # skipped steps have no time
    assert "| gold | 20 | 100.0 | 0.0 |" in text  # gold labels replayed through the scorer
    # per category (3 of the 10 weather tasks right: w0 parallel, w1 and w2 multi_call), Wilson intervals
    assert "| category | target · k=0, sys off | target · k=0, sys on | random · k=0, sys on |" in text
    assert "| multi_call | 87.5 (52.9–97.8) n=8 | 87.5 (52.9–97.8) n=8 | " in text
    assert "| single | 50.0 (18.8–81.2) n=6 | 50.0 (18.8–81.2) n=6 | " in text
    # the leaderboard of target vs floor: overall = mean of the category rates (50, 87.5, 50)
    assert "`leaderboard/leaderboard.md`. All runs scored the same 20 tasks" in text
    assert "| 1 | target | 62.5 | " in text and "| 2 | random | " in text
    # 3 eval + 1 score + 1 leaderboard + 2 spec + 2 training records, each collapsible, with its raw JSON
    assert text.count("<details>") == 9 and html.read_text().count("<details>") == 9
    assert "<h4>raw record</h4><pre>{" in html.read_text()


def test_sections_without_inputs_say_so(tmp_path):
    from toolbench.app.report import build_report

    (tmp_path / "demo.json").write_text(json.dumps({"preset": "quick", "steps": [], "total_seconds": 5.0}))
    md, html = build_report(tmp_path)
    text = md.read_text()
    assert "No eval results" in text and "No speculative-decoding results" in text
    assert "No training logs" in text and "demo compute time, all steps (preset quick) | 5.0 s" in text
    assert "<img" not in html.read_text()


def test_cli_prints_both_paths_and_refuses_an_empty_folder_in_one_line(tmp_path):
    (tmp_path / "models" / "target").mkdir(parents=True)
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no results found (expected eval/, spec/, models/*/train_log.jsonl, "
        "alpha.json, grid.json or demo.json)"
    ]
    (tmp_path / "demo.json").write_text(json.dumps({"steps": [], "total_seconds": 1.0}))
    result = run_cli("report", str(tmp_path), check=True)
    assert str(tmp_path / "report.md") in result.stdout and str(tmp_path / "report.html") in result.stdout


def test_the_copy_probe_curve_names_the_step_copying_appears(tmp_path):
    """A target's SFT log with copy-probe figures gives the "When copying appears" section: the
    first probed step with a quarter of whole values right, the best, the last, and a plot."""
    from toolbench.app.report import build_report

    def write_log(folder: Path, tokens: list[float], values: list[float], closed: list[float] | None = None):
        folder.mkdir(parents=True)
        lines = [
            {"step": 1 + 50 * i, "loss": 1.0, "copy_token_acc": acc, "copy_value_acc": whole}
            for i, (acc, whole) in enumerate(zip(tokens, values, strict=True))
        ]
        for line, span in zip(lines, closed or [], strict=False):  # logs before the end probe have none
            line["copy_span_acc"] = span
        lines.insert(1, {"step": 10, "loss": 1.0})  # a plain log line between probes
        (folder / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    # a copy head: half the tokens from step 1 (continuing spans), whole values only later
    write_log(
        tmp_path / "models" / "target",
        [0.52, 0.49, 0.54, 0.65, 0.75],
        [0.0, 0.0, 0.1, 0.3, 0.28],
        [0.0, 0.0, 0.05, 0.2, 0.21],
    )
    write_log(tmp_path / "models" / "slow", [0.03, 0.07], [0.0, 0.01])
    md, html = build_report(tmp_path)
    text = md.read_text()
    assert "## When copying appears" in text and "first probed step with 25% of whole values right" in text
    assert "| target | step 151 | 30.0% (step 151) | 75.0% / 28.0% / 21.0% |" in text
    assert "| slow | not yet (2 probes, to step 51) | 1.0% (step 51) | 7.0% / 1.0% / – |" in text
    assert (tmp_path / "report" / "copying.png").stat().st_size > 5000


def test_no_copy_section_without_a_probe(tmp_path):
    from toolbench.app.report import build_report

    (tmp_path / "models" / "draft").mkdir(parents=True)
    (tmp_path / "models" / "draft" / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    md, _ = build_report(tmp_path)
    assert "When copying appears" not in md.read_text() and not (tmp_path / "report" / "copying.png").exists()
