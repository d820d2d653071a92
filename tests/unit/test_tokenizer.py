"""The product tokenizer and chat template: round trips, tools rendering, calls parsed back, and
the assistant-only loss mask pinned against a golden rendering."""

from __future__ import annotations

import json

import pytest

from toolbench.core.calls.chat_native import ChatNativeFormat
from toolbench.core.chat_messages import openai_tools
from toolbench.core.registry import get_tool
from toolbench.distill.training.data import tokenize_conversation
from toolbench.distill.training.trainer import IGNORE

CALL_TEXT = (
    '<tool_call>{"name": "set_min_price", "arguments": {"value": 1450000}}</tool_call>\n'
    '<tool_call>{"name": "set_location", "arguments": {"value": "Austin, TX"}}</tool_call>'
)


@pytest.fixture(scope="module")
def tokenizer(product_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(product_tokenizer_dir)


def conversation():
    tools = openai_tools(
        [get_tool("home_search").specs[n] for n in ("set_location", "set_min_price", "search")]
    )
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Homes in Austin, TX from $1,450,000"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "set_location", "arguments": '{"value": "Austin, TX"}'},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "set_min_price", "arguments": {"value": 1450000}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": '{"status": "ok"}'},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "You're welcome."},
    ]
    return messages, tools


def test_round_trip_of_tool_call_text(tokenizer):
    ids = tokenizer(CALL_TEXT, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == CALL_TEXT
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[0] == "<tool_call>" and "</tool_call>" in pieces
    assert [p for p in pieces if p.isdigit()] == list("1450000")  # a token per digit
    pre = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str('{"name": "set_min_price"}')
    assert [piece for piece, _ in pre] == ["{", '"', "name", '"', ":", "Ġ", '"', "set_min_price", '"', "}"]
    # identifiers stay whole; no piece crosses a quote, a colon or a space


@pytest.mark.parametrize("value", ["Austin, TX", "Charlotte", "San Luis Obispo, CA", "1450", "3.5", "Kyoto"])
def test_a_value_is_the_same_tokens_in_the_request_and_in_the_call(tokenizer, value):
    """Copying a value is then repeating tokens, which is what a small model learns soonest."""

    def tokens(text: str) -> list[str]:
        return tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])

    value_tokens = tokens(value)
    request = tokens(f"Find homes in {value} with a pool.")
    call = tokens(json.dumps({"name": "set_location", "arguments": {"value": value}}))
    for text in (request, call):
        assert any(text[i : i + len(value_tokens)] == value_tokens for i in range(len(text))), (value, text)


def test_chat_template_renders_tools_and_calls_and_parser_reads_them_back(tokenizer):
    messages, tools = conversation()
    text = tokenizer.apply_chat_template(messages[:3], tools=tools, tokenize=False)
    assert text == (
        "<|system|>\nBe brief.\nset_location(value)\nset_min_price(value)\nsearch(sort_by)\n<|end|>\n"
        "<|user|>\nHomes in Austin, TX from $1,450,000<|end|>\n"
        "<|assistant|>\n"
        '<tool_call>{"name": "set_location", "arguments": {"value": "Austin, TX"}}</tool_call>\n'
        '<tool_call>{"name": "set_min_price", "arguments": {"value": 1450000}}</tool_call>\n<|end|>'
    )
    answer = text.split("<|assistant|>\n", 1)[1].removesuffix("<|end|>")
    content, program = ChatNativeFormat().split(answer)
    assert content == ""
    assert [(c.name, c.arguments) for c in program] == [
        ("set_location", {"value": "Austin, TX"}),
        ("set_min_price", {"value": 1450000}),
    ]
    prompt = tokenizer.apply_chat_template(
        messages[:2], tools=tools, tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|user|>\nHomes in Austin, TX from $1,450,000<|end|>\n<|assistant|>\n")


def test_loss_mask_covers_assistant_turns_only(tokenizer):
    """Golden mask: the trained tokens decode to exactly the two assistant turns (EOS included)."""
    messages, tools = conversation()
    example = tokenize_conversation(tokenizer, messages, tools)
    trained = [t for t in example["labels"] if t != IGNORE]
    assert tokenizer.decode(trained) == (
        '<tool_call>{"name": "set_location", "arguments": {"value": "Austin, TX"}}</tool_call>\n'
        '<tool_call>{"name": "set_min_price", "arguments": {"value": 1450000}}</tool_call>\n<|end|>'
        "You're welcome.<|end|>"
    )
    # nothing from the system, user or tool turns is ever a label
    untrained = tokenizer.decode(
        [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label == IGNORE]
    )
    for piece in ("Be brief.", "Homes in Austin", '{"status": "ok"}', "thanks", "<|user|>", "<|tool|>"):
        assert piece in untrained
    assert json.loads('{"status": "ok"}')  # the tool turn is plain JSON text
