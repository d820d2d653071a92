"""`toolbench train …` mistakes are one line, exit 2, no traceback."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "draft"], "only --generic drafts are trained here"),
        (
            ["train", "draft", "--generic", "--preset", "huge"],
            "unknown model preset 'huge'; known: target, draft, tiny",
        ),
        (["train", "draft", "--generic", "--tokenizer", "{missing}"], "not a tokenizer folder or hub id"),
    ],
)
def test_train_mistakes_are_one_line_errors(args, message, tmp_path, product_tokenizer_dir, generic_cache):
    args = [a.replace("{missing}", str(tmp_path / "nope")) for a in args]
    if "--tokenizer" not in args:
        args += ["--tokenizer", str(product_tokenizer_dir)]
    result = run_cli(*args, "--out", str(tmp_path / "out"), "--cache-dir", str(generic_cache), "--steps", "1")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
