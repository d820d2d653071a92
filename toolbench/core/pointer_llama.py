"""A Llama with a copy head: the next token is either generated from the vocabulary or copied
from the context, with the model choosing between them at every position.

Why: a function call's argument values are mostly spans of the user's request ("Charlotte",
"13095", "2026-03-14"). A plain decoder can only copy through an induction circuit that a
from-scratch model grows after many millions of tokens; on two CPU cores it never did within the
training budget (README "Train the embedded models"). A copy head makes copying a matter of
choosing *where* to copy from, which a small model learns in a few hundred steps. This is the
pointer-generator of See et al. (2017) (CopyNet, Gu et al. 2016) on a decoder-only model:

    p(next) = g_vocab * softmax(lm_head(h_t))
            + g_here  * sum_s a_here(t, s) [x_s = next]        (start a span: copy token s)
            + g_next  * sum_s a_next(t, s) [x_{s+1} = next]    (continue a span: copy what followed s)

`a_here` and `a_next` are single-head attentions from the last hidden state over the context
(the prompt and what was generated so far); `a_next` also gets a learned bonus where token s and
its predecessor equal the current token and its predecessor, so continuing a copied span needs
nothing learned. `g` is a softmax gate on h_t and, with `gate_sees_copy`, on what each copy
would bring: the attended source's hidden state (start) and those of the two source tokens after
the attended one (continue). That is where a span ends: after "Mexico City" in "weather in Mexico
City at the moment" the continuation is " at", which h_t alone can only learn to look up through
the induction circuit the copy head exists to spare (without it, a value running on past its end,
`"city": "Mexico City at the moment"`, was the commonest failure of the first 30-minute targets
in distribution). The output `logits` are log p(next), so every
caller that takes a softmax or a cross-entropy of a causal LM's logits (training, generation,
speculative decoding, distillation) works unchanged.

Generation keeps the copy head's keys and the context's token ids as one extra layer of the
`DynamicCache`, so `cache.crop`, beam reordering and batch selection treat them like the
attention layers' keys and values. Loading needs this module imported (it registers the model
type with `AutoConfig`/`AutoModelForCausalLM`); toolbench's loaders do that.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from toolbench.core.kv_cache import GrowingLayer

MODEL_TYPE = "toolbench_pointer_llama"
_NO_TOKEN = -1  # "no predecessor" in the match features: never equal to a real id


@strict
class PointerLlamaConfig(LlamaConfig):
    """LlamaConfig plus the copy head's width."""

    model_type = MODEL_TYPE
    pointer_dim: int = 64
    # Copy only from before the latest token with this id (the assistant turn's opening marker):
    # an answer copies from the request, the tools and the demos, never from itself, which in
    # greedy decoding turned a repeated pair of tokens into an endless loop. None: anywhere before.
    copy_boundary_id: int | None = None
    # Never copy these (the special tokens: copying the user turn's end marker ended answers early).
    copy_exclude_ids: list[int] | None = None
    # The gate also sees the copy attentions' context (module docstring); False in folders saved
    # before it existed, which then load and behave exactly as they were trained.
    gate_sees_copy: bool = False


