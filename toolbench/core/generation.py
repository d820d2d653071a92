"""Text generation with a local Hugging Face causal LM, shared by the `hf:` backend and
`toolbench serve`, so both produce the same text for the same prompt and settings.

Greedy by default; sampling is seeded per request. Prompts are generated in batches with left
padding; stop strings cut the text before the first stop (OpenAI semantics). Given each prompt's
tools, decoding is guided: only answers that parse and fit those tools (`toolbench.core.guided`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from toolbench.core.chat_messages import (
    assistant_calls,
    call_id,
    has_parallel,
    split_parallel,
    template_messages,
    tool_result,
)
from toolbench.foundation.devices import placement
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Call

# What a chat template raises on a message shape it does not take: its own raise_exception
# (a TemplateError), or a type error from concatenating a missing field.
TEMPLATE_FAILURES = (TemplateError, TypeError, ValueError, KeyError, IndexError)
# Llama 3.2's template writes today's date into every prompt unless given one: a fixed date keeps
# prompts, cache keys and scores the same from one day to the next (this is Llama 3.1's default).
PROMPT_DATE = "26 Jul 2024"
PROBE_PARAMS = {"type": "object", "properties": {}, "required": []}


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


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Ids that end an answer: the generation config's end tokens (Llama lists several:
    `<|eot_id|>`, `<|eom_id|>`, `<|end_of_text|>`), else the tokenizer's end token."""
    ends = getattr(getattr(model, "generation_config", None), "eos_token_id", None) or tokenizer.eos_token_id
    return set(ends if isinstance(ends, list) else [ends]) - {None}


def content_digest(files: list[Path]) -> str:
    """A short digest of files' names, sizes and first and last MiB: any retraining changes it,
    copying or touching the files does not."""
    digest = hashlib.sha256()
    block = 1 << 20
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}\n".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(block))
            if size > 2 * block:
                handle.seek(-block, 2)
                digest.update(handle.read())
    return digest.hexdigest()[:16]


MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt")


def model_fingerprint(model_id: str) -> str:
    """Identity of a local model folder by content (weights, config, tokenizer, chat template: its
    top-level model files), or the hub id: answers cached for one model are never served for
    another, and a copied folder keeps its cache."""
    path = Path(model_id)
    if not path.is_dir():
        return model_id
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES)
    return f"folder@{content_digest(files)}"


