"""Target alignment (ToolBench's "model alignment"): SFT on generated tool-use conversations,
loss on assistant tokens only, after a brief generic pretraining stage.

Hong et al. (2025) found a smaller learning rate works better on synthetic data; here that is
`sft_lr_scale` (the SFT learning rate is the pretraining one times this), measured in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from toolbench.distill.training.copy_prior import CIRCUIT
from toolbench.distill.training.data import ConversationConfig
from toolbench.distill.training.pretrain import PretrainConfig
from toolbench.distill.training.trainer import TrainConfig, Trainer, is_trained

SFT_TOOLS = ["cat_api", "home_search", "spreadsheet", "trip_booking", "weather"]


class AlignConfig(BaseModel):
    preset: str = Field("target", description="Model size; the generic stage builds this preset.")
    tools: list[str] = Field(default_factory=lambda: list(SFT_TOOLS))
    samples: int = Field(5000, ge=1, description="Generated training samples (train split) over the tools.")
    data_seed: int = 1
    copy_prior: bool = Field(
        False,
        description="Start from weights that already copy spans from the context (distill/training/copy_prior.py); "
        "train it without the generic stage (pretrain=None), whose text wears the circuit away.",
    )
    copy_head: bool = Field(
        False,
        description="A Llama with a copy head (toolbench/core/pointer_llama.py): each next token is "
        "generated or copied from the context, the model choosing where to copy from.",
    )
    gate_view: bool = Field(
        True,
        description="With copy_head: the copy head's gate also sees what a copy would bring, where a "
        "span ends (`gate_sees_copy` in toolbench/core/pointer_llama.py).",
    )
    pretrain: PretrainConfig | None = Field(
        default_factory=lambda: PretrainConfig(
            train=TrainConfig(max_steps=40, learning_rate=2e-3, warmup_steps=10)
        ),
        description="The brief generic stage; None: SFT starts from a newly built model.",
    )
    conversations: ConversationConfig = Field(default_factory=ConversationConfig)
    sft: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=1.0, learning_rate=2e-3, batch_size=16)
    )
    sft_lr_scale: float = Field(
        1.0, gt=0, description="SFT learning rate multiplier (smaller for synthetic data)."
    )
    echo: float = Field(
        0.0,
        ge=0,
        description="Echo conversations (the assistant repeats the request) per SFT sample: the copy "
        "task that teaches a from-scratch model to take argument values from the request. Off by "
        "default: it pays off over many steps, and cost the 8-minute target its layout (README).",
    )

    @model_validator(mode="after")
    def _one_preset(self) -> AlignConfig:
        """The model is built once (by the generic stage, if any): its preset and copy prior are
        `preset`, `copy_prior`, `copy_head` and `gate_view`, set in one place."""
        if self.pretrain is None:
            return self
        for name in ("preset", "copy_prior", "copy_head", "gate_view"):
            mine, theirs = getattr(self, name), getattr(self.pretrain, name)
            if name in self.pretrain.model_fields_set and theirs != mine:
                raise ValueError(f"pretrain.{name} {theirs!r} differs from {name} {mine!r}")
            setattr(self.pretrain, name, mine)
        return self


def drop_held_requests(source: Path, out: Path, tools: list[str]) -> int:
    """Copy generated samples to `out` without those whose request is a frozen task's (the
    `indist` set is made from the training templates, so a large training set can hold a few of
    its requests verbatim: "new values" must stay new). Returns how many were dropped."""
    import orjson

    from toolbench.core.templating import normalise_query
    from toolbench.foundation.io import atomic_open
    from toolbench.pipelines.tasks import held_queries

    held = held_queries(tools)
    dropped = 0
    with source.open("rb") as lines, atomic_open(out, "wb") as kept:
        for line in lines:
            if normalise_query(orjson.loads(line)["query"]) in held:
                dropped += 1
            else:
                kept.write(line)
    return dropped


def align_target(
    config: AlignConfig,
    tokenizer_path: Path,
    out: Path,
    cache_dir: Path,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """`out/pretrain` (generic stage, skipped when done or not asked for), then SFT into `out` itself."""
    from toolbench.distill.training.copy_probe import indist_probe
    from toolbench.distill.training.data import sft_examples
    from toolbench.distill.training.models import load_causal_lm, load_tokenizer, new_model, parameter_count
    from toolbench.distill.training.pretrain import pretrain
    from toolbench.pipelines.generate import GenerateConfig, generate

    out = Path(out)
    stage_one = out / "pretrain"
    if config.pretrain is not None and not is_trained(stage_one):
        pretrain(config.pretrain, tokenizer_path, stage_one, cache_dir, resume=resume, progress=progress)
    samples = out / "data" / f"sft-{config.samples}-seed{config.data_seed}.jsonl"
    if not samples.exists():
        raw = samples.with_name(samples.name + ".generated")
        if not raw.exists():  # a finished generation survives a kill before the copy below
            generate(
                GenerateConfig(tools=config.tools, n=config.samples, seed=config.data_seed, split="train"),
                raw,
                resume=raw.with_name(raw.name + ".partial").exists(),
            )
        drop_held_requests(raw, samples, config.tools)
        raw.unlink()
    tokenizer = load_tokenizer(tokenizer_path)
    examples, stats = sft_examples(samples, tokenizer, config.conversations, config.echo)
    if config.pretrain is None:
        model = new_model(
            config.preset,
            tokenizer,
            config.sft.seed,
            config.copy_prior,
            config.copy_head,
            gate_view=config.gate_view,
        )
    else:
        model = load_causal_lm(stage_one)
    sft = config.sft.model_copy(update={"learning_rate": config.sft.learning_rate * config.sft_lr_scale})
    if config.copy_prior and not sft.hold and sft.hold_steps + sft.release_steps:
        sft = sft.model_copy(update={"hold": list(CIRCUIT)})
    info = {
        "stage": "sft",
        "config": config.model_dump(),
        "tokenizer": str(tokenizer_path),
        "parameters": parameter_count(model),
        "data": {"samples": str(samples), **stats},
    }
    probe = indist_probe(tokenizer, config.tools)
    info["copy_probe"] = {"tasks": len(probe.examples), "values": probe.values} if probe else None
    trainer = Trainer(
        model, tokenizer, examples, sft, out, name="sft", record=info, progress=progress, probe=probe
    )
    return trainer.train(resume)
