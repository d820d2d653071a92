"""The hf backend's batches: by prompt length, and a prompt that would run out of context with the
full answer budget alone, so it never shortens the answers of the prompts batched with it."""

from __future__ import annotations

import pytest

from toolbench.core.backends import BackendParams, BackendRequest
from toolbench.core.backends.hf import HFBackend
from toolbench.core.generation import LocalModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_context(tiny_model_dir):
    """The tiny model with a 64-position context (its own, not the shared cached instance)."""
    model = LocalModel(str(tiny_model_dir))
    model.context_length = 64
    return model


def _prompt(model: LocalModel, tokens: int) -> str:
    """A prompt of exactly `tokens` tokens."""
    text = " ".join(["the weather in Paris"] * tokens)
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"][:tokens]
    prompt = model.tokenizer.decode(ids)
    assert model.count_tokens(prompt) == tokens
    return prompt


def test_batches_group_by_length_and_put_tight_prompts_alone(small_context):
    lengths = [30, 5, 50, 12, 8, 60, 20]
    prompts = [_prompt(small_context, n) for n in lengths]
    # 16 new tokens: 30 + 16 fits in 64, 50 and 60 do not
    assert small_context.batches(prompts, 16, 2) == [[1, 4], [3, 6], [0], [2], [5]]
    assert small_context.batches(prompts, 1, 8) == [[1, 4, 3, 6, 0, 2, 5]]


def test_answers_come_back_in_request_order_and_a_long_prompt_cuts_no_other(small_context):
    backend = HFBackend(f"hf:{small_context.model_id}", batch_size=8)
    backend.model = small_context
    short = [_prompt(small_context, n) for n in (6, 9, 4)]
    long = _prompt(small_context, 58)  # leaves 6 positions
    requests = [BackendRequest(id=str(i), mode="completion", prompt=p) for i, p in enumerate([*short, long])]
    params = BackendParams(max_tokens=20)
    seen: list[int] = []
    together = backend.generate(requests, params, lambda i, answer: seen.append(i))
    alone = [backend.generate([r], params)[0] for r in requests]
    assert sorted(seen) == [0, 1, 2, 3]
    assert [a.text for a in together] == [a.text for a in alone]
    assert [a.usage["completion_tokens"] for a in together[:3]] == [20, 20, 20]  # the tiny model never stops
    assert together[3].usage["completion_tokens"] == 6
