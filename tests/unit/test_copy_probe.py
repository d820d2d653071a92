"""The copy probe: which values count as copyable, that its spans are exactly the values' tokens in
the answer, and that a model which copies scores 1.0 while a random one does not."""

from __future__ import annotations

import pytest

from toolbench.distill.training.copy_probe import CopyProbe, copyable_values, indist_probe
from toolbench.foundation.records import Call, Task


def _task(query: str, arguments: dict) -> Task:
    return Task(
        id="t",
        tool="home_search",
        query=query,
        labels=[[Call(name="set_location", arguments=arguments)]],
    )


def test_only_values_written_verbatim_in_the_request_are_copyable():
    task = Task(
        id="t",
        tool="home_search",
        query="Rent in Austin, TX for 1450 a month, 2.5 baths, pets ok",
        labels=[
            [
                Call(name="set_location", arguments={"value": "Austin, TX"}),
                Call(name="set_max_price", arguments={"value": 1450}),
                Call(name="set_num_baths", arguments={"value": 2.5}),
                Call(name="set_buy_or_rent", arguments={"value": "rent"}),  # not in the text as written
                Call(name="set_pets", arguments={"value": True}),  # booleans are never copied
            ]
        ],
    )
    assert copyable_values(task) == ["Austin, TX", "1450", "2.5"]
    assert copyable_values(_task("Homes in Austin", {"value": "Austin, TX"})) == []


@pytest.fixture(scope="module")
def tokenizer(product_tokenizer_dir):
    from toolbench.distill.training.models import load_tokenizer

    return load_tokenizer(product_tokenizer_dir)


def test_spans_are_the_values_tokens_inside_the_answer(tokenizer):
    task = _task("Find homes in San Diego, CA please", {"value": "San Diego, CA"})
    probe = CopyProbe(tokenizer, [task])
    assert probe.values == 1
    ((begin, end),) = probe.spans[0]
    ids, labels = probe.examples[0]["input_ids"], probe.examples[0]["labels"]
    assert tokenizer.decode(ids[begin:end]) == "San Diego, CA"
    assert all(label != -100 for label in labels[begin:end])  # in the answer, not in the request


class _Oracle:
    """A 'model' that always predicts the next token of the sequence it is given: copies perfectly."""

    def __init__(self, vocab: int):
        import torch

        self.vocab, self.weight = vocab, torch.zeros(1)

    def parameters(self):
        yield self.weight

    def __call__(self, input_ids, attention_mask):
        import torch

        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[:, :-1].scatter_(-1, input_ids[:, 1:, None], 1.0)
        return type("Out", (), {"logits": logits})()


def test_a_model_that_copies_scores_one_and_a_random_one_does_not(tokenizer):
    from toolbench.distill.training.models import new_model

    probe = indist_probe(tokenizer, ["weather", "home_search"], per_tool=4)
    assert probe is not None and probe.values >= 8
    assert probe(_Oracle(len(tokenizer))) == {
        "copy_token_acc": 1.0,
        "copy_value_acc": 1.0,
        "copy_end_acc": 1.0,
        "copy_span_acc": 1.0,
    }
    random = probe(new_model("tiny", tokenizer, seed=0).eval())
    assert random["copy_value_acc"] < 0.2 and 0 <= random["copy_token_acc"] < 0.5


class _RunOn(_Oracle):
    """Copies every token right but never closes a string: where the next token is a quote it
    predicts the token after the quote instead (a value that runs on)."""

    def __init__(self, vocab: int, quote: int):
        super().__init__(vocab)
        self.quote = quote

    def __call__(self, input_ids, attention_mask):
        logits = super().__call__(input_ids, attention_mask).logits
        at = (input_ids[:, 1:-1] == self.quote).nonzero().tolist()
        for row, col in at:
            logits[row, col] = 0.0
            logits[row, col, input_ids[row, col + 2]] = 1.0
        return type("Out", (), {"logits": logits})()


def test_a_value_that_runs_on_past_its_end_is_right_token_by_token_but_not_closed(tokenizer):
    probe = indist_probe(tokenizer, ["weather", "home_search"], per_tool=4)
    assert probe is not None
    quote = tokenizer('"', add_special_tokens=False)["input_ids"]
    assert len(quote) == 1
    figures = probe(_RunOn(len(tokenizer), quote[0]))
    # numbers are closed by a comma or a brace, strings by the quote this model never predicts
    numbers = sum(
        tokenizer.decode(example["input_ids"][end]) != '"'
        for example, spans in zip(probe.examples, probe.spans, strict=True)
        for _, end in spans
    )
    assert 0 < numbers < probe.values
    assert figures["copy_token_acc"] == figures["copy_value_acc"] == 1.0
    assert figures["copy_end_acc"] == figures["copy_span_acc"] == round(numbers / probe.values, 4)
