"""The copy prior: a from-scratch Llama that continues any span it has already seen, from step 0.

Why: a tool call copies its argument values from the request, and a small model trained from
scratch on 2 CPU cores learns to copy only slowly (README "Train the embedded models": ~10% of
values after 40 minutes). Copying in a transformer is an *induction* circuit: one head moves each
token's predecessor into its position, a second head, at the position being predicted, finds the
earlier place whose predecessor is the current token and copies the token found there. Models
grow it after many millions of tokens. This module writes that circuit into the initial weights
instead, so training starts from a model that already copies and only has to learn *what* to copy.

The circuit, in the residual stream of width d with head size h (d = token part + 2 h):

- token part, dims [0, d - 2h): the token embeddings live here at step 0 (the other dims start at
  zero and are free for training to use);
- layer 0, head 0 attends to the previous position and writes a projection of that token into
  dims [d - 2h, d - h); head 1 does the same for the position two back, into [d - h, d). Their
  queries and keys are constant (the attention biases) rotated by RoPE so that the score peaks at
  an offset of exactly 1 (or 2), on RoPE's high-frequency pairs;
- every head of layer 1 is an induction head on two tokens: its query holds the current and the
  previous token, its key the previous and the one before that of each earlier position, matched
  on RoPE's low-frequency pairs (nearly unrotated, so the match does not depend on the distance);
  its value is that position's token, written back into the token part. Two tokens, not one,
  because the copy-friendly tokenizer makes every space a token: "after a space" alone is
  ambiguous, "after `Kyoto` and a space" is not;
- every other output projection (the other heads, all MLPs, later layers) starts at zero, so the
  circuit is the whole model at step 0; the final norm is scaled so its guesses are confident.

At step 0 such a model repeats the request's tokens in an echo conversation (~90% of tokens
right, teacher-forced) and continues any span once two of its tokens are in place (100% on random
tokens); the second token of a span, matched on one token only, is right less often (15-25%: its
half of the match is noisy), and the first token (which span to copy) is what training must teach. It needs
`attention_bias` (constant queries and keys) and a RoPE base large enough that the low-frequency
pairs barely turn over a 2,048-token context: `config_overrides()` gives both. Tested in
tests/unit/test_copy_prior.py; its effect on training is measured in the README.
"""

from __future__ import annotations

import math
from typing import Any

from toolbench.foundation.errors import UserError

ROPE_THETA = 1e6  # low-frequency pairs turn < 0.5 rad over 2,048 positions at head size 48-64
HIGH_FREQUENCY = 0.05  # radians per position: pairs above this place the offset heads
MATCH_PAIRS = (
    10  # low-frequency RoPE pairs per induction head: half for the current token, half for the previous
)
SHARPNESS = 10.0  # logit margin of an offset head for the right offset over the next best
MATCH = 6.0  # scale of the induction heads' queries and keys
COPY_SCALE = 3.0  # the copied token against the current one, in the residual stream
FINAL_NORM = 4.0  # final RMSNorm weight: at the default embedding scale, confident guesses
# The circuit's own weights, as parameter-name prefixes (the trainer's TrainConfig.hold): the
# attention of layers 0 and 1. SFT's first steps wear it away unless they are held still and then
# released slowly (README "Train the embedded models").
CIRCUIT = ("model.layers.0.self_attn.", "model.layers.1.self_attn.")


def config_overrides() -> dict[str, Any]:
    """The LlamaConfig fields the circuit needs (constant queries and keys; slow RoPE pairs)."""
    return {"attention_bias": True, "rope_parameters": {"rope_theta": ROPE_THETA, "rope_type": "default"}}


def check_shape(config: Any) -> None:
    """One-line errors for a model the circuit does not fit."""
    heads, layers = config.num_attention_heads, config.num_hidden_layers
    if heads < 3 or layers < 2 or config.hidden_size % heads:
        raise UserError(
            f"the copy prior needs >= 3 attention heads and >= 2 layers (this model: {heads} heads, "
            f"{layers} layers, hidden size {config.hidden_size})"
        )
    if getattr(config, "num_key_value_heads", heads) != heads:
        raise UserError("the copy prior needs one key/value head per attention head (no grouped queries)")
    if not getattr(config, "attention_bias", False):
        raise UserError("the copy prior needs attention_bias=True (see copy_prior.config_overrides)")


