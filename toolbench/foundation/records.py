"""Core records. Everything that crosses a file boundary is one of these pydantic models.

Values inside `Call.arguments` are canonical JSON values (what OpenAI `tool_calls` would carry);
surface forms such as `Date(4, 12, 2023)` in the python call format map onto them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from toolbench.foundation.goals import Predicate

# BFCL's Python categories (`toolbench.pipelines.bfcl_import`), under BFCL's own names and in BFCL's order, so
# per-category tables and the leaderboard's overall score (the mean of category rates) read as
# BFCL's do. BFCL's `parallel` is the project's `parallel` (several independent calls, any order):
# one name in both Literals, one category in `Category`.
BfclCategory = Literal[
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
]
ToolbenchCategory = Literal["single", "multi_call", "parallel", "multi_tool", "relevance", "episode"]
Category = Literal[ToolbenchCategory, BfclCategory]  # one flat Literal: one clear error for a typo
Split = Literal["train", "test"]


def check_json_value(value: Any, where: str = "value") -> None:
    """Reject what JSON cannot carry (NaN, infinities, non-string keys, tuples, objects)."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
            check_json_value(item, f"{where}.{key}")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


class FunctionSpec(BaseModel):
    """One function as a model sees it: OpenAI function format. The executor validates calls
    against exactly this `parameters` schema, so what the model is told is what is enforced."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @cached_property
    def parameter_names(self) -> list[str]:
        """Parameters in declaration order: how positional arguments are bound."""
        return list(self.parameters.get("properties", {}))

    def openai_tool(self) -> dict[str, Any]:
        return {"type": "function", "function": self.model_dump()}


class Call(BaseModel):
    """One function call. Parsers build these with `Call.trusted` (their output is JSON by
    construction); everything else goes through validation."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments")
    @classmethod
    def _json_only(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        check_json_value(arguments, "arguments")
        return arguments

    @classmethod
    def trusted(cls, name: str, arguments: dict[str, Any]) -> Call:
        """`model_construct` without its per-call overhead (it is the generator's hot path);
        tests check the result equals a validated Call."""
        call = _new(cls)
        _set(call, "__dict__", {"name": name, "arguments": arguments})
        _set(call, "__pydantic_fields_set__", _CALL_FIELDS)
        _set(call, "__pydantic_extra__", None)
        _set(call, "__pydantic_private__", None)
        return call


_new = object.__new__
_set = object.__setattr__
_CALL_FIELDS = {"name", "arguments"}


class Program(RootModel[list[Call]]):
    """An ordered list of calls: one model answer (ToolBench actions are multi-call programs)."""

    root: list[Call] = Field(default_factory=list)

    def __iter__(self) -> Iterator[Call]:  # type: ignore[override]
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)

    def __getitem__(self, index: int) -> Call:
        return self.root[index]

    @property
    def names(self) -> list[str]:
        return [call.name for call in self.root]


class Task(BaseModel):
    """A benchmark item: a request and every program that counts as a right answer. A key it does
    not know is refused (`extra="forbid"`): a misspelt `lables` must not pass for a task."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tool: str = Field(description="Aggregation key: the tool, or the cross-tool category name.")
    tools: list[str] = Field(default_factory=list, description="Tools offered; empty means [tool].")
    category: Category = "single"
    query: str
    labels: list[Program] = Field(min_length=1)
    setup: dict[str, Any] | None = None
    goal: list[Predicate] | None = Field(
        None, description="World-state tools: success is these predicates holding on the final state."
    )
    functions: list[FunctionSpec] | None = Field(
        None,
        description="The task's own functions (BFCL's tasks have no simulator): offered, parsed against "
        "and scored by `toolbench.core.bfcl_checker` instead of the registered tools'.",
    )
    answers: list[dict[str, dict[str, list[Any]]]] | None = Field(
        None,
        description="With `functions`: per call, per argument, the acceptable values (BFCL's possible "
        'answers; "" in a list means the argument may be left out). Empty: no call is right; None: '
        "any call is (BFCL's live_relevance).",
    )
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _own_functions(self) -> Task:
        """A task that carries functions names only those, once each, in its labels and answers:
        a typo would otherwise score every answer as a wrong function."""
        if self.functions is None:
            if self.answers is not None:
                raise ValueError("'answers' needs 'functions' (the acceptable values are per function)")
            return self
        names = [spec.name for spec in self.functions]
        if len(set(names)) != len(names):
            raise ValueError(
                f"'functions' names a function twice: {sorted(n for n in set(names) if names.count(n) > 1)}"
            )
        known = set(names)
        used = [call.name for label in self.labels for call in label]
        used += [name for answer in self.answers or [] for name in answer]
        unknown = sorted(set(used) - known)
        if unknown:
            raise ValueError(f"labels or answers call {', '.join(unknown)}, not among the task's functions")
        return self

    @property
    def offered_tools(self) -> list[str]:
        return self.tools or [self.tool]


class Sample(Task):
    """A generated training example: the task, its gold program rendered, and what it returned."""

    split: Split = "train"
    action: str = Field(description="The gold program in the python call format.")
    results: list[Any] = Field(default_factory=list)


class Prediction(BaseModel):
    """A model's answer to one task: raw text to parse, or already structured calls. Unknown keys
    are refused, as in tasks: `txt` instead of `text` would otherwise score as no answer."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str | None = None
    calls: list[Call] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class ExecError(BaseModel):
    call_index: int | None = None
    error_type: str
    message: str


