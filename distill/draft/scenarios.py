"""Distillation prompts for the three data scenarios of Hong et al. (domain draft models).
Responses never come from here: they always come from the target (see teacher_cache).

- **I, real queries**: a user JSONL of tasks (e.g. logged production requests, one `Task` record a
  line). In-repo example: the tools' frozen test tasks, split in halves by line number: even lines
  are scenario I's training prompts, odd lines are the held-out prompts every α evaluation uses
  (`heldout_tasks`), so scenario I never trains on what it is scored on.
- **II, template queries**: train-split samples from the generator, laid out like `toolbench eval
  --mode chat` (`data.conversations`: tools, optional system prompt, 0-3 retrieved demos whose
  `tool` messages are kept), with the final assistant answer dropped.
- **III, target-written queries** (Magpie): the target continues its own chat template from the
  start of a user turn, with one tool's functions in the system part; its text up to the end token
  is the query. Empty, overlong and duplicate (case/space-normalised) queries are dropped.

Every prompt is (id, tool, messages, tools), rendered with the target's chat template and the
generation prompt, like `spec` and `eval` render theirs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from toolbench.distill.training.align import SFT_TOOLS
from toolbench.distill.training.data import ConversationConfig
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import Task

Scenario = Literal["I", "II", "III"]
Half = Literal["train", "eval"]
_SENTINEL = "\x00QUERY\x00"


class ScenarioConfig(BaseModel):
    scenario: Scenario = "II"
    tools: list[str] = Field(default_factory=lambda: list(SFT_TOOLS))
    prompts: str | None = Field(None, description="Scenario I: a JSONL of tasks (default: even test lines).")
    samples: int = Field(2000, ge=1, description="II: generated samples; III: query attempts.")
    seed: int = 0
    conversations: ConversationConfig = Field(
        default_factory=lambda: ConversationConfig(demo_weights=[0.7, 0.1, 0.1, 0.1], system_prompt_rate=0.2),
        description="II: mostly the zero-shot layout α is measured on, some demos (and their tool turns).",
    )
    max_prompt_length: int = Field(512, ge=8, description="Longer prompts are dropped.")
    query_temperature: float = Field(1.0, gt=0, description="III: sampling temperature of the queries.")
    query_max_tokens: int = Field(64, ge=4)


class Prompt(BaseModel):
    id: str
    tool: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


def tool_schemas(tools: list[str]) -> list[dict[str, Any]]:
    from toolbench.core.chat_messages import openai_tools
    from toolbench.core.registry import spec_index

    return openai_tools(list(spec_index(tuple(tools)).specs.values()))


def frozen_test_tasks(tools: list[str], half: Half | None = None) -> list[Task]:
    """The tools' frozen test tasks; `half="train"` keeps even lines (scenario I's example),
    `half="eval"` odd lines (held-out α prompts), None all of them."""
    from toolbench.core.registry import get_tool
    from toolbench.core.task_files import load_tasks

    tasks = []
    for name in tools:
        numbered = load_tasks(get_tool(name).tasks_file())
        for i, item in enumerate(numbered):
            if half is None or (i % 2 == 0) == (half == "train"):
                tasks.append(item.task)
    return tasks


def heldout_tasks(tools: list[str], per_tool: int | None = None) -> list[Task]:
    """The α evaluation prompts: odd test lines of each tool, the first `per_tool` of them."""
    chosen: list[Task] = []
    for name in tools:
        tasks = frozen_test_tasks([name], "eval")
        chosen += tasks[:per_tool] if per_tool else tasks
    return chosen


def task_prompts(tasks: list[Task]) -> list[Prompt]:
    from toolbench.retriever.prompt import PromptBuilder

    builder = PromptBuilder(k=0)
    prompts = []
    for task in tasks:
        messages, tools = builder.chat(task)
        prompts.append(Prompt(id=task.id, tool=task.tool, messages=messages, tools=tools))
    return prompts


def real_prompts(config: ScenarioConfig) -> list[Prompt]:
    """Scenario I: the user's task file, or the even half of the test tasks."""
    if config.prompts is None:
        return task_prompts(frozen_test_tasks(config.tools, "train"))
    from toolbench.core.task_files import load_tasks

    path = Path(config.prompts)
    if not path.is_file():
        raise UserError(f"--prompts {path}: no such file (a JSONL of tasks, one a line)")
    return task_prompts([item.task for item in load_tasks(path)])


