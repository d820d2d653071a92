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

import _random
import hashlib
import math
import random
import time
from bisect import bisect
from collections import defaultdict
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from toolbench.core.calls import PythonFormat
from toolbench.core.episode import FULL_REWARD, Environment, ReplayPolicy, run_episode, single_shot_tools
from toolbench.core.executor import Execution, execute_validated, first_schema_error
from toolbench.core.registry import get_tool, spec_index
from toolbench.core.score import flatten_state
from toolbench.core.templating import CompiledEntry, TemplateSet
from toolbench.foundation.errors import CallParseError, TemplateError, UserError
from toolbench.foundation.goals import Predicate
from toolbench.foundation.records import Call

# `normalise_query` on bytes: every byte but 0-9 and a-z becomes a space (a non-ASCII character
# is one `?` byte after encoding, then a space, as the regular expression makes it one)
_KEY_BYTES = bytes(c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256))


def query_key(query: str) -> bytes:
    """The dedupe key: 8 bytes of blake2b over `normalise_query(query)`, computed without the
    regular expression (the key of every candidate)."""
    words = query.lower().encode("ascii", "replace").translate(_KEY_BYTES).split()
    return hashlib.blake2b(b" ".join(words), digest_size=8).digest()


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


@dataclass(slots=True)
class Candidate:
    index: int
    line: bytes | None = None  # the sample as a JSONL line, when kept
    key: bytes | None = None  # dedupe key of the normalised query
    reject: str | None = None  # why it was dropped
    split: str | None = None


def _run(
    program: list[Call],
    bad: Any,
    tool: str,
    simulator: type,
    setup: dict[str, Any] | None,
    state: bool = True,
) -> Execution:
    """`execute(program)` given its first call that breaks the schema (`bad`, or None): the run
    stops before that call, and an error in an earlier call wins over it. `simulator`: the
    tool's class. `state`: whether a check reads the final state (a goal, or alternative labels
    to compare with); without one, none is taken."""
    calls = program if bad is None else program[: bad.call_index]
    execution = execute_validated(calls, tool, simulator, setup, snapshot=True if state else None)
    if bad is not None and execution.ok:
        execution.errors.append(bad)
    return execution


# A goal as the generator checks it: one test per predicate, `goals.holds` with the predicate's
# path split once (every label of every sample of a goal tool is checked against its goal).
Test = Callable[[dict[str, Any]], bool]


def _met(goal: tuple[Test, ...], state: dict[str, Any]) -> bool:
    """Whether every predicate holds: `not unmet(goal, state)`."""
    for test in goal:
        if not test(state):
            return False
    return True


def _test(predicate: Predicate) -> Test:
    """`lambda state: goals.holds(predicate, state)`, the same verdict, the path split once."""
    parts = tuple(predicate.path.split("."))
    op, value = predicate.op, predicate.value
    missing = _MISSING

    def find(state: dict[str, Any]) -> Any:  # goals.lookup
        node: Any = state
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                return missing
        return node

    if op == "absent":
        return lambda state: (found := find(state)) is missing or found is None
    if op == "exists":
        return lambda state: (found := find(state)) is not missing and found is not None
    if op == "eq":
        return lambda state: (found := find(state)) is not missing and found == value
    if op == "ne":
        return lambda state: (found := find(state)) is not missing and found != value
    if op == "in":
        return lambda state: (
            (found := find(state)) is not missing and isinstance(value, list) and found in value
        )
    return lambda state: (  # contains
        (found := find(state)) is not missing and isinstance(found, (list, str)) and value in found
    )


_MISSING = object()


def _check(main: Execution, other: Execution | None, goal: tuple[Test, ...] | None) -> str | None:
    """Why the gold label (`other` None) or an alternative label `other` fails, or None."""
    if other is None:
        if not main.ok:
            return main.errors[0].error_type
        if goal is not None and not _met(goal, main.state):
            return "goal:unmet"
        return None
    if not other.ok:
        return "label:disagree"
    if goal is not None:  # many action sequences reach one goal: each must reach it
        return None if _met(goal, other.state) else "label:disagree"
    if other.state != main.state and flatten_state(other.state) != flatten_state(main.state):
        return "label:disagree"
    return None


