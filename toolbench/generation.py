"""Text generation with a local Hugging Face causal LM, shared by the `hf:` backend and
`toolbench serve`, so both produce the same text for the same prompt and settings.

Greedy by default; sampling is seeded per request. Prompts are generated in batches with left
padding; stop strings cut the text before the first stop (OpenAI semantics).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from toolbench.errors import UserError


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def model_fingerprint(model_id: str) -> str:
    """Identity of a local model folder (names, sizes and times of its files), or the hub id."""
    path = Path(model_id)
    if not path.is_dir():
        return model_id
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{path.resolve()}@{digest.hexdigest()[:16]}"


class LocalModel:
    """A causal LM and its tokenizer, ready to render chat prompts and generate."""

    def __init__(self, model_id: str, device: str = "cpu"):
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise UserError("the hf backend needs transformers: pip install 'toolbench[train]'") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_id)
            self.model = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load model {model_id!r}: {str(error).splitlines()[0]}") from None
        self.model_id, self.device = model_id, device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.fingerprint = model_fingerprint(model_id)
        ends = (
            getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
            or self.tokenizer.eos_token_id
        )
        self.end_ids = set(ends if isinstance(ends, list) else [ends]) - {None}
        self.context_length = getattr(self.model.config, "max_position_embeddings", 2048)

    def render_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"{self.model_id} has no chat template; use --mode completion")
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[str], params: GenerationParams, batch_size: int = 8) -> list[Completion]:
        results: list[Completion] = []
        for start in range(0, len(prompts), batch_size):
            results.extend(self._generate_batch(prompts[start : start + batch_size], params))
        return results

    def _generate_batch(self, prompts: list[str], params: GenerationParams) -> list[Completion]:
        import torch

        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        width = batch["input_ids"].shape[1]
        budget = max(1, min(params.max_new_tokens, self.context_length - width))
        options: dict[str, Any] = {"max_new_tokens": budget, "pad_token_id": self.tokenizer.pad_token_id}
        if params.temperature > 0:
            torch.manual_seed(params.seed)
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            options.update(do_sample=False)
        if params.stop:
            options.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            output = self.model.generate(**batch, **options)
        completions = []
        for row, prompt_mask in zip(output[:, width:], batch["attention_mask"], strict=True):
            tokens = row.tolist()
            end = next((i for i, token in enumerate(tokens) if token in self.end_ids), None)
            ended = end is not None
            if ended:
                tokens = tokens[:end]
            while tokens and tokens[-1] == self.tokenizer.pad_token_id:
                tokens.pop()
            text, stopped = cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
            reason = "stop" if (ended or stopped) else "length"
            completions.append(Completion(text, reason, int(prompt_mask.sum()), len(tokens)))
        return completions


@cache
def load_local_model(model_id: str, device: str = "cpu") -> LocalModel:
    return LocalModel(model_id, device)
