"""Exports load into the training stacks people use: `datasets`, a real chat template with tools,
and one TRL SFTTrainer step on a tiny randomly initialised Llama."""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import orjson
import pytest

from toolbench.core.registry import tool_names
from toolbench.foundation.records import Sample
from toolbench.pipelines.export import EXPORT_FORMATS, export_file
from toolbench.pipelines.generate import GenerateConfig, generate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    canonical = folder / "data.jsonl"
    distractors = 1 if len(tool_names()) > 1 else 0
    generate(
        GenerateConfig(
            tools=tool_names(), n=160, seed=3, distractors=distractors, relevance=0.1 if distractors else 0.0
        ),
        canonical,
    )
    paths = {"canonical": canonical}
    for fmt in EXPORT_FORMATS:
        paths[fmt] = folder / f"data.{fmt}.jsonl"
        export_file(canonical, paths[fmt], fmt, split="train", multi_turn=True)
    return paths


def train_samples(path: Path) -> list[Sample]:
    samples = [Sample.model_validate(orjson.loads(line)) for line in path.read_bytes().splitlines()]
    return [s for s in samples if s.split == "train"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)  # BPE + the shipped tool-aware chat template


def test_every_export_loads_with_datasets(exports):
    samples = train_samples(exports["canonical"])
    first = samples[0]
    for fmt in EXPORT_FORMATS:
        data = datasets.load_dataset("json", data_files=str(exports[fmt]), split="train")
        assert len(data) == len(samples), fmt
        row = data[0]
        if fmt == "toolbench":
            assert (
                row["prompt"].endswith(f"Task: {first.query}\nActions:\n")
                and row["completion"] == first.action
            )
        elif fmt == "sharegpt":
            assert row["conversations"][0] == {"from": "human", "value": first.query}
            assert {t["name"] for t in json.loads(row["tools"])} >= {c.name for c in first.labels[0]}
        else:
            assert row["messages"][0] == {"role": "user", "content": first.query}
            calls = row["messages"][1]["tool_calls"] if first.labels[0] else []
            arguments = [
                json.loads(c["function"]["arguments"]) if fmt == "openai" else c["function"]["arguments"]
                for c in calls
            ]
            assert arguments == [c.arguments for c in first.labels[0]]
            assert {t["function"]["name"] for t in row["tools"]} >= {c.name for c in first.labels[0]}


def test_multi_tool_and_relevance_samples_are_exported(exports):
    records = [json.loads(line) for line in exports["openai"].read_text().splitlines()]
    samples = train_samples(exports["canonical"])
    if len(tool_names()) == 1:
        pytest.skip("needs two tools")
    relevance = [r for r, s in zip(records, samples, strict=True) if s.category == "relevance"]
    assert relevance and all(
        len(r["messages"]) == 2 and "tool_calls" not in r["messages"][1] for r in relevance
    )
    assert all(len(r["tools"]) >= 2 for r in records)


def test_hf_chat_renders_through_a_real_chat_template_with_tools(exports, tokenizer):
    data = datasets.load_dataset("json", data_files=str(exports["hf-chat"]), split="train")
    for row, sample in zip(data, train_samples(exports["canonical"]), strict=True):
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        for tool in row["tools"]:
            assert json.dumps(tool["function"]["name"]) in text
        for call in sample.labels[0]:
            assert (
                f'<tool_call>{{"name": "{call.name}", "arguments": {json.dumps(call.arguments, ensure_ascii=False)}}}</tool_call>'
                in text
            )
        assert text.count("<|tool|>") == len(sample.labels[0])


def one_step(out: Path):
    """TRL settings for one SFT step on the CPU, loss on assistant tokens only."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        max_length=None,
        assistant_only_loss=True,
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
        seed=0,
    )


@pytest.mark.parametrize("fmt", ["openai", "hf-chat"])
def test_one_trl_sft_step_on_a_tiny_random_model(exports, tokenizer, tiny_model_dir, tmp_path, fmt):
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    data = datasets.load_dataset("json", data_files=str(exports[fmt]), split="train")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # tiny, randomly initialised
    trainer = SFTTrainer(model=model, args=one_step(tmp_path), train_dataset=data, processing_class=tokenizer)
    assert len(trainer.train_dataset) == len(data)  # nothing dropped: every example has assistant tokens
    result = trainer.train()
    assert result.global_step == 1
    assert math.isfinite(result.training_loss) and result.training_loss > math.log(len(tokenizer)) - 2


@pytest.mark.parametrize("fmt", ["openai", "hf-chat", "sharegpt"])
def test_episode_samples_export_as_action_observation_turns(tmp_path, fmt):
    canonical = tmp_path / "webshop.jsonl"
    generate(GenerateConfig(tools=["webshop"], n=40, seed=2, split="train"), canonical)
    out = tmp_path / f"webshop.{fmt}.jsonl"
    export_file(canonical, out, fmt, split="train")  # episodes are multi-turn without --multi-turn
    samples = train_samples(canonical)
    data = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(data) == len(samples) == 40 and {s.category for s in samples} == {"episode"}
    for row, sample in zip(data, samples, strict=True):
        calls, observations = list(sample.labels[0]), sample.results
        if fmt == "sharegpt":
            turns = row["conversations"]
            assert [t["from"] for t in turns] == ["human"] + ["function_call", "observation"] * len(calls) + [
                "gpt"
            ]
            assert [json.loads(t["value"])["name"] for t in turns[1:-1:2]] == [c.name for c in calls]
            assert [t["value"] for t in turns[2:-1:2]] == observations
            assert turns[-1]["value"].startswith("I bought [")
            continue
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["user"] + ["assistant", "tool"] * len(calls) + ["assistant"]
        actions = [m["tool_calls"] for m in messages[1:-1:2]]
        assert all(len(a) == 1 for a in actions) and [a[0]["function"]["name"] for a in actions] == [
            c.name for c in calls
        ]
        assert [m["content"] for m in messages[2:-1:2]] == observations
        assert observations[0].startswith("Results for ") and messages[-1]["content"].startswith("I bought [")
        if fmt == "openai":
            assert row["parallel_tool_calls"] is False


def test_trl_renders_each_argument_once_through_a_template_that_tojsons_arguments(
    exports, tiny_model_dir, tmp_path
):
    """Qwen-, Llama- and Mistral-style templates print `arguments | tojson`: the hf-chat export
    (objects) must come out of TRL's tokenisation with every call written once, not as a JSON
    string inside JSON. The strict fixture template also refuses string arguments, call ids that
    are not 9 letters or digits and tool results without a name."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from tests.unit.test_chat_messages import strict_model

    folder = strict_model(tiny_model_dir, tmp_path / "strict", allow_parallel=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = datasets.load_dataset("json", data_files=str(exports["hf-chat"]), split="train")
    model = AutoModelForCausalLM.from_pretrained(folder)
    trainer = SFTTrainer(
        model=model, args=one_step(tmp_path / "out"), train_dataset=data, processing_class=tokenizer
    )
    samples = train_samples(exports["canonical"])
    assert len(trainer.train_dataset) == len(samples)
    checked = 0
    for row, sample in zip(trainer.train_dataset, samples, strict=True):
        text = tokenizer.decode(row["input_ids"])
        for call in sample.labels[0]:
            written = f'"arguments": {json.dumps(call.arguments, ensure_ascii=False)}}}'
            assert text.count(written) >= 1, (written, text[-400:])
            checked += 1
        assert '"arguments": "' not in text  # never a JSON string inside JSON
    assert checked > 100
