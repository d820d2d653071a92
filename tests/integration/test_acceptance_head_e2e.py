"""End to end: `toolbench train acceptance-head` on a tiny product-tokenizer pair, then
`toolbench spec --draft-policy learned` with the head it wrote, and the one-line refusals of a head
on the wrong draft or a learned policy without --head. Real subprocesses, ~15-50 s on 2 cores (the
head's unit tests are in tests/unit/test_acceptance_head.py)."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def product_pair(tmp_path_factory, product_tokenizer_dir):
    """(target, draft): tiny random Llamas on the product tokenizer (short chat prompts)."""
    from toolbench.distill.training.models import load_tokenizer, new_model

    tokenizer = load_tokenizer(product_tokenizer_dir)
    root = tmp_path_factory.mktemp("head-pair")
    for name, seed in (("target", 1), ("draft", 2)):
        new_model("tiny", tokenizer, seed=seed).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root / "target", root / "draft"


def test_train_acceptance_head_then_spec_with_it(tmp_path, product_pair):
    target, draft = map(str, product_pair)
    head = tmp_path / "head"
    result = run_cli(
        "train", "acceptance-head", "--target", target, "--draft", draft, "--out", str(head),
        "--tools", "weather", "--samples", "16", "--max-new-tokens", "8", "--steps", "60",
        "--max-budget", "3", "--threads", "1",
        check=True,
    )  # fmt: skip
    assert "predicted decode speedup on held-out training prompts" in result.stdout
    info = orjson.loads((head / "head.json").read_bytes())
    assert info["hidden_size"] == 32 and info["draft"] == draft and 1 <= info["budget"] <= 3
    assert set(info["selection"]["best"]) == {"fixed", "confidence", "learned"}
    cost = info["selection"]["cost"]
    assert cost["target_token_s"] > 0 and cost["round_s"] > 0 and cost["learned_s"] >= 0
    data = orjson.loads((head / "data" / "index.json").read_bytes())
    assert data["complete"] and data["identity"]["count"] == sum(s["sequences"] for s in data["shards"])
    record = orjson.loads((head / "train_record.json").read_bytes())["run"]
    assert record["command"] == "train acceptance-head" and record["finished_at"]

    out = tmp_path / "spec"
    run_cli(
        "spec", "--target", target, "--draft", draft, "--draft-policy", "learned", "--head", str(head),
        "--tools", "weather", "--limit", "2", "--max-new-tokens", "10", "--threads", "1", "--no-assisted",
        "--out", str(out),
        check=True,
    )  # fmt: skip
    summary = orjson.loads((out / "summary.json").read_bytes())["summary"]
    assert summary["config"]["policy"] == "learned" and summary["config"]["gamma"] == info["budget"]
    assert summary["config"]["threshold"] == info["threshold"]
    assert summary["overall"]["spec_equal_target"] == "2/2"
    assert (
        "wasted_draft_tokens_per_call" in summary["overall"]
        and "policy stops" in (out / "summary.md").read_text()
    )

    def error(*args: str) -> str:
        result = run_cli("spec", "--target", target, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr.strip()

    line = error("--draft", target, "--draft-policy", "learned", "--head", str(head))
    assert f"was trained for draft {draft}" in line and f"draft {target} has other weights" in line
    assert error("--draft", draft, "--draft-policy", "learned") == (
        "error: the learned draft policy needs --head: a folder from `toolbench train acceptance-head`"
    )
