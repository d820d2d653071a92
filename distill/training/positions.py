"""Position skipping: train the distances a model meets in evaluation without sequences that long.

The embedded target trains on conversations of at most 1,024 tokens (attention's cost grows with
the square of the length, and 2 cores pay it), but three retrieved demos make ~40% of its
evaluation prompts longer. Those prompts are where it breaks: on the 47 of 120 in-distribution
tasks whose k = 3 prompt passes 1,024 tokens, the 1,200-step target's answers parse 91% of the time
at k = 0 and 13% at k = 3 (README "Train the embedded models"); RoPE scaling at inference (dynamic
NTK, linear interpolation) did not repair them.

Positional skip-wise training (PoSE, Zhu et al. 2024) trains those distances at the cost of short
rows: in a share of a batch's rows every position from one turn boundary onwards is moved ahead by
a random skip, so the row's positions span up to the model's window while its tokens stay the
same. The skip goes right before a token that starts a turn (`<|user|>` for the target), never
inside one, so every answer keeps its own turn and its request contiguous, as in evaluation; what
grows is the distance from the turns before the skip: the tools list, the system prompt, earlier
demos, which is what a longer prompt changes.

Each row's draw is seeded by (seed, step, example index), so a resumed run and a run on N
processes skip exactly as one process would.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import Any


def skipped_positions(
    input_ids: Any,
    mask: Any,
    *,
    window: int,
    share: float,
    boundary_ids: Collection[int],
    seeds: Sequence[int],
) -> Any:
    """position_ids [B, L] for a right-padded batch: 0, 1, … per row, and in a `share` of the rows
    (each drawn with its own `seeds[row]`) the positions from one of the row's `boundary_ids`
    tokens onwards (not the first token) moved ahead by a skip in [1, window - length], so the
    row's last real token sits at most at window - 1. A row without a boundary, or as long as the
    window, keeps its positions. Padding positions are clamped below the window (nothing attends
    to them or is trained on them)."""
    import torch

    batch, width = input_ids.shape
    positions = torch.arange(width, device=input_ids.device).repeat(batch, 1)
    boundaries = (
        torch.isin(input_ids, torch.tensor(list(boundary_ids), device=input_ids.device)) & mask.bool()
    )
    boundaries[:, 0] = False
    for row in range(batch):
        rng = random.Random(seeds[row])
        if rng.random() >= share:
            continue
        room = window - int(mask[row].sum())
        candidates = boundaries[row].nonzero().flatten().tolist()
        if not candidates or room < 1:
            continue
        split = rng.choice(candidates)
        positions[row, split:] += rng.randint(1, room)
    return positions.clamp_(max=window - 1)