def template_prompts(config: ScenarioConfig, work: Path) -> list[Prompt]:
    """Scenario II: generator samples (train templates) as chat prompts, demos and tool turns kept."""
    from toolbench.distill.training.data import conversations
    from toolbench.pipelines.export import iter_samples
    from toolbench.pipelines.generate import GenerateConfig, generate

    path = work / f"scenario-II-{config.samples}-seed{config.seed}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(GenerateConfig(tools=config.tools, n=config.samples, seed=config.seed, split="train"), path)
    samples = list(iter_samples(path))
    prompts = []
    for sample, (messages, tools) in zip(
        samples, conversations(samples, path, config.conversations), strict=True
    ):
        prompts.append(Prompt(id=sample.id, tool=sample.tool, messages=messages[:-1], tools=tools))
    return prompts


def normalise_query(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def magpie_prefix(tokenizer: Any, tools: list[dict[str, Any]]) -> str:
    """The chat template rendered up to the start of a user turn's content, tools in the system part."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": _SENTINEL}], tools=tools, tokenize=False, add_generation_prompt=False
    )
    if _SENTINEL not in text:
        raise UserError("the target's chat template drops the user message; scenario III needs it")
    return text.split(_SENTINEL)[0]


def target_written_prompts(config: ScenarioConfig, target: Any, tokenizer: Any) -> tuple[list[Prompt], dict]:
    """Scenario III: queries sampled from the target after a user-turn opener, one tool per
    prompt (cycling through the tools); returns the prompts and drop counts."""
    from toolbench.core.generation import stop_ids
    from toolbench.distill.draft.teacher_cache import generate_batch

    tools = {name: tool_schemas([name]) for name in config.tools}
    prefixes = {
        name: tokenizer(magpie_prefix(tokenizer, t), add_special_tokens=False)["input_ids"]
        for name, t in tools.items()
    }
    names = [config.tools[i % len(config.tools)] for i in range(config.samples)]
    rollouts = generate_batch(
        target,
        [prefixes[name] for name in names],
        max_new_tokens=config.query_max_tokens,
        stop=stop_ids(target, tokenizer),
        pad_id=tokenizer.pad_token_id or 0,
        temperature=config.query_temperature,
        seed=config.seed,
    )
    seen: set[str] = set()
    prompts, counts = [], {"attempts": len(names), "empty": 0, "unfinished": 0, "duplicate": 0}
    for i, (name, rollout) in enumerate(zip(names, rollouts, strict=True)):
        if not rollout.finished:
            counts["unfinished"] += 1
            continue
        query = tokenizer.decode(rollout.response, skip_special_tokens=True).strip()
        key = normalise_query(query)
        if not key:
            counts["empty"] += 1
            continue
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        prompts.append(
            Prompt(
                id=f"magpie-{i}", tool=name, messages=[{"role": "user", "content": query}], tools=tools[name]
            )
        )
    counts["kept"] = len(prompts)
    return prompts, counts


def render(prompts: list[Prompt], tokenizer: Any, max_length: int) -> tuple[list[Prompt], list[list[int]]]:
    """Prompt ids with the generation prompt added; prompts longer than `max_length` are dropped
    (quietly: transformers' "indexing errors" warning would be about prompts never used)."""
    kept, ids = [], []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            prompt.messages, tools=prompt.tools or None, tokenize=False, add_generation_prompt=True
        )
        tokens = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(tokens) <= max_length:
            kept.append(prompt)
            ids.append(tokens)
    return kept, ids


def scenario_prompts(
    config: ScenarioConfig, target: Any, tokenizer: Any, work: Path
) -> tuple[list[Prompt], list[list[int]], dict]:
    """(prompts, their ids, counts) of the configured scenario."""
    counts: dict[str, Any] = {}
    if config.scenario == "I":
        prompts = real_prompts(config)
    elif config.scenario == "II":
        prompts = template_prompts(config, work)
    else:
        prompts, counts = target_written_prompts(config, target, tokenizer)
    kept, ids = render(prompts, tokenizer, config.max_prompt_length)
    counts.update(prompts=len(kept), dropped_too_long=len(prompts) - len(kept))
    if not kept:
        raise UserError(f"scenario {config.scenario}: no usable prompts")
    return kept, ids, counts