class Step(BaseModel):
    """One step of an episode: the action the policy took (None when its answer held no valid
    call), the model's raw text if any, and what the world answered."""

    action: Call | None = None
    text: str | None = None
    observation: str
    error_type: str | None = Field(None, description="Set when the action was refused or unparseable.")


class Score(BaseModel):
    """The verdict on one prediction. `success` is ToolBench's rule (state F1 == 1 against the
    best label) and additionally requires a clean parse and execution. Episode tasks (see
    `toolbench.core.episode`) also carry `reward`, `steps` and the `trajectory`; there success is
    reward 1."""

    id: str
    tool: str
    category: Category
    success: bool
    state_f1: float
    ast_match: bool
    best_label: int | None = None
    goal_satisfied: bool | None = None
    executable: bool = Field(
        False, description="Parsed and every call ran without error (ToolBench's executability)."
    )
    lcs: float = Field(
        0.0, description="Longest common call subsequence with the best label, over the longer program."
    )
    error_type: str | None = None
    errors: list[ExecError] = Field(default_factory=list)
    n_calls: int = 0
    diagnosis: str | None = Field(
        None,
        description="Why a failed answer failed, in terms a user can act on: parse_error, no_call, "
        "unexpected_call, wrong_function, missing_call, extra_call, wrong_argument or tool_error "
        "(`toolbench.core.score.DIAGNOSES`); None on success.",
    )
    reward: float | None = Field(None, description="Episodes: the environment's reward in [0, 1].")
    steps: int | None = Field(None, description="Episodes: actions taken, refused ones included.")
    trajectory: list[Step] | None = Field(None, description="Episodes: every action and observation.")


class RunRecord(BaseModel):
    """Written beside every result file so a number can always be traced to how it was made."""

    command: str
    config: dict[str, Any]
    seed: int | None = None
    git_revision: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)
    started_at: str
    finished_at: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)


def diagnose(predicted: list[Call], label: list[Call], errors: list[ExecError]) -> str:
    """The first of these that holds, comparing the prediction with its best label (defaults
    filled): no call where one was due; a call where none was (relevance); a function the label
    does not call; fewer calls; more calls; the same functions with an argument wrong or missing;
    else a rule of the tool refused a call."""
    if not predicted:
        return "no_call"
    if not label:
        return "unexpected_call"
    label_names = {call.name for call in label}
    if any(call.name not in label_names for call in predicted):
        return "wrong_function"
    if len(predicted) < len(label):
        return "missing_call"
    if len(predicted) > len(label):
        return "extra_call"
    if any(call not in label for call in predicted):
        return "wrong_argument"
    refused = any(e.error_type.split(":", 1)[0] not in ("state", "goal") for e in errors)
    return "tool_error" if refused else "wrong_argument"


def parse_error_score(base: dict[str, Any], error_type: str, message: str) -> Score:
    """The Score of an answer whose calls could not be read (`base`: id, tool, category): no
    success, no state, diagnosis `parse_error`. One constructor for every scorer."""
    return Score(
        **base,
        success=False,
        state_f1=0.0,
        ast_match=False,
        diagnosis="parse_error",
        error_type=error_type,
        errors=[ExecError(error_type=error_type, message=message)],
    )
