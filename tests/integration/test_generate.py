"""The generator: same seed same bytes, any worker count, clean samples, split by template, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from toolbench.core.executor import execute
from toolbench.core.templating import normalise_query
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Sample
from toolbench.pipelines.generate import GenerateConfig, generate

pytestmark = pytest.mark.integration
CONFIG = GenerateConfig(tools=["home_search"], n=3000, seed=7)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "a.jsonl"
    generate(CONFIG, out)
    return out


def test_same_seed_same_bytes_for_any_worker_count(generated, tmp_path):
    generate(CONFIG, tmp_path / "b.jsonl", workers=2, chunk_size=128)
    assert (tmp_path / "b.jsonl").read_bytes() == generated.read_bytes()
    generate(CONFIG.model_copy(update={"seed": 8}), tmp_path / "c.jsonl")
    assert (tmp_path / "c.jsonl").read_bytes() != generated.read_bytes()


def test_every_sample_is_valid_unique_and_executes_cleanly(generated):
    samples = [Sample.model_validate(orjson.loads(line)) for line in generated.read_bytes().splitlines()]
    assert len(samples) == 3000
    assert len({s.id for s in samples}) == 3000
    assert len({normalise_query(s.query) for s in samples}) == 3000
    for sample in samples:
        for label in sample.labels:
            assert execute(label, sample.offered_tools).ok, sample.id


def test_split_is_by_whole_template(generated):
    templates: dict[str, set[str]] = {"train": set(), "test": set()}
    for line in generated.read_bytes().splitlines():
        sample = orjson.loads(line)
        templates[sample["split"]].add(sample["meta"]["template"])
    assert templates["train"] and templates["test"]
    assert not templates["train"] & templates["test"]


def test_run_record_is_written_beside_the_output(generated):
    record = orjson.loads(generated.with_name("a.run.json").read_bytes())
    assert record["seed"] == 7 and record["counts"]["kept"] == 3000
    assert record["config"]["tools"] == ["home_search"] and "pydantic" in record["packages"]
    assert sum(record["counts"]["by_split"].values()) == 3000


def test_only_test_templates_with_split_test(tmp_path):
    generate(GenerateConfig(tools=["home_search"], n=200, seed=1, split="test"), tmp_path / "t.jsonl")
    splits = {orjson.loads(line)["split"] for line in (tmp_path / "t.jsonl").read_bytes().splitlines()}
    assert splits == {"test"}


def test_a_partial_run_is_not_silently_overwritten(tmp_path):
    out = tmp_path / "x.jsonl"
    out.with_name("x.jsonl.partial").write_bytes(b'{"query": "x"}\n')
    out.with_name("x.jsonl.partial.json").write_text('{"bytes": 15}')
    with pytest.raises(UserError, match="pass --resume to continue"):
        generate(CONFIG, out)


def test_resume_after_kill_gives_the_same_file(tmp_path):
    n = "40000"  # long enough (~2 s at ~20,000 samples/s) to be killed after the first checkpoint
    args = [sys.executable, "-m", "toolbench", "generate", "--tool", "all", "--n", n, "--seed", "3"]
    reference = tmp_path / "ref.jsonl"
    subprocess.run([*args, "--out", str(reference)], check=True, capture_output=True, timeout=300)

    out = tmp_path / "run.jsonl"
    checkpoint = out.with_name("run.jsonl.partial.json")
    process = subprocess.Popen(
        [*args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let it write past the checkpoint, so resume must truncate
    assert process.poll() is None, "the run finished before it could be killed; raise n"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists() and out.with_name("run.jsonl.partial").exists()

    changed = subprocess.run(
        [*args[:-2], "--seed", "4", "--out", str(out), "--resume"], capture_output=True, text=True
    )
    assert changed.returncode == 2 and "different configuration" in changed.stderr

    resumed = subprocess.run(
        [*args, "--out", str(out), "--resume"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert orjson.loads(out.with_name("run.run.json").read_bytes())["counts"]["resumed_from"] > 0


def test_samples_whose_gold_misses_the_goal_are_rejected(tmp_path):
    folder = tmp_path / "templates" / "home_search"
    folder.mkdir(parents=True)
    entry = """
  - id: {id}
    split: train
    slots:
      city: {{pool: us_cities}}
      beds: {{int: [1, 5]}}
    queries:
      - "{{{{ beds }}}}+ bed rentals in {{{{ city }}}} ({id})"
    goal:
      - {{path: home_search.criteria.num_beds, value: {target}}}
    action: |
      API.set_location({{{{ city | py }}}})
      API.set_buy_or_rent("rent")
      API.set_num_beds({{{{ beds }}}})
"""
    (folder / "t.yaml").write_text(
        "tool: home_search\nentries:"
        + entry.format(id="reachable", target='"{{ beds }}"')
        + entry.format(id="impossible", target="99")
    )
    out = tmp_path / "g.jsonl"
    report = generate(
        GenerateConfig(tools=["home_search"], n=60, seed=0, templates=str(tmp_path / "templates")), out
    )
    assert report.rejects.get("goal:unmet", 0) > 0
    samples = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {s["meta"]["template"] for s in samples} == {"reachable"}
    assert all(
        s["goal"]
        == [{"path": "home_search.criteria.num_beds", "value": s["labels"][0][2]["arguments"]["value"]}]
        for s in samples
    )


def test_episode_generation_is_deterministic_and_every_gold_trajectory_succeeds(tmp_path):
    config = GenerateConfig(tools=["webshop"], n=1500, seed=0)
    generate(config, tmp_path / "a.jsonl")
    generate(config, tmp_path / "b.jsonl", workers=2, chunk_size=200)
    data = (tmp_path / "a.jsonl").read_bytes()
    assert data == (tmp_path / "b.jsonl").read_bytes()
    from toolbench.core.episode import ReplayPolicy, run_episode

    samples = [Sample.model_validate(orjson.loads(line)) for line in data.splitlines()]
    assert {s.category for s in samples} == {"episode"} and len({s.meta["template"] for s in samples}) == 14
    for sample in samples[:300]:
        result = run_episode(sample.offered_tools, sample.setup, ReplayPolicy(sample.labels[0]), sample.query)
        assert result.success and [step.observation for step in result.trajectory] == sample.results


def test_a_profiled_run_times_every_stage_and_writes_the_same_bytes(generated, tmp_path):
    from toolbench.pipelines.generate.engine import STAGES, StageClock

    clock = StageClock()
    report = generate(CONFIG, tmp_path / "p.jsonl", clock=clock)
    assert (tmp_path / "p.jsonl").read_bytes() == generated.read_bytes()
    assert set(clock.seconds) == set(STAGES)
    assert all(seconds >= 0 for seconds in clock.seconds.values())
    assert sum(clock.seconds.values()) == pytest.approx(report.seconds, rel=0.2)
