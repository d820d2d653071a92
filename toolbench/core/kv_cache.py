"""A key/value cache that grows in place, for decoding on any device.

transformers' `DynamicLayer` appends each step's keys and values with `torch.cat`, so every new
token copies the whole cache of every layer: at batch 8 and ~1,950 cached positions the embedded
target copies ~200 MB a step, and on a 2-core CPU a decoding step took 46.4 ms with it against
32.6 ms without, both with `keep_freed_memory` (`python benchmarks/cpu_decode.py`, README
"Measured here"). `GrowingLayer` keeps
a buffer with room to spare, writes the new positions into it and hands out a view of the filled
part: amortised, one copy of each position per doubling.

Everything else is `DynamicLayer`'s: `crop` (speculative decoding), beam reordering and batch
selection replace `keys`/`values` with a shorter view or a new tensor, and the next `update`
notices (the tensors are no longer the buffer's prefix) and starts a new buffer from them.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_ROOM = 64  # positions a new buffer holds beyond what it needs, at least


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose `update` writes into a buffer with spare room instead of `torch.cat`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        needed = filled + key_states.shape[-2]
        if not self._holds(filled, key_states, value_states, needed):
            self._buffers = self._new_buffers(filled, key_states, value_states, needed)
        keys, values = self._buffers
        keys[..., filled:needed, :] = key_states
        values[..., filled:needed, :] = value_states
        self.keys, self.values = keys[..., :needed, :], values[..., :needed, :]
        return self.keys, self.values

    def reset(self) -> None:
        self._buffers = None
        super().reset()

    def _holds(self, filled: int, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> bool:
        """Whether `keys`/`values` are still the buffers' first `filled` positions (nothing replaced
        them: a crop keeps the prefix) and the buffers fit the new states and have room for them."""
        if self._buffers is None or filled == 0:
            return False
        for current, buffer, new in zip(
            (self.keys, self.values), self._buffers, (key_states, value_states), strict=True
        ):
            if (
                current.data_ptr() != buffer.data_ptr()
                or current.stride() != buffer.stride()
                or buffer.shape[:-2] != new.shape[:-2]
                or buffer.shape[-1] != new.shape[-1]
                or buffer.dtype != new.dtype
                or buffer.shape[-2] < needed
            ):
                return False
        return True

    def _new_buffers(
        self, filled: int, key_states: torch.Tensor, value_states: torch.Tensor, needed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Buffers for twice what is needed (at least MIN_ROOM more), holding the cached positions."""
        room = needed + max(needed, MIN_ROOM)
        buffers = []
        for current, new in ((self.keys, key_states), (self.values, value_states)):
            buffer = new.new_empty(*new.shape[:-2], room, new.shape[-1])
            if filled:
                buffer[..., :filled, :] = current
            buffers.append(buffer)
        return buffers[0], buffers[1]


def growing_cache(model: Any) -> DynamicCache | None:
    """A `DynamicCache` for `model` whose plain attention layers are `GrowingLayer`s (sliding-window
    and other layer types as transformers builds them); None where `generate` should choose the
    cache itself (encoder-decoders, models that cannot use a `DynamicCache`)."""
    config = model.config
    supports = getattr(model, "_supports_default_dynamic_cache", None)
    if getattr(config, "is_encoder_decoder", False) or supports is None or not supports():
        return None
    cache = DynamicCache(config=config)
    for index, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer:
            cache.layers[index] = GrowingLayer()
    return cache
