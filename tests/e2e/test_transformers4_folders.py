"""Model and tokenizer folders this project saves load under transformers 4.5x too: vLLM pins
transformers < 5, so a draft trained here must load there to be served as a speculative draft.

The check runs in a throwaway venv (kept in the toolbench cache, so the install is paid once)
with torch 2.13 and transformers 4.57; it compares token ids and logits with this process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# On a fresh machine the throwaway venv is built first: two installs of up to 900 s each (below).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2000)]

TRANSFORMERS_4 = "transformers>=4.57,<4.58"
PROBE = """
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, text = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder).eval()
ids = tokenizer(text, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0, -1, :8].tolist()
chat = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
print(json.dumps({"version": transformers.__version__, "class": type(tokenizer).__name__, "ids": ids,
                  "logits": logits, "chat": chat}))
"""


def old_transformers_python() -> Path:
    root = Path(os.environ.get("TOOLBENCH_CACHE", Path.home() / ".cache" / "toolbench"))
    venv = root / "venvs" / "transformers-4.57"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, "torch==2.13.0"], check=True, timeout=900)  # the CPU build first
        subprocess.run([*install, TRANSFORMERS_4], check=True, timeout=900)
        (venv / ".ready").write_text("ok\n")
    return python


def test_saved_folders_load_under_transformers_4(product_tokenizer_dir, tmp_path):
    import torch

    from tests.fixtures.tiny_model import random_llama
    from toolbench.distill.training.models import load_tokenizer, save_tokenizer

    tokenizer = load_tokenizer(product_tokenizer_dir)
    folder = tmp_path / "model"
    random_llama(len(tokenizer), hidden=32, layers=2, seed=3, tokenizer=tokenizer).save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    assert (
        json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"]
        == "PreTrainedTokenizerFast"
    )

    text = 'Find homes in "Austin, TX" with 3 beds under $450,000'
    result = subprocess.run(
        [str(old_transformers_python()), "-c", PROBE, str(folder), text],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    old = json.loads(result.stdout.strip().splitlines()[-1])
    assert old["version"].startswith("4.57") and old["class"] == "PreTrainedTokenizerFast"

    reloaded = load_tokenizer(folder)  # and 5.x still reads what 4.x reads
    ids = reloaded(text, add_special_tokens=False)["input_ids"]
    assert old["ids"] == ids
    chat = reloaded.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    assert old["chat"] == chat
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1, :8]
    assert torch.allclose(torch.tensor(old["logits"]), logits, atol=1e-4)