def _check_episode(
    programs: list[list[Call]],
    tool: str,
    setup: dict[str, Any] | None,
    query: str,
    bad: list[Any] | None = None,
    simulator: type | None = None,
) -> list[str] | str:
    """Replay each gold trajectory as an episode: every step must be accepted and the reward 1.
    Returns the first trajectory's observations (the tool turns of the sample), or why it is
    rejected. `bad` (each program's first call that breaks the schema, or None) and `simulator`
    (the tool's class) let a trajectory that succeeds take `_replay`; any other goes through
    `run_episode`, which alone says what a failure is called."""
    observations: list[str] = []
    for k, program in enumerate(programs):
        replayed = None
        if bad is not None and simulator is not None and bad[k] is None:
            replayed = _replay(program, simulator, setup.get(tool) if setup else None)
        if replayed is None:
            episode = run_episode([tool], setup, ReplayPolicy(program), query)
            if episode.errors or not episode.success:
                return (
                    "label:disagree"
                    if k
                    else (episode.errors[0].error_type if episode.errors else "episode:reward")
                )
            if len(episode.trajectory) != len(program):  # actions after the terminal one never ran
                return "episode:after_end"
            replayed = [step.observation for step in episode.trajectory]
        if k == 0:
            observations = replayed
    return observations


def _replay(program: list[Call], simulator: type, setup: dict[str, Any] | None) -> list[str] | None:
    """The observations of `run_episode` on this one environment when the episode succeeds, with
    every action of `program` taken: each accepted (its schema was checked before), the
    environment done after the last action and not before, within its step limit, reward 1.
    None when it does not, or might not: the caller then runs the episode itself. (What this
    skips is the episode's bookkeeping: Step records, its routing of calls between tools and a
    second schema check of each call.)"""
    try:
        env = simulator(setup)
    except Exception:  # noqa: BLE001 - the episode reports a refused setup
        return None
    last = len(program) - 1
    if last < 0 or last >= env.max_steps:
        return None
    observations = []
    for i, call in enumerate(program):
        try:
            result = getattr(env, call.name)(**call.arguments)
        except Exception:  # noqa: BLE001 - a refused step: the episode words it
            return None
        observations.append(env.observe(call, result))
        if env.is_done() != (i == last):
            return None
    try:
        if env.reward() < FULL_REWARD:
            return None
    except Exception:  # noqa: BLE001 - as the episode would meet it
        return None
    return observations


_NEW_RANDOM = random.Random.__new__
_SEED = _random.Random.seed


def seeded(seed: int) -> random.Random:
    """`random.Random(seed)` for an int seed: the same state (`random.Random.seed` hands an int
    to the C seeding as it is), without the two Python frames around it (every candidate
    seeds one)."""
    rng = _NEW_RANDOM(random.Random)
    _SEED(rng, seed)
    rng.gauss_next = None  # what Random.seed sets besides the state
    return rng


# Candidates taken through the stages together, so that each stage's code stays hot in the CPU's
# caches (simulator states are not held across the batch: see `_execute`). Measured: 128 is
# ~1.3x faster than one candidate at a time; 32 to 512 are within noise of each other.
BATCH = 128


