"""Tokenised training examples: packed blocks of generic text for pretraining, and chat
conversations for target alignment whose labels cover assistant tokens only.

SFT conversations are built by the evaluator's own `PromptBuilder.chat`, so a model is trained on
exactly the layout it is later asked in: the offered tools in the system turn, an optional system
prompt, 0-3 retrieved demonstrations as earlier turns (user → tool calls → tool acknowledgements),
then the request. Demos are other samples of the same pool, found with the same BM25 demo retriever
`toolbench eval` uses, never of the sample's own template (as a held-out task's demos never are);
`own_template_demos` retrieves a share of them exactly as eval does, own template allowed (as an
in-distribution task's demos mostly are). Every assistant turn is trained on (the demos' answers
are training answers too), which also spreads the cost of the tool list over several answers.

Echo conversations (`echo` > 0) add the auxiliary copy task: the user turn is a request, the
assistant repeats it verbatim. A model trained from scratch otherwise learns the calls' layout and
function choice but fills arguments with values it has seen elsewhere ("Berex" for Charlotte); the
echo task grows the heads that copy text from the user turn into the assistant turn, which is how
argument values get there. Measured in README "Train the embedded models".
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from toolbench.distill.training.trainer import IGNORE
from toolbench.foundation.records import Sample


def pack_blocks(documents: Iterable[str], tokenizer: Any, block_size: int) -> list[dict[str, list[int]]]:
    """Documents joined by the end token and cut into equal blocks (no padding, every token trained)."""
    end = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(documents), add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
        stream.append(end)
    return [
        {"input_ids": stream[i : i + block_size], "labels": stream[i : i + block_size]}
        for i in range(0, len(stream) - block_size + 1, block_size)
    ]


class ConversationConfig(BaseModel):
    demo_weights: list[float] = Field(
        [0.4, 0.2, 0.2, 0.2], description="Probability of 0, 1, 2, 3 demos before the request."
    )
    system_prompt_rate: float = Field(
        0.5, ge=0, le=1, description="Share of conversations with the system prompt."
    )
    max_length: int = Field(1024, ge=16, description="Longer conversations are dropped.")
    own_template_demos: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of conversations with demos whose demos are retrieved exactly as `toolbench "
        "eval` retrieves them, the sample's own template allowed: an in-distribution task's three "
        "demos are of its own template in most cases (305 of 360 over 24 tasks per tool), a prompt a "
        "model trained only on other templates' demos never sees. The rest take demos from other "
        "templates only, which is what a held-out template asks: structure from similar requests, "
        "values from the request. 0.5 measured no better at the demo's budget (README).",
    )
    seed: int = 0


def assistant_message(sample: Sample) -> dict[str, Any]:
    """The gold answer as chat templates take it (`toolbench.core.chat_messages`: arguments as objects)."""
    from toolbench.core.chat_messages import assistant_calls, call_id
    from toolbench.pipelines.export import NO_CALL_REPLY

    program = sample.labels[0]
    if not program:
        return {"role": "assistant", "content": NO_CALL_REPLY}
    return assistant_calls(program, [call_id(sample.id, i) for i in range(len(program))])


def conversations(samples: Sequence[Sample], samples_path: Path, config: ConversationConfig):
    """(messages, tools) per sample, demos retrieved like `toolbench eval` retrieves them."""
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.retriever import demo_documents, make_retriever
    from toolbench.retriever.prompt import PromptBuilder

    index = make_retriever("bm25").build(demo_documents(samples_path, split="all"))
    builders = {
        (k, system, other): PromptBuilder(
            index if k else None,
            k,
            DEFAULT_SYSTEM_PROMPT if system else None,
            other_templates=other,
        )
        for k in range(len(config.demo_weights))
        for system in (False, True)
        for other in (False, True)
    }
    for i, sample in enumerate(samples):
        rng = random.Random(config.seed * 1_000_003 + i)
        k = rng.choices(range(len(config.demo_weights)), config.demo_weights)[0]
        system = rng.random() < config.system_prompt_rate
        other = rng.random() >= config.own_template_demos  # drawn last: k and system as before
        messages, tools = builders[(k, system, other)].chat(sample)
        yield messages + [assistant_message(sample)], tools


def tokenize_conversation(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]):
    """{input_ids, labels} with labels = -100 everywhere but the assistant turns. Quiet about
    conversations past the tokenizer's model_max_length: the caller drops those over its own
    max_length (`dropped_too_long` in the run record), so transformers' "indexing errors" warning
    would only alarm."""
    out = tokenizer.apply_chat_template(
        messages,
        tools=tools or None,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        tokenizer_kwargs={"verbose": False},
    )
    ids, mask = list(out["input_ids"]), out["assistant_masks"]
    if not any(mask):
        raise ValueError("the chat template marks no assistant tokens ({% generation %} is missing)")
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]}


def echo_conversations(samples: Sequence[Sample], rate: float, seed: int) -> list[list[dict[str, Any]]]:
    """`rate` x len(samples) conversations (seeded choice, requests repeat only past rate 1) in
    which the assistant repeats the user's request: the copy task, without tools (short, cheap)."""
    rng = random.Random(seed * 1_000_003 + 7)
    count = round(rate * len(samples))
    picked = [samples[i % len(samples)] for i in range(count - count % len(samples))]
    picked += rng.sample(list(samples), count % len(samples))
    return [[{"role": "user", "content": s.query}, {"role": "assistant", "content": s.query}] for s in picked]


def sft_examples(
    samples_path: Path, tokenizer: Any, config: ConversationConfig, echo: float = 0.0
) -> tuple[list[dict], dict]:
    """Tokenised SFT examples from a generated samples file (plus `echo` x as many echo
    conversations, see the module doc), and counts for the run record."""
    from toolbench.pipelines.export import iter_samples

    samples = list(iter_samples(Path(samples_path)))
    examples, dropped = [], 0
    for messages, tools in conversations(samples, Path(samples_path), config):
        example = tokenize_conversation(tokenizer, messages, tools)
        if len(example["input_ids"]) > config.max_length:
            dropped += 1
            continue
        examples.append(example)
    echoes = [tokenize_conversation(tokenizer, m, []) for m in echo_conversations(samples, echo, config.seed)]
    echoes = [e for e in echoes if len(e["input_ids"]) <= config.max_length]
    stats = {
        "conversations": len(examples),
        "dropped_too_long": dropped,
        **_token_counts(examples),
        "echo_conversations": len(echoes),
        "echo_tokens": _token_counts(echoes)["tokens"],
    }
    return examples + echoes, stats


def _token_counts(examples: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
    lengths = [len(e["input_ids"]) for e in examples]
    return {
        "tokens": sum(lengths),
        "assistant_tokens": sum(sum(1 for t in e["labels"] if t != IGNORE) for e in examples),
        "mean_length": round(sum(lengths) / max(1, len(lengths)), 1),
    }
