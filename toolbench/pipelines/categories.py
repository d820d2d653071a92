"""BFCL-style cross-tool categories, built from the tools' frozen test tasks.

- `multi_tool`: the right tool is offered with two others; the model must pick its functions.
- `relevance`: only unrelated tools are offered; the right answer is no call.
- `parallel`: two independent requests for two different tools in one message; both programs
  must run (in any interleaving: the state decides; AST match accepts either order).

Each category task keeps `meta.source` (the tool task it came from), so a regression can be
traced. The files are frozen in `tools/categories/` like the per-tool test sets.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from toolbench.core.task_files import load_tasks, tool_task_files
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Program, Task
from toolbench.pipelines.tasks import CATEGORIES, categories_dir, category_task_files

# CATEGORIES and where their files live are defined in `toolbench.pipelines.tasks` (which lists every frozen
# task file); they are re-exported here, where the categories are built.
__all__ = ["CATEGORIES", "OTHERS_OFFERED", "categories_dir", "category_task_files", "make_category_tasks"]

OTHERS_OFFERED = 2


def _tool_tasks() -> dict[str, list[Task]]:
    pools: dict[str, list[Task]] = {}
    for name, path in tool_task_files().items():
        # an episode is played step by step: it cannot be merged into a single-shot category task
        tasks = [
            n.task
            for n in load_tasks(path)
            if len(n.task.offered_tools) == 1 and n.task.category != "episode"
        ]
        if tasks:
            pools[name] = tasks
    if len(pools) < OTHERS_OFFERED + 1:
        raise UserError(
            f"categories need test tasks of at least {OTHERS_OFFERED + 1} tools; found: {', '.join(pools) or 'none'}"
        )
    return pools


def _round_robin(pools: dict[str, list[Task]], rng: random.Random) -> Callable[[], Task]:
    """Draw tasks tool by tool in turn, each tool's tasks in a seeded order without repeats."""
    order = {tool: rng.sample(tasks, len(tasks)) for tool, tasks in pools.items()}
    cycle = itertools.cycle(sorted(pools))
    position = dict.fromkeys(pools, 0)

    def draw() -> Task:
        tool = next(cycle)
        task = order[tool][position[tool] % len(order[tool])]
        position[tool] += 1
        return task

    return draw


def make_category_tasks(category: str, n: int, seed: int) -> list[Task]:
    if category not in CATEGORIES:
        raise UserError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    rng = random.Random(seed)
    pools = _tool_tasks()
    names = sorted(pools)
    draw = _round_robin(pools, rng)
    tasks = []
    for k in range(n):
        source = draw()
        others = [t for t in names if t != source.tool]
        task_id = f"{category}-{k:04d}"
        if category == "multi_tool":
            offered = sorted([source.tool, *rng.sample(others, OTHERS_OFFERED)])
            tasks.append(
                source.model_copy(
                    update={
                        "id": task_id,
                        "tool": category,
                        "tools": offered,
                        "category": category,
                        "meta": {**source.meta, "source": source.id},
                    }
                )
            )
        elif category == "relevance":
            offered = sorted(rng.sample(others, OTHERS_OFFERED))
            tasks.append(
                Task(
                    id=task_id,
                    tool=category,
                    tools=offered,
                    category=category,
                    query=source.query,
                    labels=[Program([])],
                    meta={"source": source.id},
                )
            )
        else:
            partner_tool = rng.choice(others)
            partner = rng.choice(pools[partner_tool])
            labels = [Program([*a, *b]) for a, b in itertools.product(source.labels[:2], partner.labels[:2])]
            labels += [Program([*b, *a]) for a, b in itertools.product(source.labels[:1], partner.labels[:1])]
            setup = {**(source.setup or {}), **(partner.setup or {})} or None
            tasks.append(
                Task(
                    id=task_id,
                    tool=category,
                    tools=sorted([source.tool, partner_tool]),
                    category=category,
                    query=f"{source.query.rstrip()} Also: {partner.query}",
                    labels=labels,
                    setup=setup,
                    meta={"source": [source.id, partner.id]},
                )
            )
    return tasks