class _Work(Candidate):
    """One candidate on its way through the stages; the Candidate the factory returns (a
    worker process sends it as a plain Candidate: `__reduce__`)."""

    __slots__ = (
        "rng", "tool", "entry", "slots", "paraphrase", "query", "error", "texts", "setup", "goal",
        "programs", "bad", "outcome", "action",
    )  # fmt: skip

    def __init__(self, index: int):
        self.index = index
        self.line = self.key = self.reject = self.split = None
        self.error: Exception | None = None  # a template error: raised for the lowest index

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return Candidate, (self.index, self.line, self.key, self.reject, self.split)


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
        self._choices: dict[str, tuple[list[CompiledEntry], list[float], float | None]] = {}
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
            self.cum_weights[tool] = cum = list(accumulate(self.weights[tool]))
            total = cum[-1] + 0.0
            self._choices[tool] = (entries, cum, total if 0.0 < total < math.inf else None)
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
        self._tests: dict[bytes, Test] = {}  # a goal predicate's JSON -> its compiled test
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
            candidates.extend(works)
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
            rng = w.rng = seeded(base | w.index)  # one stream per (seed, index)
            tool = w.tool = single if single is not None else tools[rng.randrange(len(tools))]
            entry = w.entry = self._pick(tool, rng)
            try:
                w.slots, w.paraphrase = entry.draw(rng)
            except TemplateError as error:
                w.error = error
            if not keep_rng:  # only relevance and distractors draw again, when the sample is made
                w.rng = None
        self._lap("slots")

    def _pick(self, tool: str, rng: random.Random) -> CompiledEntry:
        """`rng.choices(entries, cum_weights=...)[0]`: the same `random()` call and bisection,
        without the checks `choices` repeats on every call (made once, in `__init__`)."""
        entries, cum, total = self._choices[tool]
        if total is None:
            return rng.choices(entries, cum_weights=cum)[0]  # which raises choices' own error
        return entries[bisect(cum, rng.random() * total, 0, len(cum) - 1)]

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
                    w.programs = programs = []
                    for k, text in enumerate(w.texts):  # the gold label's rendering comes too
                        calls, action = python.parse_shared(text, not k)
                        programs.append(calls)
                        if not k:
                            w.action = action
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
                outcome = _check_episode(w.programs, tool, setup, w.query, w.bad, self.classes[tool])
                if isinstance(outcome, str):
                    w.reject = outcome
                else:
                    w.outcome = outcome
                continue
            simulator = self.classes[tool]
            # the gold label's final state is read only by a goal or to compare alternatives
            needs_state = w.goal is not None or len(w.programs) > 1
            main = _run(w.programs[0], w.bad[0], tool, simulator, setup, needs_state)
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
        seed, relevance, distractors = config.seed, config.relevance, config.distractors
        for w in works:
            if w.error is not None or w.reject is not None:
                continue
            tool, entry, programs = w.tool, w.entry, w.programs
            template = entry.entry
            if self.environments[tool]:
                category = "episode"
            else:
                category = template.category or ("single" if len(programs[0]) == 1 else "multi_call")
            results, setup, offered = w.outcome, w.setup, [tool]
            labels = [[{"name": call.name, "arguments": call.arguments} for call in p] for p in programs]
            action, goal_json = w.action, w.goal
            if relevance and w.rng.random() < relevance:
                others = self.others[tool]
                offered = sorted(w.rng.sample(others, min(max(1, distractors), len(others))))
                category, labels, action, results, setup, goal_json = "relevance", [[]], "", [], None, None
            elif distractors:
                others = self.others[tool]
                offered = sorted([tool, *w.rng.sample(others, min(distractors, len(others)))])
                if category != "episode":  # an episode offered more tools is still an episode
                    category = "multi_tool"
            w.split = split = template.split
            w.line = orjson.dumps(
                {
                    "id": f"{tool}-{seed}-{w.index}",
                    "tool": tool,
                    "tools": offered,
                    "category": category,
                    "query": w.query,
                    "labels": labels,
                    "setup": setup,
                    "goal": goal_json,
                    "meta": {
                        "template": template.id,
                        "paraphrase": w.paraphrase,
                        "index": w.index,
                        "seed": seed,
                    },
                    "split": split,
                    "action": action,
                    "results": results,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            w.rng = w.outcome = w.programs = None  # type: ignore[assignment]
        self._lap("serialise")

    def _goal(self, goal: list[dict[str, Any]]) -> tuple[Test, ...]:
        """The goal's predicates, validated and compiled, each remembered by its JSON (predicates
        recur across goals, far more than whole goals do; a test is only called)."""
        tests = []
        memo = self._tests
        for raw in goal:
            try:
                key = orjson.dumps(raw)
            except TypeError:  # not JSON orjson can write (e.g. an int beyond 64 bits): no memo
                tests.append(_test(Predicate.model_validate(raw)))
                continue
            test = memo.get(key)
            if test is None:
                test = _test(Predicate.model_validate(raw))
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = test
            tests.append(test)
        return tuple(tests)


_MEMO_MAX = 1 << 16
