"""One candidate sample from one index: a pure function of (config, index).

Because every candidate has its own seeded RNG, candidates can be made in any process, in any
order, and resumed from any index, and the output is still the same bytes for the same seed.
Pipeline per candidate: pick tool and template → draw slots → render query and action(s) →
parse (python format) → validate against the schema and execute → check alternative labels
reach the same state → emit, or reject with the error type as the reason.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from toolbench.calls import PythonFormat
from toolbench.episode import Environment, ReplayPolicy, run_episode, single_shot_tools
from toolbench.errors import CallParseError, UserError
from toolbench.executor import execute
from toolbench.goals import Predicate, unmet
from toolbench.records import Program
from toolbench.registry import get_tool
from toolbench.score import flatten_state
from toolbench.templating import CompiledEntry, TemplateSet

_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise_query(query: str) -> str:
    """What counts as 'the same request' for dedupe: case, punctuation and spacing ignored."""
    return _NOT_WORD.sub(" ", query.lower()).strip()


def query_key(query: str) -> bytes:
    return hashlib.blake2b(normalise_query(query).encode(), digest_size=8).digest()


class GenerateConfig(BaseModel):
    tools: list[str] = Field(min_length=1)
    n: int = Field(gt=0)
    seed: int = 0
    split: Literal["all", "train", "test"] = "all"
    templates: str | None = Field(
        None,
        description="A templates folder laid out like the shipped one "
        "(<tool>/*.yaml, pools/); default: the packaged templates.",
    )
    distractors: int = Field(
        0, ge=0, description="Other tools offered beside the right one (multi_tool training data)."
    )
    relevance: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of samples whose offered tools cannot serve the request (gold: no call).",
    )

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


@dataclass
class Candidate:
    index: int
    line: bytes | None = None  # the sample as a JSONL line, when kept
    key: bytes | None = None  # dedupe key of the normalised query
    reject: str | None = None  # why it was dropped
    split: str | None = None


def program_dicts(program: Program) -> list[dict[str, Any]]:
    return [{"name": call.name, "arguments": call.arguments} for call in program]


def _check_episode(
    programs: list[Program], tool: str, setup: dict[str, Any] | None, query: str
) -> list[str] | str:
    """Replay each gold trajectory as an episode: every step must be accepted and the reward 1.
    Returns the first trajectory's observations (the tool turns of the sample), or why it is
    rejected."""
    observations: list[str] = []
    for k, program in enumerate(programs):
        episode = run_episode([tool], setup, ReplayPolicy(program), query)
        if episode.errors or not episode.success:
            return (
                "label:disagree"
                if k
                else (episode.errors[0].error_type if episode.errors else "episode:reward")
            )
        if len(episode.trajectory) != len(program):  # actions after the terminal one never ran
            return "episode:after_end"
        if k == 0:
            observations = [step.observation for step in episode.trajectory]
    return observations


class SampleFactory:
    def __init__(self, config: GenerateConfig):
        self.config = config
        self.entries: dict[str, list[CompiledEntry]] = {}
        self.weights: dict[str, list[float]] = {}
        self.formats: dict[str, PythonFormat] = {}
        self.environments: dict[str, bool] = {}
        for tool in config.tools:
            simulator = get_tool(tool)
            if config.templates is None:
                template_set = TemplateSet(tool, simulator.templates_dir())
            else:
                root = Path(config.templates)
                shared = root / "pools"
                template_set = TemplateSet(tool, root / tool, shared if shared.is_dir() else None)
            entries = template_set.select(config.split)
            if not entries:
                raise UserError(f"tool '{tool}' has no templates in split '{config.split}'")
            self.entries[tool] = entries
            self.weights[tool] = [e.entry.weight for e in entries]
            self.formats[tool] = PythonFormat(simulator.format_context())
            self.environments[tool] = issubclass(simulator, Environment)
        # Environments are never offered as distractors (a request for another tool does not
        # become an episode), and no tool is offered beside one whose function names it shares.
        self.distractor_pool = single_shot_tools() if (config.distractors or config.relevance) else []
        if (config.distractors or config.relevance) and len(self.distractor_pool) < 2:
            raise UserError("--distractors/--relevance need at least two registered tools")
        self.others = {
            tool: [
                t
                for t in self.distractor_pool
                if t != tool and not set(get_tool(t).specs) & set(get_tool(tool).specs)
            ]
            for tool in config.tools
        }

    def make(self, index: int) -> Candidate:
        rng = random.Random((self.config.seed << 40) | index)  # one stream per (seed, index)
        tools = self.config.tools
        tool = tools[0] if len(tools) == 1 else tools[rng.randrange(len(tools))]
        entry = rng.choices(self.entries[tool], self.weights[tool])[0]
        rendered = entry.render(rng)
        python = self.formats[tool]
        try:
            programs = [python.parse(action) for action in rendered.actions]
        except CallParseError as error:
            return Candidate(index, reject=error.error_type)
        setup = {tool: rendered.setup} if rendered.setup is not None else None
        if self.environments[tool]:
            outcome = _check_episode(programs, tool, setup, rendered.query)
            if isinstance(outcome, str):
                return Candidate(index, reject=outcome)
            category, results = "episode", outcome
        else:
            execution = execute(programs[0], [tool], setup)
            if not execution.ok:
                return Candidate(index, reject=execution.errors[0].error_type)
            goal = [Predicate.model_validate(p) for p in rendered.goal] if rendered.goal is not None else None
            if goal is not None and unmet(goal, execution.state):
                return Candidate(index, reject="goal:unmet")
            for alternative in programs[1:]:
                other = execute(alternative, [tool], setup)
                if not other.ok:
                    return Candidate(index, reject="label:disagree")
                if goal is not None:  # many action sequences reach one goal: each must reach it
                    if unmet(goal, other.state):
                        return Candidate(index, reject="label:disagree")
                elif other.state != execution.state and flatten_state(other.state) != flatten_state(
                    execution.state
                ):
                    return Candidate(index, reject="label:disagree")
            category = entry.entry.category or ("single" if len(programs[0]) == 1 else "multi_call")
            results = execution.results
        offered = [tool]
        labels = [program_dicts(p) for p in programs]
        action, goal_json = python.render(programs[0]), rendered.goal
        if self.config.relevance and rng.random() < self.config.relevance:
            others = self.others[tool]
            offered = sorted(rng.sample(others, min(max(1, self.config.distractors), len(others))))
            category, labels, action, results, setup, goal_json = "relevance", [[]], "", [], None, None
        elif self.config.distractors:
            others = self.others[tool]
            offered = sorted([tool, *rng.sample(others, min(self.config.distractors, len(others)))])
            if category != "episode":  # an episode offered more tools is still an episode
                category = "multi_tool"
        sample = {
            "id": f"{tool}-{self.config.seed}-{index}",
            "tool": tool,
            "tools": offered,
            "category": category,
            "query": rendered.query,
            "labels": labels,
            "setup": setup,
            "goal": goal_json,
            "meta": {
                "template": entry.id,
                "paraphrase": rendered.paraphrase,
                "index": index,
                "seed": self.config.seed,
            },
            "split": entry.entry.split,
            "action": action,
            "results": results,
        }
        return Candidate(
            index, line=orjson.dumps(sample) + b"\n", key=query_key(rendered.query), split=entry.entry.split
        )

    def make_range(self, start: int, size: int) -> list[Candidate]:
        return [self.make(i) for i in range(start, start + size)]
