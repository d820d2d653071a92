"""The scorer: execute a prediction, compare the resulting state with each gold label's.

Rules (no branch on any tool's name):
- state F1 is computed over the flattened state: every leaf is a (path, value) item; a list is a
  multiset of whole elements; an integral float equals the int. Two empty states have F1 = 1.
- the best label is the one with the highest F1 (first on ties).
- success (ToolBench's rule, made strict): the text parsed, every call executed without error,
  and the best F1 is 1. When every label is the empty program (a relevance task), success also
  needs an empty prediction. A task with a `goal` (world-state tools) succeeds when the goal
  predicates hold on the final state instead: many action sequences reach one goal.
- AST match: the prediction equals some label call for call, after schema defaults are filled.
- A task that carries its own functions (`Task.functions`: BFCL's) has no simulator: its calls are
  matched against its acceptable answers by `toolbench.core.bfcl_checker` (BFCL's AST rules).
- An episode task (category `episode`) replays the prediction one action at a time through
  `toolbench.core.episode` (refused actions are error observations; the episode goes on); success is
  the environment's reward being 1, and the Score carries reward, steps and the trajectory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from toolbench.core.backends.base import BackendResponse
from toolbench.core.episode import EpisodeResult, ReplayPolicy, run_episode
from toolbench.core.executor import Execution, execute, fill_defaults
from toolbench.core.registry import spec_index
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.goals import unmet
from toolbench.foundation.records import Call, ExecError, Program, Score, Task, diagnose, parse_error_score
from toolbench.foundation.summaries import Aggregate, CellSummary, CostSummary, EvalSummary, MacroFigures

StateItems = Counter[tuple[str, str]]


def flatten_state(state: Any, path: str = "") -> StateItems:
    """The state as a multiset of (path, value) items: dict keys extend the path; a list is a
    multiset of its elements, each element one item (a dict inside a list stays whole, so a
    logged request {city, units} is right or wrong as a unit, never mixed with another's fields)."""
    items: StateItems = Counter()
    _flatten(state, path, items)
    return items


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _flatten(value: Any, path: str, items: StateItems) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(sub, f"{path}.{key}" if path else str(key), items)
    elif isinstance(value, list):
        for sub in value:
            items[(f"{path}[]", _encode(sub))] += 1
    else:
        items[(path, _encode(value))] += 1


_encode_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str, minus its overhead


def _encode(value: Any) -> str:
    """json.dumps of the canonical value, with fast paths for scalars (the bulk of every state)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(_canonical(value), sort_keys=True)


def state_f1(predicted: StateItems, gold: StateItems) -> float:
    if not predicted and not gold:
        return 1.0
    overlap = sum((predicted & gold).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(predicted.values())
    recall = overlap / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


@dataclass
class GoldLabel:
    program: Program
    canonical: list[Call]
    items: StateItems
    execution: Execution


class Scorer:
    """Scores predictions against tasks. Gold executions are computed once per task and cached,
    so scoring many predictions of the same tasks (ablations, replays) is cheap."""

    def __init__(self) -> None:
        self._gold: dict[str, list[GoldLabel]] = {}

    def gold(self, task: Task) -> list[GoldLabel]:
        if task.id not in self._gold:
            labels = []
            for program in task.labels:
                execution = execute(program, task.offered_tools, task.setup)
                labels.append(
                    GoldLabel(
                        program, self._canonical(program, task), flatten_state(execution.state), execution
                    )
                )
            self._gold[task.id] = labels
        return self._gold[task.id]

    @staticmethod
    def _canonical(program: Program | list[Call], task: Task) -> list[Call]:
        specs = spec_index(tuple(task.offered_tools)).specs
        return [
            fill_defaults(call, specs[call.name].parameters) if call.name in specs else call
            for call in program
        ]

    def score(self, task: Task, prediction: Program | CallParseError | None) -> Score:
        base = {"id": task.id, "tool": task.tool, "category": task.category}
        if prediction is None:
            return Score(
                **base,
                success=False,
                state_f1=0.0,
                ast_match=False,
                error_type="missing",
                errors=[ExecError(error_type="missing", message="no prediction for this task")],
            )
        if task.functions is not None:  # no simulator: BFCL's matching rules on the calls themselves
            from toolbench.core.bfcl_checker import score_own_functions

            return score_own_functions(task, prediction)
        if isinstance(prediction, CallParseError):
            return parse_error_score(base, prediction.error_type, prediction.message)
        if task.category == "episode":
            policy = ReplayPolicy(prediction)
            return self.score_episode(task, run_episode(task.offered_tools, task.setup, policy, task.query))
        gold = self.gold(task)
        execution = execute(prediction, task.offered_tools, task.setup)
        f1s, best, ast_match, lcs = self._compare(task, prediction, execution.state)
        errors = list(execution.errors)
        goal_satisfied = None
        if task.goal is not None:
            missed = unmet(task.goal, execution.state)
            goal_satisfied = not missed
            if missed and not errors:
                errors.append(
                    ExecError(
                        error_type="goal:unmet",
                        message="goal not reached: " + "; ".join(p.describe() for p in missed),
                    )
                )
        elif not errors and f1s[best] < 1.0:
            errors.append(
                ExecError(
                    error_type="state:mismatch",
                    message=f"final state differs from every label (best F1 {f1s[best]:.3f})",
                )
            )
        if not errors and all(len(label.program) == 0 for label in gold) and len(prediction) > 0:
            errors.append(
                ExecError(
                    error_type="state:unexpected_call",
                    message="no offered function fits this request; the right answer is no call",
                )
            )
        return Score(
            **base,
            success=not errors,
            state_f1=f1s[best],
            ast_match=ast_match,
            diagnosis=None
            if not errors
            else diagnose(self._canonical(prediction, task), gold[best].canonical, errors),
            best_label=best,
            goal_satisfied=goal_satisfied,
            executable=execution.ok,
            lcs=lcs,
            error_type=errors[0].error_type if errors else None,
            errors=errors,
            n_calls=len(prediction),
        )

    def _compare(
        self, task: Task, program: Program | list[Call], state: dict[str, Any]
    ) -> tuple[list[float], int, bool, float]:
        """(state F1 per label, best label, AST match, LCS) of what was done against the labels."""
        gold = self.gold(task)
        items = flatten_state(state)
        f1s = [state_f1(items, label.items) for label in gold]
        best = max(range(len(gold)), key=f1s.__getitem__)
        canonical = self._canonical(program, task)
        ast_match = any(canonical == label.canonical for label in gold)
        lcs = max(lcs_ratio(canonical, label.canonical) for label in gold)
        return f1s, best, ast_match, lcs

    def score_episode(self, task: Task, episode: EpisodeResult) -> Score:
        """An episode's verdict: success is reward 1 (`toolbench.core.episode` has the rules). State F1,
        AST match and LCS compare the actions taken and the final world with the gold trajectories;
        `error_type` is the first refused step's, else why the episode failed, and None on success
        (a refused step the policy recovered from stays listed in `errors` and the trajectory)."""
        actions = episode.actions
        f1s, best, ast_match, lcs = self._compare(task, actions, episode.state)
        success = episode.success
        return Score(
            id=task.id,
            tool=task.tool,
            category=task.category,
            success=success,
            state_f1=f1s[best],
            ast_match=ast_match,
            best_label=best,
            executable=all(step.error_type is None for step in episode.trajectory),
            lcs=lcs,
            error_type=None if success or not episode.errors else episode.errors[0].error_type,
            errors=episode.errors,
            n_calls=len(actions),
            reward=episode.reward,
            steps=len(episode.trajectory),
            trajectory=episode.trajectory,
        )


DIAGNOSES = (
    "parse_error",
    "no_call",
    "unexpected_call",
    "wrong_function",
    "missing_call",
    "extra_call",
    "wrong_argument",
    "tool_error",
)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a success rate (95% by default): unlike the normal
    approximation it stays inside [0, 1] and is sensible at 0% or 100% with few tasks."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def lcs_ratio(predicted: list[Call], label: list[Call]) -> float:
    """ToolBench's LCS score for action sequences: the longest common subsequence of calls (name and
    arguments equal) over the longer sequence; 1 for two empty programs."""
    if not predicted and not label:
        return 1.0
    # Plain (name, arguments) pairs: the same equality as Call's, without pydantic's __eq__ in an
    # O(n*m) loop (it was most of the scoring time).
    mine = [(call.name, call.arguments) for call in predicted]
    theirs = [(call.name, call.arguments) for call in label]
    previous = [0] * (len(theirs) + 1)
    for call in mine:
        current = [0]
        for j, other in enumerate(theirs):
            current.append(previous[j] + 1 if call == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1] / max(len(predicted), len(label))


# ------------------------------------------------------------------ aggregates
ERROR_FAMILIES = ("parse", "schema", "exec", "state", "goal", "episode", "missing")


def error_family(error_type: str | None) -> str | None:
    """`parse:*`, `schema:*`, `exec:*`, `state:*` and `missing` keep their family; a tool's own
    rule (`home_search:order`) counts as `tool`."""
    if error_type is None:
        return None
    head = error_type.split(":", 1)[0]
    return head if head in ERROR_FAMILIES else "tool"


def aggregate(scores: Iterable[Score]) -> Aggregate:
    scores = list(scores)
    n = len(scores)
    if n == 0:
        return Aggregate(
            n=0,
            success=0.0,
            state_f1=0.0,
            ast_match=0.0,
            parse_error_rate=0.0,
            tool_error_rate=0.0,
            crash_rate=0.0,
            executability=0.0,
            lcs=0.0,
            no_call_rate=0.0,
        )
    families = Counter(error_family(s.error_type) for s in scores)
    rewards = [s.reward for s in scores if s.reward is not None]
    return Aggregate(
        n=n,
        success=sum(s.success for s in scores) / n,
        state_f1=sum(s.state_f1 for s in scores) / n,
        ast_match=sum(s.ast_match for s in scores) / n,
        parse_error_rate=families["parse"] / n,
        tool_error_rate=(families["schema"] + families["tool"]) / n,
        crash_rate=families["exec"] / n,
        executability=sum(s.executable for s in scores) / n,
        lcs=sum(s.lcs for s in scores) / n,
        error_types=dict(sorted(Counter(s.error_type for s in scores if s.error_type).items())),
        no_call_rate=sum(
            s.n_calls == 0 and error_family(s.error_type) not in ("parse", "missing") for s in scores
        )
        / n,
        reward=sum(rewards) / len(rewards) if rewards else None,
    )


def summarize(scores: list[Score]) -> EvalSummary:
    """Per-tool aggregates, the macro average over tools (ToolBench reports per tool, so every
    tool weighs the same) and the micro average over all tasks."""
    by_tool: dict[str, list[Score]] = {}
    for score in scores:
        by_tool.setdefault(score.tool, []).append(score)
    per_tool = {tool: aggregate(group) for tool, group in sorted(by_tool.items())}

    def mean(metric: str) -> float:
        return sum(getattr(t, metric) for t in per_tool.values()) / len(per_tool) if per_tool else 0.0

    rewards = [t.reward for t in per_tool.values() if t.reward is not None]
    macro = MacroFigures(
        **{m: mean(m) for m in MacroFigures.model_fields if m != "reward"},
        reward=sum(rewards) / len(rewards) if rewards else None,  # over the episode tools
    )
    return EvalSummary(
        per_tool=per_tool,
        macro=macro,
        micro=aggregate(scores),
        per_category={c: cell(group) for c, group in _grouped(scores, lambda s: s.category).items()},
        cells={
            f"{tool}/{category}": cell(group)
            for (tool, category), group in _grouped(scores, lambda s: (s.tool, s.category)).items()
        },
    )


def _grouped(scores: list[Score], key: Any) -> dict[Any, list[Score]]:
    groups: dict[Any, list[Score]] = {}
    for score in scores:
        groups.setdefault(key(score), []).append(score)
    return dict(sorted(groups.items()))


def cell(scores: list[Score]) -> CellSummary:
    """One group's success rate with its 95% Wilson interval and why the failures failed."""
    n, wins = len(scores), sum(s.success for s in scores)
    failures = Counter(s.diagnosis or "other" for s in scores if not s.success)
    return CellSummary(
        n=n,
        success=wins / n if n else 0.0,
        ci95=wilson_interval(wins, n),
        diagnoses=dict(sorted(failures.items())),
    )


# ------------------------------------------------------------------ cost (summaries.CostSummary)
def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between order statistics (numpy's
    default), so p50 of an even count is the mean of the middle two."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cost_summary(answers: list[BackendResponse]) -> CostSummary:
    """Requests, tokens and latency over every answer a run got. Tokens count cached answers too
    (their counts were stored with them: what the tasks cost to answer); latency counts only the
    answers asked now, since a cache hit's time says nothing about the model."""
    reported = [a.usage for a in answers if a.usage]
    latencies = [a.latency_ms for a in answers if not a.cached and a.latency_ms is not None]
    return CostSummary(
        requests=len(answers),
        cached=sum(a.cached for a in answers),
        timed=len(latencies),
        usage_reported=len(reported),
        prompt_tokens=sum(u.get("prompt_tokens", 0) for u in reported) if reported else None,
        completion_tokens=sum(u.get("completion_tokens", 0) for u in reported) if reported else None,
        latency_p50_ms=percentile(latencies, 0.5) if latencies else None,
        latency_p95_ms=percentile(latencies, 0.95) if latencies else None,
    )
