"""The resumable shard loop both sharded caches run on."""

from __future__ import annotations

import json

import pytest

from toolbench.distill.training.shards import INDEX, fill_shards
from toolbench.foundation.errors import UserError


class Killed(Exception):
    pass


def maker(calls: list[tuple[int, int]], die_after: int | None = None):
    def make_shard(first: int, stop: int, file):
        if die_after is not None and len(calls) == die_after:
            file.write_text("half")  # a shard being written when the process died
            raise Killed
        calls.append((first, stop))
        file.write_text(json.dumps(list(range(first, stop))))
        return {"items": stop - first}

    return make_shard


def test_a_killed_fill_redoes_only_the_unrecorded_shards(tmp_path):
    identity = {"model": "m", "count": 10}
    calls: list[tuple[int, int]] = []
    with pytest.raises(Killed):
        fill_shards(tmp_path, identity, 10, 4, maker(calls, die_after=2), "test cache")
    index = json.loads((tmp_path / INDEX).read_text())
    assert [s["first"] for s in index["shards"]] == [0, 4] and not index.get("complete")

    resumed: list[tuple[int, int]] = []
    ticks: list[tuple[int, int]] = []
    index = fill_shards(
        tmp_path, identity, 10, 4, maker(resumed), "test cache", lambda a, b: ticks.append((a, b))
    )
    assert resumed == [(8, 10)]  # the half-written last shard is made again, the others are kept
    assert ticks == [(10, 10)]
    assert index["complete"] and index["identity"] == identity
    assert [(s["file"], s["first"], s["sequences"], s["items"]) for s in index["shards"]] == [
        ("shard-00000.safetensors", 0, 4, 4),
        ("shard-00001.safetensors", 4, 4, 4),
        ("shard-00002.safetensors", 8, 2, 2),
    ]
    assert json.loads((tmp_path / "shard-00002.safetensors").read_text()) == [8, 9]
    assert fill_shards(tmp_path, identity, 10, 4, maker(again := []), "test cache")["complete"]
    assert again == []  # a finished cache makes nothing


def test_a_cache_made_for_other_settings_is_refused(tmp_path):
    fill_shards(tmp_path, {"model": "m", "top_k": 20}, 3, 2, maker([]), "test cache")
    with pytest.raises(UserError, match=r"test cache .* was made for other settings \(top_k differ\)"):
        fill_shards(tmp_path, {"model": "m", "top_k": 8}, 3, 2, maker([]), "test cache")


def test_read_shards_gives_tensors_in_item_order_and_refuses_an_unfinished_cache(tmp_path):
    import torch
    from safetensors.torch import save_file

    from toolbench.distill.training.shards import read_shards

    def make_shard(first: int, stop: int, file):
        save_file({"items": torch.arange(first, stop)}, str(file))
        return {}

    with pytest.raises(Killed):
        fill_shards(tmp_path, {"n": 5}, 5, 2, lambda a, b, f: make_shard(a, b, f) if a < 2 else _die(), "x")
    with pytest.raises(UserError, match=r"^test cache .* is missing or unfinished; fill it first$"):
        list(read_shards(tmp_path, "test cache", "fill it first"))
    fill_shards(tmp_path, {"n": 5}, 5, 2, make_shard, "x")
    items = [t["items"].tolist() for t in read_shards(tmp_path, "test cache", "fill it first")]
    assert items == [[0, 1], [2, 3], [4]]


def _die():
    raise Killed
