"""Generic pretraining on the offline generic corpus (stdlib docs and docstrings): the whole of
`train draft --generic`, and the first, brief stage of `train target`.

A generic draft has read English-about-code but never a tool call: it stands in for "a small
general model" that a user would start a function-calling draft from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from toolbench.distill.training.trainer import TrainConfig, Trainer


class PretrainConfig(BaseModel):
    preset: str = "draft"
    copy_prior: bool = Field(
        False, description="Start from weights that already copy (distill/training/copy_prior.py)."
    )
    copy_head: bool = Field(False, description="A Llama with a copy head (toolbench/core/pointer_llama.py).")
    gate_view: bool = Field(True, description="With copy_head: the gate sees what a copy would bring.")
    block_size: int = Field(256, ge=8)
    documents: int | None = Field(None, ge=1, description="Only the first N generic documents (tests).")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(max_steps=600, learning_rate=2e-3))


def pretrain(
    config: PretrainConfig,
    tokenizer_path: Path,
    out: Path,
    cache_dir: Path,
    resume: bool = True,
    init: Path | None = None,
    record: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain a new `preset` model (or continue `init`) on packed generic text into `out`."""
    from toolbench.distill.training.corpus import generic_corpus
    from toolbench.distill.training.data import pack_blocks
    from toolbench.distill.training.models import load_causal_lm, load_tokenizer, new_model, parameter_count

    tokenizer = load_tokenizer(tokenizer_path)
    documents = generic_corpus(cache_dir)[: config.documents]
    blocks = pack_blocks(documents, tokenizer, config.block_size)
    model = (
        load_causal_lm(init)
        if init
        else new_model(
            config.preset,
            tokenizer,
            config.train.seed,
            config.copy_prior,
            config.copy_head,
            gate_view=config.gate_view,
        )
    )
    info = {
        "stage": "pretrain",
        "config": config.model_dump(),
        "tokenizer": str(tokenizer_path),
        "parameters": parameter_count(model),
        "blocks": len(blocks),
        "corpus_tokens": len(blocks) * config.block_size,
        **(record or {}),
    }
    trainer = Trainer(
        model, tokenizer, blocks, config.train, out, name="pretrain", record=info, progress=progress
    )
    return trainer.train(resume=resume)
