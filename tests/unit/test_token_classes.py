"""Token classes of a hand-written chat-native answer, character by character and token by token."""

from __future__ import annotations

import pytest

from toolbench.distill.speculative.token_classes import char_classes, token_classes, token_spans

ANSWER = (
    'OK <tool_call>{"name": "set_location", "arguments": {"value": "Austin, TX", "beds": 3}}</tool_call>'
    '\n<tool_call>{"name": "search", "arguments": {}}</tool_call>'
)
CODE = {"syntax": ".", "function_name": "F", "argument_key": "K", "argument_value": "V", "free_text": "t"}


def coded(text: str) -> str:
    return "".join(CODE[label] for label in char_classes(text))


def test_character_classes_of_a_hand_written_answer():
    expected = (
        "ttt"  # "OK " is prose
        + "." * 11  # <tool_call>
        + "." * 10  # {"name": "
        + "F" * 12  # set_location
        + "." * 18  # ", "arguments": {"
        + "K" * 5  # value
        + "...."  # ": "
        + "V" * 10  # Austin, TX
        + "...."  # ", "
        + "KKKK"  # beds
        + "..."  # ":␣
        + "V"  # 3
        + ".."  # }}
        + "." * 12  # </tool_call>
        + "."  # the newline between blocks is layout
        + "." * 11
        + "." * 10
        + "F" * 6  # search
        + "." * 19  # ", "arguments": {}}
        + "." * 12
    )
    assert coded(ANSWER) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there", "t" * 11),
        # nested values: keys inside are argument keys, scalars argument values
        ('<tool_call>{"name": "f", "arguments": {"a": [1, {"b": null}]}}</tool_call>', None),
        # arguments as a JSON string: one value
        ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', None),
        # cut off mid-call (max tokens): still classed, never raises
        ('<tool_call>{"name": "set_loc', "." * 11 + "." * 10 + "F" * 7),
        ('<tool_call>{"name": "f", "arguments": {"x": "un\\"fin', None),
        ('<tool_call>}}]]::,,"', "." * 11 + "." * 8 + "."),
    ],
)
def test_odd_answers(text, expected):
    labels = coded(text)
    assert len(labels) == len(text)
    if expected is not None:
        assert labels == expected
    if '"a": [1, {"b": null}]' in text:
        start = text.index('"a"')
        assert labels[start : start + len('"a": [1, {"b": null}]')] == ".K....V....K...VVVV.."
    if '"{\\"a\\": 1}"' in text:
        start = text.index('"{\\"a')
        assert labels[start : start + 12] == "." + "V" * 10 + "."
    if "un\\" in text:
        assert labels.endswith("V" * 7)


def _word_tokenizer(text: str):
    """A word-level tokenizer with known token boundaries: quotes stick to the word after them."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    split = pre_tokenizers.Split(
        Regex(r'<tool_call>|</tool_call>|"?[A-Za-z_]+|\d+|\s+|.'), behavior="isolated"
    )
    vocab = {"<|end|>": 0}
    for piece, _ in split.pre_tokenize_str(text):
        vocab.setdefault(piece, len(vocab))
    for extra in ('"', "Austin"):
        vocab.setdefault(extra, len(vocab))
    model = Tokenizer(models.WordLevel(vocab, unk_token="<|end|>"))
    model.pre_tokenizer = split
    model.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=model, eos_token="<|end|>")


def test_token_classes_of_a_hand_written_answer():
    text = (
        'OK <tool_call>{"name": "set_location", "arguments": {"value": "Austin, TX", "beds": 3}}</tool_call>'
    )
    tokenizer = _word_tokenizer(text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert pieces[:10] == ["OK", " ", "<tool_call>", "{", '"name', '"', ":", " ", '"set_location', '"']
    s, f, k, v, t = "syntax", "function_name", "argument_key", "argument_value", "free_text"
    expected = [
        t,
        t,
        s,
        s,
        s,
        s,
        s,
        s,
        f,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        k,
        s,
        s,
        s,
        v,
        v,
        v,
        v,
        s,
        s,
        s,
        k,
        s,
        s,
        s,
        v,
        s,
        s,
        s,
    ]
    expected.append(s)  # the end-of-turn token
    assert token_classes(tokenizer, ids) == expected  # '"Austin' is a value token carrying a quote


def test_spans_fall_back_to_incremental_decoding():
    text = '<tool_call>{"name": "Austin"}'
    tokenizer = _word_tokenizer(text)
    canonical = tokenizer(text, add_special_tokens=False)["input_ids"]
    vocab = tokenizer.get_vocab()
    odd = [
        vocab["<tool_call>"],
        vocab["{"],
        vocab['"name'],
        vocab['"'],
        vocab[":"],
        vocab[" "],
        vocab['"'],
        vocab["Austin"],
        vocab['"'],
        vocab["}"],
    ]
    assert odd != canonical and tokenizer.decode(odd) == text
    decoded, spans = token_spans(tokenizer, odd)
    assert decoded == text
    assert [text[a:b] for a, b in spans] == [
        "<tool_call>",
        "{",
        '"name',
        '"',
        ":",
        " ",
        '"',
        "Austin",
        '"',
        "}",
    ]
    assert token_classes(tokenizer, odd)[6:9] == ["syntax", "function_name", "syntax"]