class LocalModel:
    """A causal LM and its tokenizer, ready to render chat prompts and generate."""

    def __init__(self, model_id: str, device: str = "auto", dtype: str = "auto"):
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise UserError("the hf backend needs transformers: pip install 'toolbench[train]'") from None
        import toolbench.core.pointer_llama  # noqa: F401  (registers the copy-head model type)

        device, torch_dtype = placement(device, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_id)
            self.model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype).to(device).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load model {model_id!r}: {str(error).splitlines()[0]}") from None
        self.model_id, self.device, self.dtype = model_id, device, torch_dtype
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # answers depend on the precision, so the cache key does too (float32 keeps the bare digest)
        precision = str(torch_dtype).removeprefix("torch.")
        self.fingerprint = model_fingerprint(model_id) + ("" if precision == "float32" else f"@{precision}")
        # Tokens decoded out of an answer: padding and the sequence markers. Every other special
        # token stays, because families mark tool calls with them (`<|python_tag|>`, `[TOOL_CALLS]`,
        # `<tool_call>`) and the call parsers need to see them.
        self.silent_ids = {
            getattr(self.tokenizer, f"{name}_token_id", None) for name in ("pad", "bos", "eos", "unk")
        } - {None}
        self.end_ids = stop_ids(self.model, self.tokenizer)
        self.context_length = getattr(self.model.config, "max_position_embeddings", 2048)

    def render_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The prompt text of a conversation, through the model's own chat template: arguments as
        objects, and multi-call turns split one call per turn if this template refuses them
        (`toolbench.core.chat_messages`). A template that still refuses is a one-line UserError
        carrying the template's own message."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"{self.model_id} has no chat template; use --mode completion")
        messages = template_messages(messages)
        if has_parallel(messages) and not self.allows_parallel_calls:
            messages = split_parallel(messages)
        try:
            return self._apply_template(messages, tools)
        except TEMPLATE_FAILURES as error:
            raise UserError(f"{self.model_id}: the chat template refused the conversation: {error}") from None

    def _apply_template(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            tokenize=False,
            add_generation_prompt=True,
            date_string=PROMPT_DATE,
        )

    @cached_property
    def allows_parallel_calls(self) -> bool:
        """Whether the template renders one assistant turn holding two calls (Llama 3.1's raises
        "only supports single tool-calls at once"): found by rendering, not by the model's name."""
        calls = [Call.trusted("first", {"a": 1}), Call.trusted("second", {"b": 2})]
        ids = [call_id("probe", i) for i in range(2)]
        probe = [
            {"role": "user", "content": "probe"},
            assistant_calls(calls, ids),
            *(tool_result(c, i, "ok") for c, i in zip(calls, ids, strict=True)),
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "probe"},
        ]
        tools = [
            {
                "type": "function",
                "function": {"name": c.name, "description": c.name, "parameters": PROBE_PARAMS},
            }
            for c in calls
        ]
        try:
            self._apply_template(probe, tools)
        except TEMPLATE_FAILURES:
            return False
        return True

    def decode(self, tokens: list[int]) -> str:
        """An answer's text with the family's tool-call markers kept (see `silent_ids`)."""
        return self.tokenizer.decode(
            [t for t in tokens if t not in self.silent_ids], skip_special_tokens=False
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @cached_property
    def call_guide(self) -> Any:
        """Guided decoding's view of this tokenizer (built on first use: a walk over the vocabulary)."""
        try:
            from toolbench.core.guided import CALL_OPEN, CallGuide
        except ImportError:
            raise UserError("--guided needs lm-format-enforcer: pip install 'toolbench[eval]'") from None
        if CALL_OPEN not in str(getattr(self.tokenizer, "chat_template", "") or ""):
            raise UserError(
                f"{self.model_id}: --guided writes {CALL_OPEN} JSON blocks (toolbench, Hermes, Qwen) "
                "and this model's chat template does not use them"
            )
        return CallGuide(self.tokenizer, self.end_ids)

    def batches(self, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[list[int]]:
        """Indices of `prompts` grouped for generation: by length, so a batch pads little, and
        every prompt whose answer would pass the context with the full budget in a batch of its
        own. One batch has one budget, the context left after its widest prompt: with the
        embedded target (2,048 positions) a three-demo prompt of 1,900 tokens left every other
        answer of its batch 148 tokens, which cut short answers that had room of their own."""
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        fits = [i for i in order if lengths[i] + max_new_tokens <= self.context_length]
        tight = [[i] for i in order if lengths[i] + max_new_tokens > self.context_length]
        return [fits[start : start + batch_size] for start in range(0, len(fits), batch_size)] + tight

    def generate(
        self,
        prompts: list[str],
        params: GenerationParams,
        batch_size: int = 8,
        guides: list[list[dict[str, Any]]] | None = None,
    ) -> list[Completion]:
        """Completions of `prompts`; with `guides` (each prompt's tools), guided decoding."""
        results: list[Completion] = []
        for start in range(0, len(prompts), batch_size):
            rows = slice(start, start + batch_size)
            results.extend(self._generate_batch(prompts[rows], params, guides[rows] if guides else None))
        return results

    def _generate_batch(
        self, prompts: list[str], params: GenerationParams, guides: list[list[dict[str, Any]]] | None
    ) -> list[Completion]:
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
        if guides is not None:
            options.update(prefix_allowed_tokens_fn=self.call_guide.prefix_allowed_tokens_fn(guides))
        from toolbench.core.kv_cache import growing_cache

        cache = growing_cache(self.model)
        if cache is not None:
            options["cache"] = cache
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
            text, stopped = cut_at_stop(self.decode(tokens), params.stop)
            reason = "stop" if (ended or stopped) else "length"
            completions.append(Completion(text, reason, int(prompt_mask.sum()), len(tokens)))
        return completions


@cache
def load_local_model(model_id: str, device: str = "auto", dtype: str = "auto") -> LocalModel:
    return LocalModel(model_id, device, dtype)
