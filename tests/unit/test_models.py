"""The model-folder helpers every cache and head check relies on."""

from __future__ import annotations

import shutil

import pytest
import torch

from toolbench.distill.training.models import weights_fingerprint
from toolbench.foundation.errors import UserError


def test_weights_fingerprint_follows_the_weights_not_the_folder(tmp_path, tiny_draft_dir):
    from transformers import AutoModelForCausalLM

    original = weights_fingerprint(tiny_draft_dir)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_draft_dir, copy)
    assert weights_fingerprint(copy) == original  # a copy (new path, new mtimes) is the same model

    model = AutoModelForCausalLM.from_pretrained(copy)
    with torch.no_grad():
        model.lm_head.weight.add_(1e-3)  # one small "training step"
    model.save_pretrained(copy)
    assert weights_fingerprint(copy) != original
    assert len(original) == 16 and int(original, 16) >= 0

    assert weights_fingerprint("org/some-model") == "id:org/some-model"  # a hub id: by name
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: no weight files"):
        weights_fingerprint(empty)
