"""Named tiny Llama configurations for the embedded default, and loading any causal LM with
errors a user can act on.

The presets are sized for a 2-core CPU (see docs in README "Models"): the target is ~6x the
draft's parameters and ~5x its per-token decode cost, the ratio that lets speculative decoding
pay off, while still training in minutes. Real users pass any HF model id or folder instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from toolbench.core.generation import content_digest
from toolbench.foundation.errors import UserError

ASSISTANT_MARKER = "<|assistant|>"  # opens an assistant turn in distill/training/chat_template.jinja


class ModelPreset(BaseModel):
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True


PRESETS: dict[str, ModelPreset] = {
    # the embedded target: 6 layers x 256 wide, ~6 M parameters with a 4 k vocabulary
    "target": ModelPreset(hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=4),
    # the embedded draft: 2 layers x 128 wide, ~1 M parameters, same vocabulary
    "draft": ModelPreset(hidden_size=128, intermediate_size=384, num_hidden_layers=2, num_attention_heads=2),
    # for tests: trains in seconds
    "tiny": ModelPreset(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
}


def new_model(
    preset: str,
    tokenizer: Any,
    seed: int = 0,
    copy_prior: bool = False,
    copy_head: bool = False,
    gate_view: bool = True,
):
    """A randomly initialised LlamaForCausalLM of a named preset, sized to the tokenizer; with
    `copy_prior`, one that already copies spans from its context (`distill/training/copy_prior.py`);
    with `copy_head`, a Llama whose next token can be copied from the context
    (`toolbench/core/pointer_llama.py`), whose gate sees what a copy would bring unless not
    `gate_view`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from toolbench.core.pointer_llama import PointerLlamaConfig, PointerLlamaForCausalLM

    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    extra: dict[str, Any] = {}
    if copy_prior:
        from toolbench.distill.training.copy_prior import config_overrides

        extra = config_overrides()
    config_class, model_class = (
        (PointerLlamaConfig, PointerLlamaForCausalLM) if copy_head else (LlamaConfig, LlamaForCausalLM)
    )
    if copy_head:
        extra.update(copy_head_settings(tokenizer), gate_sees_copy=gate_view)
    config = config_class(
        vocab_size=len(tokenizer),
        num_key_value_heads=spec.num_attention_heads,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec.model_dump(),
        **extra,
    )
    if copy_prior:
        from toolbench.distill.training.copy_prior import check_shape

        check_shape(config)  # before building: a one-line error for a preset the circuit does not fit
    torch.manual_seed(seed)
    model = model_class(config)
    if copy_prior:
        from toolbench.distill.training.copy_prior import apply_copy_prior

        apply_copy_prior(model, seed)
    return model


def copy_head_settings(tokenizer: Any) -> dict[str, Any]:
    """The copy head's boundary (the assistant turn's marker of the chat template) and the ids it
    never copies (the special tokens), from the tokenizer."""
    boundary = None
    vocabulary = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    if ASSISTANT_MARKER in vocabulary:
        boundary = vocabulary[ASSISTANT_MARKER]
    return {
        "copy_boundary_id": boundary,
        "copy_exclude_ids": sorted(getattr(tokenizer, "all_special_ids", [])),
    }


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a tokenizer folder or hub id ({str(error).splitlines()[0]})") from None


def save_tokenizer(tokenizer: Any, folder: str | Path) -> None:
    """`save_pretrained`, then the folder made loadable by transformers 4.5x too (the range vLLM
    pins) as well as 5.x: 5.x names the class "TokenizersBackend", which 4.x does not know, while
    "PreTrainedTokenizerFast" is the same fast tokenizer to both; 5.x lists extra special tokens
    under `extra_special_tokens`, a key 4.x reads as a dict of named tokens and fails on, while
    both read the list under `additional_special_tokens`."""
    tokenizer.save_pretrained(str(folder))
    path = Path(folder) / "tokenizer_config.json"
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):  # 4.x: a dict of named tokens there
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    for key in ("is_local", "local_files_only"):  # where it was loaded from, not what it is
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def weights_fingerprint(path: str | Path) -> str:
    """A short digest of a model folder's weight files (names, sizes, first and last MiB of each):
    any retraining changes it, copying the folder does not. A hub id is fingerprinted by name."""
    folder = Path(path)
    if not folder.is_dir():
        return f"id:{path}"
    files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    if not files:
        raise UserError(f"{folder}: no weight files (*.safetensors, *.bin) to fingerprint")
    return content_digest(files)


def load_config(path: str | Path, what: str = "model"):
    """`AutoConfig.from_pretrained` (no weights loaded), with a one-line error for a wrong path."""
    from transformers import AutoConfig

    import toolbench.core.pointer_llama  # noqa: F401  (registers the copy-head model type)

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise UserError(
            f"{what} {path}: not a model folder or hub id ({str(error).splitlines()[0]})"
        ) from None


def load_causal_lm(path: str | Path, what: str = "model", dtype: Any = None):
    """`AutoModelForCausalLM.from_pretrained` (in `dtype`, a torch dtype; None: as saved, float32
    for ours), with one-line errors for the usual mistakes."""
    from transformers import AutoModelForCausalLM

    import toolbench.core.pointer_llama  # noqa: F401  (registers the copy-head model type)

    config = load_config(path, what)
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    except ValueError:
        kind = getattr(config, "model_type", "?")
        raise UserError(f"{what} {path}: a {kind!r} model is not a causal language model") from None
    except OSError as error:
        raise UserError(f"{what} {path}: cannot load weights ({str(error).splitlines()[0]})") from None


def check_same_vocabulary(target_tokenizer: Any, draft_tokenizer: Any, target: str, draft: str) -> None:
    """Draft and target must map every token to the same id: a loss or an acceptance test across
    different vocabularies compares unrelated distributions and silently means nothing."""
    a, b = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    if a != b:
        only_a, only_b = len(a.keys() - b.keys()), len(b.keys() - a.keys())
        moved = sum(1 for token in a.keys() & b.keys() if a[token] != b[token])
        raise UserError(
            f"draft {draft} and target {target} have different vocabularies ({len(b)} vs {len(a)} tokens; "
            f"{only_a} only in the target, {only_b} only in the draft, {moved} with other ids); "
            "a draft must share its target's tokenizer"
        )


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