def _frequencies(config: Any, head_size: int) -> list[float]:
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", ROPE_THETA)
    return [theta ** (-2 * i / head_size) for i in range(head_size // 2)]


def _offset_head(
    attention: Any, head: int, head_size: int, frequencies: list[float], pairs: list[int], offset: int
):
    """Constant query and key (biases only) whose RoPE-rotated product peaks at `offset` back."""
    import torch

    half = head_size // 2
    rows = slice(head * head_size, (head + 1) * head_size)
    attention.q_proj.weight[rows] = 0
    attention.k_proj.weight[rows] = 0
    worst = min(1 - math.cos(frequencies[i]) for i in pairs)  # the margin over a neighbouring offset
    size = math.sqrt(SHARPNESS * math.sqrt(head_size) / len(pairs) / worst)
    query, key = torch.zeros(head_size), torch.zeros(head_size)
    for i in pairs:
        key[i] = size
        query[i] = size * math.cos(-offset * frequencies[i])
        query[i + half] = size * math.sin(-offset * frequencies[i])
    attention.q_proj.bias[rows] = query
    attention.k_proj.bias[rows] = key


def apply_copy_prior(model: Any, seed: int = 0) -> Any:
    """Write the circuit (module doc) into a freshly initialised LlamaForCausalLM, in place."""
    import torch

    config = model.config
    check_shape(config)
    width, heads = config.hidden_size, config.num_attention_heads
    size = width // heads
    half = size // 2
    token_dims = width - 2 * size
    previous, before = token_dims, token_dims + size  # where the offset heads write
    frequencies = _frequencies(config, size)
    high = [i for i in range(half) if frequencies[i] > HIGH_FREQUENCY]
    low = list(range(half))[-min(MATCH_PAIRS, half - len(high)) :]
    if not high or len(low) < 2:
        raise UserError(f"the copy prior needs a larger head size than {size} (RoPE pairs too few)")
    generator = torch.Generator().manual_seed(seed)

    def orthonormal(rows: int, cols: int) -> Any:
        return torch.linalg.qr(torch.randn(cols, cols, generator=generator))[0][:rows]

    with torch.no_grad():
        embeddings = model.model.embed_tokens.weight
        embeddings[:, token_dims:] = 0
        scale = float(embeddings[:, :token_dims].std()) * math.sqrt(token_dims)  # a token's norm
        model.model.norm.weight.fill_(FINAL_NORM)
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.zero_()
            layer.self_attn.o_proj.weight.zero_()
        first, second = model.model.layers[0].self_attn, model.model.layers[1].self_attn
        project = orthonormal(size, token_dims)  # a token, as the offset heads carry it
        for head, (offset, into) in enumerate(((1, previous), (2, before))):
            _offset_head(first, head, size, frequencies, high, offset)
            rows = slice(head * size, (head + 1) * size)
            first.v_proj.weight[rows] = 0
            first.v_proj.weight[rows, :token_dims] = project
            first.o_proj.weight[into : into + size, rows] = torch.eye(size) * scale / math.sqrt(token_dims)
        current_pairs, previous_pairs = low[: len(low) // 2], low[len(low) // 2 :]

        def dims(pairs: list[int]) -> list[int]:
            return [*pairs, *(p + half for p in pairs)]

        copy_basis = orthonormal(token_dims, token_dims)
        for head in range(heads):
            rows = slice(head * size, (head + 1) * size)
            for weight in (second.q_proj.weight, second.k_proj.weight, second.v_proj.weight):
                weight[rows] = 0
            query, key = second.q_proj.weight[rows], second.k_proj.weight[rows]
            mix_current = orthonormal(len(dims(current_pairs)), size)
            mix_previous = orthonormal(len(dims(previous_pairs)), size)
            # the current token against each position's predecessor ...
            query[dims(current_pairs), :token_dims] = MATCH * mix_current @ project
            key[dims(current_pairs), previous : previous + size] = MATCH * mix_current
            # ... and the previous token against the one before that
            query[dims(previous_pairs), previous : previous + size] = MATCH * mix_previous
            key[dims(previous_pairs), before : before + size] = MATCH * mix_previous
            start = (head * size) % token_dims
            basis = copy_basis[start : start + size] if start + size <= token_dims else copy_basis[-size:]
            second.v_proj.weight[rows, :token_dims] = basis
            second.o_proj.weight[:token_dims, rows] = basis.T * COPY_SCALE * token_dims / (heads * size)
    return model
