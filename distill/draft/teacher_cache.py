"""The offline teacher cache: one pass of the target over the distillation prompts, keeping its
responses (the black-box signal) and its top-k log-probabilities at every response position (the
white-box signal), recorded while generating (no second forward pass).

Layout of a cache folder:
    prompts.jsonl              the prompts (scenario output), written once, read by every process
    index.json                 identity (target, prompts hash, settings) + finished shards
    shard-00000.safetensors    N sequences: prompt/response ids (int32, concatenated + offsets),
                               topk_ids [tokens, k] int32, topk_logprobs [tokens, k] float16

Top-k values are the target's **full-vocabulary** log-probabilities (log_softmax over all ids) at
its k most likely ids, so the losses know the mass outside the top k (see losses.py). Storage per
response token: k · (4 + 2) bytes (120 B at k = 20), against V · 2 bytes for full fp16 rows.

Resumable: a shard is written atomically and then recorded in the index; a killed run keeps every
recorded shard and redoes only the one it was writing. A cache made for other settings is refused
(never silently mixed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from toolbench.distill.training.shards import INDEX, fill_shards, read_index, read_shards
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open


class CacheConfig(BaseModel):
    top_k: int = Field(20, ge=1, description="Teacher log-probabilities kept per response position.")
    temperature: float = Field(0.0, ge=0, description="Target responses: 0 greedy, > 0 sampled.")
    max_new_tokens: int = Field(320, ge=1)
    shard_size: int = Field(256, ge=1, description="Sequences per shard (the unit of resumption).")
    batch_size: int = Field(16, ge=1, description="Sequences generated together.")
    seed: int = 0


@dataclass
class Rollout:
    """One generated answer: its ids (stop token included when `finished`) and, when asked,
    the generator's top-k full-vocabulary log-probabilities at each of its positions."""

    response: list[int]
    finished: bool
    topk_ids: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None


@torch.inference_mode()
def generate_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop: set[int],
    pad_id: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    batch_size: int = 16,
) -> list[Rollout]:
    """Answers to `prompts` (greedy at temperature 0, else plain sampling: no top-k/top-p filter),
    generated in left-padded batches of similar lengths; `top_k` > 0 also records log-probs."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_k=None,
        top_p=None,
        eos_token_id=sorted(stop),
        pad_token_id=pad_id,
        return_dict_in_generate=True,
        output_logits=top_k > 0,
    )
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Rollout | None] = [None] * len(prompts)
    device = model.device
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(prompts[i])
            ids[r, width - n :] = torch.as_tensor(list(prompts[i]), dtype=torch.long)
            mask[r, width - n :] = 1
        torch.manual_seed(seed * 1_000_003 + start)  # sampling: same seed, same answers
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
        )
        new = out.sequences[:, width:].cpu()
        logits = torch.stack(out.logits, 1) if top_k > 0 else None
        for r, i in enumerate(rows):
            tokens = new[r].tolist()
            end = next((j for j, t in enumerate(tokens) if t in stop), None)
            length = len(tokens) if end is None else end + 1
            rollout = Rollout(tokens[:length], end is not None)
            if logits is not None:
                values, top = torch.log_softmax(logits[r, :length].float(), -1).topk(top_k, -1)
                rollout.topk_ids, rollout.topk_logprobs = top.int().cpu(), values.half().cpu()
            results[i] = rollout
    return [r for r in results if r is not None]


@dataclass
class CachedSequence:
    prompt: list[int]
    response: list[int]
    topk_ids: torch.Tensor  # [len(response), k] int32
    topk_logprobs: torch.Tensor  # [len(response), k] float16


def prompts_digest(prompt_ids: Sequence[Sequence[int]]) -> str:
    digest = hashlib.sha256()
    for ids in prompt_ids:
        digest.update(json.dumps(list(ids)).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _save_shard(path: Path, rollouts: list[Rollout], prompts: Sequence[Sequence[int]]) -> int:
    from safetensors.torch import save

    def flat(lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.tensor([0] + [len(x) for x in lists], dtype=torch.int64).cumsum(0)
        values = torch.tensor([t for x in lists for t in x], dtype=torch.int32)
        return values, offsets

    prompt_values, prompt_offsets = flat([list(p) for p in prompts])
    response_values, response_offsets = flat([r.response for r in rollouts])
    tensors = {
        "prompt_ids": prompt_values,
        "prompt_offsets": prompt_offsets,
        "response_ids": response_values,
        "response_offsets": response_offsets,
        "topk_ids": torch.cat([r.topk_ids for r in rollouts]).contiguous(),
        "topk_logprobs": torch.cat([r.topk_logprobs for r in rollouts]).contiguous(),
    }
    data = save(tensors)
    with atomic_open(path) as handle:
        handle.write(data)
    return len(data)


def build_cache(
    target: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    folder: Path,
    config: CacheConfig,
    identity: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fill `folder` with the target's answers and top-k log-probs for every prompt, shard by
    shard, skipping shards an earlier (killed) run finished. Returns the cost report."""
    from toolbench.core.generation import stop_ids

    identity = {
        **identity,
        "prompts": prompts_digest(prompt_ids),
        "count": len(prompt_ids),
        **config.model_dump(),
    }
    stops = stop_ids(target, tokenizer)
    target.eval()

    def make_shard(first: int, stop: int, file: Path) -> dict[str, Any]:
        chunk = prompt_ids[first:stop]
        rollouts = generate_batch(
            target,
            chunk,
            max_new_tokens=config.max_new_tokens,
            stop=stops,
            pad_id=tokenizer.pad_token_id or 0,
            temperature=config.temperature,
            top_k=config.top_k,
            seed=config.seed + first,
            batch_size=config.batch_size,
        )
        return {
            "response_tokens": sum(len(r.response) for r in rollouts),
            "unfinished": sum(not r.finished for r in rollouts),
            "bytes": _save_shard(file, rollouts, chunk),
        }

    fill_shards(folder, identity, len(prompt_ids), config.shard_size, make_shard, "teacher cache", progress)
    return cache_report(folder)


def cache_report(folder: Path) -> dict[str, Any]:
    """What the cache costs: sequences, response tokens, bytes on disk, bytes once loaded, seconds."""
    index = read_index(folder)
    if index is None:
        raise UserError(f"{folder}: not a teacher cache (no {INDEX})")
    k = index["identity"]["top_k"]
    tokens = sum(s["response_tokens"] for s in index["shards"])
    return {
        "sequences": sum(s["sequences"] for s in index["shards"]),
        "response_tokens": tokens,
        "unfinished": sum(s["unfinished"] for s in index["shards"]),
        "top_k": k,
        "disk_bytes": sum(s["bytes"] for s in index["shards"]),
        "topk_memory_bytes": tokens * k * (4 + 2),
        "seconds": index["seconds"],
        "complete": bool(index.get("complete")),
    }


def load_cache(folder: Path) -> list[CachedSequence]:
    """Every cached sequence in prompt order."""
    sequences: list[CachedSequence] = []
    for t in read_shards(folder, "teacher cache", "run `toolbench distill` to fill it"):
        p_off, r_off = t["prompt_offsets"].tolist(), t["response_offsets"].tolist()
        prompts, responses = t["prompt_ids"].tolist(), t["response_ids"].tolist()
        for i in range(len(p_off) - 1):
            a, b = r_off[i], r_off[i + 1]
            sequences.append(
                CachedSequence(
                    prompt=prompts[p_off[i] : p_off[i + 1]],
                    response=responses[a:b],
                    topk_ids=t["topk_ids"][a:b],
                    topk_logprobs=t["topk_logprobs"][a:b],
                )
            )
    return sequences