class CopyHead(nn.Module):
    """The two copy attentions, their match bonuses and the three-way gate."""

    def __init__(
        self,
        hidden_size: int,
        dim: int,
        boundary_id: int | None = None,
        exclude_ids: list[int] | None = None,
        gate_sees_copy: bool = False,
    ):
        super().__init__()
        self.dim = dim
        self.gate_sees_copy = gate_sees_copy
        self.boundary_id = boundary_id
        # A plain list, not a buffer: `from_pretrained` builds a model on the meta device and
        # materialises what no checkpoint holds as uninitialised memory, so a non-persistent buffer
        # loaded as different garbage in every process (special tokens copyable, random ones not).
        self.exclude_ids = list(exclude_ids or [])
        self.here_query = nn.Linear(hidden_size, dim, bias=False)
        self.here_key = nn.Linear(hidden_size, dim, bias=False)
        self.next_query = nn.Linear(hidden_size, dim, bias=False)
        self.next_key = nn.Linear(hidden_size, dim, bias=False)
        self.gate = nn.Linear(hidden_size, 3)
        if gate_sees_copy:
            self.source = nn.Linear(hidden_size, dim, bias=False)  # what a source position offers
            # the gate's view of [start source, continue source +1, +2]; zero at first: no change
            self.gate_context = nn.Linear(3 * dim, 3, bias=False)
        # score bonus for [x_s = x_t] and [x_{s-1} = x_{t-1}] in the continue-a-span attention
        self.match = nn.Parameter(torch.full((2,), 4.0))

    def reset_match(self) -> None:
        """A new head's match bonuses, neutral gate and zero view of the copies. Through
        transformers' init functions, which leave a weight loaded from a folder alone: with plain
        `fill_` every loaded copy-head model had its learned bonuses and gate bias set back to
        these values (`_init_weights` runs after loading)."""
        from transformers import initialization as init

        with torch.no_grad():
            init.constant_(self.match, 4.0)
            init.zeros_(self.gate.bias)
            if self.gate_sees_copy:
                init.zeros_(self.gate_context.weight)

    def keys(self, hidden: torch.Tensor) -> torch.Tensor:
        """What each context position keeps for later queries (cached in generation): the two
        attentions' keys and, with `gate_sees_copy`, the source vector the gate reads."""
        parts = [self.here_key(hidden), self.next_key(hidden)]
        if self.gate_sees_copy:
            parts.append(self.source(hidden))
        return torch.cat(parts, dim=-1)

    def mix(
        self,
        hidden: torch.Tensor,
        vocab_logits: torch.Tensor,
        keys: torch.Tensor,
        ids: torch.Tensor,
        valid: torch.Tensor,
        positions: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log p(next) at the query positions: [B, m, V], or with `targets` [B, m] only
        log p(target) [B, m], without building the copy distributions over the vocabulary (the
        training path: a third of the time).

        hidden [B, m, H] and vocab_logits [B, m, V]: the queries; keys [B, L, 2d], ids [B, L],
        valid [B, L] (False at padding): the whole context; positions [m] or, where each row asks
        at its own positions, [B, m]: each query's index in it.
        """
        batch, length = ids.shape
        here_weights, onward_weights = self._attend(hidden, keys, ids, valid, positions)
        gate_logits = self.gate(hidden).float()
        if self.gate_sees_copy:
            gate_logits = gate_logits + self._copy_context(keys, here_weights, onward_weights, positions)
        gate = torch.softmax(gate_logits, dim=-1)
        # a row with nowhere to copy from (the first token) gives its copy share to the vocabulary
        gate = gate * torch.stack(
            [torch.ones_like(gate[..., 0]), here_weights.sum(-1), onward_weights.sum(-1)], -1
        )
        gate = gate / gate.sum(-1, keepdim=True)
        following = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1)  # x_{s+1}; the last is masked out
        if targets is not None:
            vocab = torch.log_softmax(vocab_logits.float(), dim=-1)
            vocab = vocab.gather(-1, targets.clamp_min(0)[..., None])[..., 0].exp()
            here = (here_weights * (ids[:, None, :] == targets[:, :, None])).sum(-1)
            onward = (onward_weights * (following[:, None, :] == targets[:, :, None])).sum(-1)
            probs = gate[..., 0] * vocab + gate[..., 1] * here + gate[..., 2] * onward
            return torch.log(probs.clamp_min(1e-30))
        probs = gate[..., 0:1] * torch.softmax(vocab_logits.float(), dim=-1)
        m = hidden.shape[1]
        probs = probs.scatter_add(-1, ids[:, None, :].expand(batch, m, length), gate[..., 1:2] * here_weights)
        probs = probs.scatter_add(
            -1, following[:, None, :].expand(batch, m, length), gate[..., 2:3] * onward_weights
        )
        return torch.log(probs.clamp_min(1e-30))

    def _copy_context(
        self,
        keys: torch.Tensor,
        here_weights: torch.Tensor,
        onward_weights: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        """The gate's logits from what the copies would bring, [B, m, 3]: the attended start
        source, and the two source positions after the attended continue source (s + 1 is the token
        a continuation copies, s + 2 what follows it, where a span's end shows). s + 2 counts only
        where it is not after the query (s = t - 1 would otherwise read the future in training)."""
        sources = keys[..., 2 * self.dim :].float()  # [B, L, d]
        length = sources.shape[1]
        positions = positions.expand(sources.shape[0], -1)
        zero = sources.new_zeros(sources.shape[0], 2, self.dim)
        after = torch.cat([sources, zero], dim=1)[:, 1 : length + 1]
        after_next = torch.cat([sources, zero], dim=1)[:, 2 : length + 2]
        seen = torch.arange(length, device=keys.device) + 2 <= positions[..., None]  # [B, m, L]
        start = torch.bmm(here_weights, sources)
        onward = torch.bmm(onward_weights, after)
        onward_next = torch.bmm(onward_weights * seen, after_next)
        return self.gate_context(torch.cat([start, onward, onward_next], dim=-1))

    def _attend(
        self,
        hidden: torch.Tensor,
        keys: torch.Tensor,
        ids: torch.Tensor,
        valid: torch.Tensor,
        positions: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The start-a-span and continue-a-span attention weights, [B, m, L] each."""
        batch, length = ids.shape
        positions = positions.expand(batch, -1)
        scale = 1.0 / math.sqrt(self.dim)
        here_keys, next_keys = keys.float().split(self.dim, dim=-1)[:2]
        here = torch.einsum("bmd,bld->bml", self.here_query(hidden).float(), here_keys) * scale
        onward = torch.einsum("bmd,bld->bml", self.next_query(hidden).float(), next_keys) * scale

        sources = torch.arange(length, device=ids.device)
        previous = torch.cat([ids.new_full((batch, 1), _NO_TOKEN), ids[:, :-1]], dim=1)  # x_{s-1}
        current = ids.gather(1, positions)  # x_t
        current_previous = previous.gather(1, positions)  # x_{t-1}
        onward = onward + self.match[0] * (ids[:, None, :] == current[:, :, None])
        onward = onward + self.match[1] * (previous[:, None, :] == current_previous[:, :, None])

        causal = sources <= positions[..., None]  # [B, m, L]: s <= t
        excluded = torch.tensor(self.exclude_ids, dtype=ids.dtype, device=ids.device)
        copyable = valid & ~torch.isin(ids, excluded)
        here_allowed = causal & copyable[:, None, :]
        following = torch.cat([copyable[:, 1:], copyable.new_zeros((batch, 1))], dim=1)
        onward_allowed = (sources < positions[..., None]) & (valid & following)[:, None, :]
        if self.boundary_id is not None:  # only from before the latest boundary, where there is one
            marks = torch.where(ids == self.boundary_id, sources, torch.full_like(ids, -1))
            limit = marks.cummax(dim=1).values.gather(1, positions)  # [B, m]
            before = (sources[None, None, :] < limit[:, :, None]) | (limit[:, :, None] < 0)
            here_allowed = here_allowed & before
            onward_allowed = onward_allowed & before
        return _masked_softmax(here, here_allowed), _masked_softmax(onward, onward_allowed)


def _masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the allowed sources; all zeros where a row allows none (the first token)."""
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


class PointerLlamaForCausalLM(LlamaForCausalLM):
    """LlamaForCausalLM whose logits mix generating and copying (module docstring)."""

    config_class = PointerLlamaConfig

    def __init__(self, config: PointerLlamaConfig):
        super().__init__(config)
        self.copy_head = CopyHead(
            config.hidden_size,
            config.pointer_dim,
            config.copy_boundary_id,
            config.copy_exclude_ids,
            config.gate_sees_copy,
        )
        self.post_init()
        self.copy_head.reset_match()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CopyHead):
            module.reset_match()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if input_ids is None:
            raise ValueError("a copy-head model needs input_ids (it copies tokens, not embeddings)")
        cache = cache if cache is not None else past_key_values
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        cache = outputs.cache if outputs.cache is not None else cache
        keys, ids = self.copy_head.keys(hidden), input_ids
        past = 0
        if cache is not None:
            layer = self._copy_layer(cache)
            past = layer.get_seq_length()
            stored_keys, stored_ids = layer.update(keys[:, None], input_ids[:, None, :, None].float())
            keys, ids = stored_keys[:, 0], stored_ids[:, 0, :, 0].long()
        valid = torch.ones_like(ids, dtype=torch.bool)
        if attention_mask is not None and attention_mask.dim() == 2:
            valid = attention_mask[:, -ids.shape[1] :].bool()
        if labels is not None:  # training: log p of each next label only, no [B, T, V] mixture
            if not (isinstance(logits_to_keep, int) and logits_to_keep == 0):
                raise ValueError("labels need logits for every position (logits_to_keep=0)")
            return self._labelled(hidden, keys, ids, valid, past, labels, kwargs, outputs)
        new = input_ids.shape[1]
        if isinstance(logits_to_keep, int):
            kept = torch.arange(new - logits_to_keep if logits_to_keep else 0, new, device=hidden.device)
        else:
            kept = logits_to_keep.to(hidden.device)
        queries = hidden[:, kept]
        logits = self.copy_head.mix(queries, self.lm_head(queries), keys, ids, valid, kept + past)
        loss = None
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _labelled(self, hidden, keys, ids, valid, past, labels, kwargs, outputs):
        """The causal-LM loss as `LlamaForCausalLM` gives it (labels shifted inside; -100 skipped;
        mean, or sum / `num_items_in_batch`), with `logits` None. Only the labelled positions go
        through lm_head and the copy head (SFT labels the answers alone, ~40% of its tokens), each
        row's in order and padded to the row with most; and only log p(label) is computed, without
        scattering the copy attentions over the vocabulary."""
        targets = torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), -100)], dim=1)
        counted = targets != -100
        width = max(int(counted.sum(1).max()), 1)
        # a stable sort puts each row's labelled positions first, in their order
        positions = torch.sort((~counted).to(torch.uint8), dim=1, stable=True).indices[:, :width]
        chosen = targets.gather(1, positions)
        queries = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        log_probs = self.copy_head.mix(
            queries, self.lm_head(queries), keys, ids, valid, positions + past, targets=chosen
        )
        kept = chosen != -100
        total = (log_probs * kept).sum().neg()
        items = kwargs.get("num_items_in_batch")
        loss = total / (items if items is not None else kept.sum().clamp_min(1))
        return CausalLMOutputWithPast(loss=loss, logits=None, cache=outputs.cache)

    def _copy_layer(self, cache: Any) -> DynamicLayer:
        """The cache layer after the attention layers' that holds the copy head's keys and ids."""
        index = self.config.num_hidden_layers
        while len(cache.layers) <= index:
            cache.layers.append(GrowingLayer())
        return cache.layers[index]


def register() -> None:
    """Make `AutoConfig`/`AutoModelForCausalLM.from_pretrained` know the copy-head model type."""
    try:
        AutoConfig.register(MODEL_TYPE, PointerLlamaConfig)
        AutoModelForCausalLM.register(PointerLlamaConfig, PointerLlamaForCausalLM)
    except ValueError:  # already registered (module reloaded)
        pass


register()
