"""One candidate sample from one index: a pure function of (config, index).

Because every candidate has its own seeded RNG, candidates can be made in any process, in any
order, and resumed from any index, and the output is still the same bytes for the same seed.
Pipeline per candidate: pick tool and template → draw slots → render the query → (when the
caller dedupes here) drop it if an earlier kept sample had the same request → render action(s),
setup and goal → parse (python format) → validate every call against its schema → execute →
check the goal and that alternative labels reach the same state → emit, or reject with the error
type as the reason. Candidates go through these stages in batches (`BATCH`), stage by stage;
each stage can be timed (`StageClock`): `benchmarks/generate.py` prints the profile.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections import defaultdict
from collections.abc import Container
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from toolbench.calls import PythonFormat
from toolbench.episode import Environment, ReplayPolicy, run_episode, single_shot_tools
from toolbench.errors import CallParseError, TemplateError, UserError
from toolbench.executor import Execution, execute_validated, first_schema_error
from toolbench.goals import Predicate, unmet
from toolbench.records import Program
from toolbench.registry import get_tool, spec_index
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


STAGES = ("startup", "slots", "render", "dedupe", "parse", "schema", "execute", "check", "serialise", "write")


@dataclass
class StageClock:
    """Seconds spent per pipeline stage (the benchmark's profile). `lap(stage)` charges the time
    since the previous lap to `stage`. Factories and `generate` take one; None (the default) costs
    one `if` per stage."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last: float = field(default_factory=time.perf_counter)

    def reset(self) -> None:
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self.last
        self.last = now


@dataclass
class Candidate:
    index: int
    line: bytes | None = None  # the sample as a JSONL line, when kept
    key: bytes | None = None  # dedupe key of the normalised query
    reject: str | None = None  # why it was dropped
    split: str | None = None


def program_dicts(program: Program) -> list[dict[str, Any]]:
    return [{"name": call.name, "arguments": call.arguments} for call in program]


def _run(program: Program, bad: Any, tool: str, simulator: type, setup: dict[str, Any] | None) -> Execution:
    """`execute(program)` given its first call that breaks the schema (`bad`, or None): the run
    stops before that call, and an error in an earlier call wins over it. `simulator`: the
    tool's class."""
    calls = program.root if bad is None else program.root[: bad.call_index]
    execution = execute_validated(calls, tool, simulator, setup)
    if bad is not None and execution.ok:
        execution.errors.append(bad)
    return execution


def _check(main: Execution, other: Execution | None, goal: list[Predicate] | None) -> str | None:
    """Why the gold label (`other` None) or an alternative label `other` fails, or None."""
    if other is None:
        if not main.ok:
            return main.errors[0].error_type
        if goal is not None and unmet(goal, main.state):
            return "goal:unmet"
        return None
    if not other.ok:
        return "label:disagree"
    if goal is not None:  # many action sequences reach one goal: each must reach it
        return "label:disagree" if unmet(goal, other.state) else None
    if other.state != main.state and flatten_state(other.state) != flatten_state(main.state):
        return "label:disagree"
    return None


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


# Candidates taken through the stages together, so that each stage's code stays hot in the CPU's
# caches (simulator states are not held across the batch: see `_execute`). Measured: 128 is
# ~1.3x faster than one candidate at a time; 32 to 512 are within noise of each other.
BATCH = 128


class _Work:
    """One candidate on its way through the stages."""

    __slots__ = (
        "index", "rng", "tool", "entry", "slots", "paraphrase", "query", "key", "reject", "error",
        "texts", "setup", "goal", "programs", "bad", "outcome", "line",
    )  # fmt: skip

    def __init__(self, index: int):
        self.index = index
        self.reject: str | None = None
        self.error: Exception | None = None  # a template error: raised for the lowest index
        self.line: bytes | None = None
        self.key: bytes | None = None

    def candidate(self) -> Candidate:
        if self.line is not None:
            return Candidate(self.index, line=self.line, key=self.key, split=self.entry.entry.split)
        return Candidate(self.index, key=self.key, reject=self.reject)


class SampleFactory:
    def __init__(self, config: GenerateConfig, clock: StageClock | None = None):
        self.config = config
        self.clock = clock
        self.entries: dict[str, list[CompiledEntry]] = {}
        self.weights: dict[str, list[float]] = {}
        self.cum_weights: dict[str, list[float]] = {}
        self.formats: dict[str, PythonFormat] = {}
        self.environments: dict[str, bool] = {}
        self.indexes: dict[str, Any] = {}
        self.classes: dict[str, type] = {}
        for tool in config.tools:
            simulator = self.classes[tool] = get_tool(tool)
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
            # what `rng.choices(entries, weights)` computes on every call, once: same draws
            self.cum_weights[tool] = list(accumulate(self.weights[tool]))
            self.formats[tool] = PythonFormat(simulator.format_context())
            self.environments[tool] = issubclass(simulator, Environment)
            self.indexes[tool] = spec_index((tool,))
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
        if config.distractors or config.relevance:
            # refused, never clamped: a sample must offer exactly the tools asked for
            tool = min(config.tools, key=lambda name: len(self.others[name]))
            most = len(self.others[tool])
            if config.distractors > most or most == 0:
                raise UserError(
                    f"--distractors {config.distractors}: allowed range is 0 to {most} (the other tools "
                    f"that can be offered beside {tool} share no function name with it)"
                )
        self._call_text: dict[tuple[str, bytes], str] = {}
        self._predicates: dict[bytes, Predicate] = {}
        if clock is not None:
            clock.lap("startup")

    def make(self, index: int) -> Candidate:
        """The candidate of `index` (no dedupe)."""
        return self.make_range(index, 1)[0]

    def make_range(self, start: int, size: int, seen: Container[bytes] | None = None) -> list[Candidate]:
        """Candidates `start`..`start + size - 1`, made stage by stage over the whole range (each
        stage's code and data stay hot in the CPU's caches; the candidates are the same as made
        one by one, as each has its own RNG and every stage is a pure function of it).

        With `seen` (the keys of the requests kept before `start`), a candidate whose request is
        among them, or is that of a valid candidate earlier in the range, is rejected as a
        duplicate as soon as its query is rendered: the writer would drop it anyway, so its
        program is never rendered, parsed or run. (A request repeated within the range waits
        until the earlier one is known valid or not.)"""
        candidates: list[Candidate] = []
        valid: set[bytes] = set()  # keys of this range's valid candidates so far
        for batch_start in range(start, start + size, BATCH):
            works = [_Work(i) for i in range(batch_start, min(batch_start + BATCH, start + size))]
            self._draw(works)
            self._render_queries(works)
            active, waiting = self._dedupe(works, seen, valid)
            self._finish(active)
            if seen is not None:
                valid.update(w.key for w in active if w.line is not None)  # type: ignore[misc]
            for work in waiting:  # repeats of a request first met in this batch, in index order
                if work.key in valid:
                    work.reject = "duplicate"
                else:
                    self._finish([work])
                    if work.line is not None:
                        valid.add(work.key)  # type: ignore[arg-type]
            if waiting:
                self._lap("dedupe")
            failed = [w for w in works if w.error is not None]
            if failed:
                raise failed[0].error  # type: ignore[misc]
            candidates.extend(w.candidate() for w in works)
        return candidates

    # ------------------------------------------------------------------------ the stages
    def _finish(self, works: list[_Work]) -> None:
        self._render_programs(works)
        self._parse(works)
        self._schema(works)
        self._execute(works)
        self._serialise(works)

    def _lap(self, stage: str) -> None:
        if self.clock is not None:
            self.clock.lap(stage)

    def _draw(self, works: list[_Work]) -> None:
        """RNG, tool, template, slot values and paraphrase."""
        base, tools = self.config.seed << 40, self.config.tools
        single = tools[0] if len(tools) == 1 else None
        keep_rng = bool(self.config.relevance or self.config.distractors)
        for w in works:
            rng = w.rng = random.Random(base | w.index)  # one stream per (seed, index)
            tool = w.tool = single if single is not None else tools[rng.randrange(len(tools))]
            entry = w.entry = rng.choices(self.entries[tool], cum_weights=self.cum_weights[tool])[0]
            try:
                w.slots, w.paraphrase = entry.draw(rng)
            except TemplateError as error:
                w.error = error
            if not keep_rng:  # only relevance and distractors draw again, when the sample is made
                w.rng = None
        self._lap("slots")

    def _render_queries(self, works: list[_Work]) -> None:
        for w in works:
            if w.error is None:
                try:
                    w.query = w.entry.render_query(w.slots, w.paraphrase)
                except TemplateError as error:
                    w.error = error
        self._lap("render")

    def _dedupe(
        self, works: list[_Work], seen: Container[bytes] | None, valid: set[bytes]
    ) -> tuple[list[_Work], list[_Work]]:
        """(candidates to make, repeats of a request first met in this batch)."""
        active, waiting = [], []
        first: set[bytes] = set()
        for w in works:
            if w.error is not None:
                continue
            key = w.key = query_key(w.query)
            if seen is None:
                active.append(w)
            elif key in seen or key in valid:
                w.reject = "duplicate"
            elif key in first:
                waiting.append(w)
            else:
                first.add(key)
                active.append(w)
        self._lap("dedupe")
        return active, waiting

    def _render_programs(self, works: list[_Work]) -> None:
        for w in works:
            if w.error is None:
                try:
                    w.texts, w.setup, w.goal = w.entry.render_program(w.slots)
                except TemplateError as error:
                    w.error = error
        self._lap("render")

    def _parse(self, works: list[_Work]) -> None:
        for w in works:
            if w.error is None:
                python = self.formats[w.tool]
                try:
                    w.programs = [python.parse(text) for text in w.texts]
                except CallParseError as error:
                    w.reject = error.error_type
        self._lap("parse")

    def _schema(self, works: list[_Work]) -> None:
        """Every call of every label against its schema: the first bad call of each label.
        (An episode's steps are checked here too; the episode checks each again as it takes it,
        and it alone decides what a failure is called.)"""
        for w in works:
            if w.error is None and w.reject is None:
                index = self.indexes[w.tool]
                w.bad = [first_schema_error(program, index) for program in w.programs]
        self._lap("schema")

    def _execute(self, works: list[_Work]) -> None:
        """Every label on fresh simulators (an episode: step by step), each stopping before its
        first call that breaks the schema (the outcome of `execute`: an error in an earlier call
        wins); then the checks: the gold label ran cleanly and reaches the goal, and so does each
        alternative label, or (no goal) it reaches the same state. Labels are checked as they
        run, so that no candidate's simulator states outlive it (held for a whole batch, they
        would keep the garbage collector busy)."""
        clock = self.clock
        for w in works:
            if w.error is not None or w.reject is not None:
                continue
            tool = w.tool
            setup = w.setup = {tool: w.setup} if w.setup is not None else None
            if self.environments[tool]:
                outcome = _check_episode(w.programs, tool, setup, w.query)
                if isinstance(outcome, str):
                    w.reject = outcome
                else:
                    w.outcome = outcome
                continue
            simulator = self.classes[tool]
            main = _run(w.programs[0], w.bad[0], tool, simulator, setup)
            if clock is not None:
                clock.lap("execute")
            goal = self._goal(w.goal) if w.goal is not None else None
            w.reject = _check(main, None, goal)
            if clock is not None:
                clock.lap("check")
            if w.reject is not None:
                continue
            w.outcome = main.results
            for program, bad in zip(w.programs[1:], w.bad[1:], strict=True):
                other = _run(program, bad, tool, simulator, setup)
                if clock is not None:
                    clock.lap("execute")
                w.reject = _check(main, other, goal)
                if clock is not None:
                    clock.lap("check")
                if w.reject is not None:
                    break
        self._lap("execute")

    def _serialise(self, works: list[_Work]) -> None:
        config = self.config
        for w in works:
            if w.error is not None or w.reject is not None:
                continue
            tool, entry, programs, rng = w.tool, w.entry, w.programs, w.rng
            if self.environments[tool]:
                category, results = "episode", w.outcome
            else:
                category = entry.entry.category or ("single" if len(programs[0]) == 1 else "multi_call")
                results = w.outcome
            setup = w.setup
            offered = [tool]
            labels = [program_dicts(p) for p in programs]
            action, goal_json = self._action_text(self.formats[tool], programs[0]), w.goal
            if config.relevance and rng.random() < config.relevance:
                others = self.others[tool]
                offered = sorted(rng.sample(others, min(max(1, config.distractors), len(others))))
                category, labels, action, results, setup, goal_json = "relevance", [[]], "", [], None, None
            elif config.distractors:
                others = self.others[tool]
                offered = sorted([tool, *rng.sample(others, min(config.distractors, len(others)))])
                if category != "episode":  # an episode offered more tools is still an episode
                    category = "multi_tool"
            sample = {
                "id": f"{tool}-{config.seed}-{w.index}",
                "tool": tool,
                "tools": offered,
                "category": category,
                "query": w.query,
                "labels": labels,
                "setup": setup,
                "goal": goal_json,
                "meta": {
                    "template": entry.id,
                    "paraphrase": w.paraphrase,
                    "index": w.index,
                    "seed": config.seed,
                },
                "split": entry.entry.split,
                "action": action,
                "results": results,
            }
            w.line = orjson.dumps(sample, option=orjson.OPT_APPEND_NEWLINE)
            w.rng = w.outcome = w.programs = None  # type: ignore[assignment]
        self._lap("serialise")

    def _goal(self, goal: list[dict[str, Any]]) -> list[Predicate]:
        """The goal's predicates, validated (a memo: a template's goals repeat; Predicates are
        never changed after validation)."""
        predicates = []
        memo = self._predicates
        for raw in goal:
            try:
                key = orjson.dumps(raw)
            except TypeError:  # not JSON orjson can write (e.g. an int beyond 64 bits): no memo
                predicates.append(Predicate.model_validate(raw))
                continue
            predicate = memo.get(key)
            if predicate is None:
                predicate = Predicate.model_validate(raw)
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = predicate
            predicates.append(predicate)
        return predicates

    def _action_text(self, python: PythonFormat, program: Program) -> str:
        """`python.render(program)`, one line per call, each line remembered: the same calls
        recur across thousands of samples. The key is the call's name and its arguments as JSON
        bytes, which tell apart everything the rendering does (key order, 1 vs 1.0 vs true)."""
        memo = self._call_text
        lines = []
        for call in program:
            try:
                key = (call.name, orjson.dumps(call.arguments))
            except TypeError:  # e.g. an int beyond 64 bits: rendered without the memo
                lines.append(python.render([call]))  # type: ignore[arg-type]
                continue
            text = memo.get(key)
            if text is None:
                text = python.render([call])  # type: ignore[arg-type]
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = text
            lines.append(text)
        return "\n".join(lines)


_MEMO_MAX = 1 << 16
