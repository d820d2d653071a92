"""Resumable sharded caches: the loop behind the teacher cache and the acceptance-head data.

A cache folder holds `index.json` (the identity of what made it, the finished shards, seconds
spent) and one file per shard. Each shard is written atomically by its maker and only then recorded
in the index, so a killed run keeps every recorded shard and redoes only the one it was writing;
a folder made for other settings is refused, never silently mixed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import write_json

INDEX = "index.json"

#: make_shard(first, stop, file) writes `file` (atomically) for items [first, stop) and returns the
#: figures the index keeps for that shard.
ShardMaker = Callable[[int, int, Path], dict[str, Any]]


def read_index(folder: Path) -> dict[str, Any] | None:
    path = folder / INDEX
    return json.loads(path.read_text()) if path.exists() else None


def check_identity(
    folder: Path, identity: dict[str, Any], what: str = "teacher cache"
) -> dict[str, Any] | None:
    """The folder's index if it was made for `identity`, None if there is none; else a UserError
    naming the settings that differ (`what` names the cache in the message)."""
    index = read_index(folder)
    if index is None:
        return None
    if index["identity"] != identity:
        differ = sorted(
            k
            for k in identity.keys() | index["identity"].keys()
            if identity.get(k) != index["identity"].get(k)
        )
        raise UserError(
            f"{what} {folder} was made for other settings ({', '.join(differ)} differ); "
            "pass another --cache-dir or delete it"
        )
    return index


def fill_shards(
    folder: Path,
    identity: dict[str, Any],
    count: int,
    shard_size: int,
    make_shard: ShardMaker,
    what: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Make every shard of `count` items the index does not yet record, in order, and mark the
    cache complete. Returns the index."""
    folder.mkdir(parents=True, exist_ok=True)
    index = check_identity(folder, identity, what) or {"identity": identity, "shards": [], "seconds": 0.0}
    done = {shard["first"] for shard in index["shards"]}
    for first in range(0, count, shard_size):
        if first in done:
            continue
        started = time.perf_counter()
        stop = min(first + shard_size, count)
        name = f"shard-{first // shard_size:05d}.safetensors"
        figures = make_shard(first, stop, folder / name)
        index["shards"].append({"file": name, "first": first, "sequences": stop - first, **figures})
        index["seconds"] = round(index["seconds"] + time.perf_counter() - started, 2)
        write_json(folder / INDEX, index)
        if progress:
            progress(stop, count)
    index["complete"] = True
    write_json(folder / INDEX, index)
    return index


def read_shards(folder: Path, what: str, how_to_fill: str) -> Iterator[dict[str, Any]]:
    """Each shard's tensors, in item order, from a finished cache; a missing or unfinished one is
    refused in one line that says how to fill it."""
    from safetensors.torch import load_file

    index = read_index(folder)
    if index is None or not index.get("complete"):
        raise UserError(f"{what} {folder} is missing or unfinished; {how_to_fill}")
    for shard in sorted(index["shards"], key=lambda s: s["first"]):
        yield load_file(str(folder / shard["file"]))
