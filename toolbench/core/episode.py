"""Episodes: a policy acts one call at a time and sees the world's answer before choosing the next.

Single-shot tasks hand the executor a whole program; an episode task (category `episode`, e.g.
WebShop) cannot, because the right next action depends on what the last one showed (which products
a search returned). So:

- A **policy** is anything with `act(instruction, history) -> next action` (`Policy`): a model
  behind a backend, or `ReplayPolicy`, which replays a fixed trajectory (a gold label, or a
  trajectory file of `{"id": TASK_ID, "calls": [...]}` lines).
- An **environment** is a simulator that knows when it is finished and how well it did
  (`Environment`: `is_done()`, `reward()`); the other offered tools are plain simulators.
- `Episode` steps one action at a time; `run_episode` drives it with a policy.

The rules, one place:
- One step is one action. A valid action runs on its tool and the observation is that tool's
  `observe(call, result)` text.
- A refused action (a schema violation, a tool rule such as `webshop:no_product`) or an answer that
  does not parse is an **error observation** `Error (<error_type>): <message>`. The world is left
  as it was, the step counts toward the limit, and the episode **goes on**, as in WebShop, where an
  invalid action leaves the page unchanged: an agent may recover from a mistake.
- The episode ends when the environment reaches a terminal state (`end = "terminal"`, e.g. after
  `buy`), when the policy gives no action (`"stopped"`: a replayed trajectory ran out, or a model
  answered without any call), or after `max_steps` steps (`"step_limit"`; the environment's class
  sets the limit).
- The reward is the environment's `reward()` when the episode ends (0 unless it reached a state it
  scores). Success is reward 1.
- `errors` lists each refused step (`call_index` = its step number), then why the episode failed,
  if it did: `episode:stopped`, `episode:step_limit`, or `episode:reward` (terminal, reward < 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from toolbench.core.executor import make_simulators, run_call
from toolbench.core.registry import get_tool, spec_index, tool_names
from toolbench.core.simulator import Simulator
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.records import Call, ExecError, Prediction, Step

FULL_REWARD = 1.0 - 1e-9  # rewards are ratios of small integers; allow for float rounding


class Environment(Simulator):
    """A simulator played as an episode. Subclasses implement `is_done` and `reward` (and usually
    `observe`, to describe what the agent now sees)."""

    max_steps: ClassVar[int] = 15

    def is_done(self) -> bool:
        """Whether a terminal action has been taken (no further action is possible)."""
        raise NotImplementedError

    def reward(self) -> float:
        """How well the episode went, in [0, 1]; 1 is success."""
        raise NotImplementedError

    def reward_note(self) -> str:
        """Why the reward is what it is, for the error message of a failed episode."""
        return ""


def is_environment(tool: str) -> bool:
    return issubclass(get_tool(tool), Environment)


def single_shot_tools() -> list[str]:
    """The registered tools that are not environments: any combination of them can be offered
    together (their function names are unique). Environments keep their paper's action names
    (webshop's `search`, like home_search's), so they are offered only beside tools they share
    no function name with, and never as another task's distractor."""
    return [name for name in tool_names() if not is_environment(name)]


class Policy(Protocol):
    """Maps the instruction and the observation history to the next action; None ends the episode."""

    def act(self, instruction: str, history: Sequence[Step]) -> Call | CallParseError | None: ...


class ReplayPolicy:
    """Replays a fixed list of actions, one per step, then stops."""

    def __init__(self, actions: Iterable[Call]):
        self.actions = list(actions)

    def act(self, instruction: str, history: Sequence[Step]) -> Call | None:
        return self.actions[len(history)] if len(history) < len(self.actions) else None


def load_trajectories(path: str | Path) -> dict[str, ReplayPolicy]:
    """A trajectory file: JSONL, one `{"id": TASK_ID, "calls": [{"name", "arguments"}, ...]}` per
    line (the predictions format with structured calls), as replay policies by task id."""
    from pydantic import ValidationError

    from toolbench.foundation.io import describe_validation_error, iter_jsonl

    policies: dict[str, ReplayPolicy] = {}
    for number, value in iter_jsonl(Path(path)):
        try:
            prediction = Prediction.model_validate(value)
        except ValidationError as error:
            raise UserError(
                f"{path}:{number}: not a trajectory: {describe_validation_error(error)}"
            ) from None
        if prediction.calls is None:
            raise UserError(f"{path}:{number}: field 'calls' is missing: a trajectory lists its actions")
        if prediction.id in policies:
            raise UserError(f"{path}:{number}: task id '{prediction.id}' has a trajectory already")
        policies[prediction.id] = ReplayPolicy(prediction.calls)
    return policies


def error_observation(error_type: str, message: str) -> str:
    return f"Error ({error_type}): {message}"


@dataclass
class EpisodeResult:
    trajectory: list[Step]
    reward: float
    end: str  # terminal, stopped, step_limit, or setup (the task's setup was refused)
    state: dict[str, Any]
    errors: list[ExecError] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.end == "terminal" and self.reward >= FULL_REWARD

    @property
    def actions(self) -> list[Call]:
        return [step.action for step in self.trajectory if step.action is not None]


class Episode:
    """One episode on fresh simulators of the offered tools; exactly one must be an Environment."""

    def __init__(self, tools: list[str], setup: dict[str, Any] | None = None, max_steps: int | None = None):
        self.index = spec_index(tuple(tools))
        self.trajectory: list[Step] = []
        self.errors: list[ExecError] = []
        self.end: str | None = None
        simulators = make_simulators(tools, setup)
        if isinstance(simulators, ExecError):
            self.simulators: dict[str, Any] = {}
            self.env: Environment | None = None
            self.errors.append(simulators)
            self.end = "setup"
            self.max_steps = 0
            return
        self.simulators = simulators
        environments = [sim for sim in simulators.values() if isinstance(sim, Environment)]
        if len(environments) != 1:
            raise ValueError(f"an episode needs exactly one environment among {tools}")
        self.env = environments[0]
        self.max_steps = max_steps or type(self.env).max_steps

    @property
    def over(self) -> bool:
        return self.end is not None

    def step(self, action: Call | CallParseError, text: str | None = None) -> Step:
        """Take one action (or record an unparseable answer) and return the step with its observation."""
        if self.over:
            raise RuntimeError(f"the episode is over ({self.end})")
        i = len(self.trajectory)
        if isinstance(action, CallParseError):
            error: ExecError | None = ExecError(
                call_index=i, error_type=action.error_type, message=action.message
            )
            call = None
        else:
            results: list[Any] = []
            error = run_call(i, action, self.index, self.simulators, results)
            call = action
        if error is not None:
            self.errors.append(error)
            step = Step(
                action=call,
                text=text,
                observation=error_observation(error.error_type, error.message),
                error_type=error.error_type,
            )
        else:
            owner = self.index.owner[action.name]
            step = Step(
                action=call, text=text, observation=self.simulators[owner.name].observe(call, results[0])
            )
        self.trajectory.append(step)
        if self.env is not None and self.env.is_done():
            self.end = "terminal"
        elif len(self.trajectory) >= self.max_steps:
            self.end = "step_limit"
        return step

    def stop(self) -> None:
        """The policy gave no action: the episode ends here."""
        if not self.over:
            self.end = "stopped"

    def result(self) -> EpisodeResult:
        if not self.over:
            raise RuntimeError("the episode is still running")
        errors = list(self.errors)
        reward = self.env.reward() if self.env is not None else 0.0
        n = len(self.trajectory)
        if self.end == "stopped":
            errors.append(
                ExecError(
                    error_type="episode:stopped",
                    message=f"no terminal action: the policy stopped after {n} steps",
                )
            )
        elif self.end == "step_limit":
            errors.append(
                ExecError(
                    error_type="episode:step_limit", message=f"no terminal action within the {n}-step limit"
                )
            )
        elif self.end == "terminal" and reward < FULL_REWARD and self.env is not None:
            note = self.env.reward_note()
            errors.append(
                ExecError(
                    error_type="episode:reward",
                    message=f"reward {reward:.3f} < 1" + (f": {note}" if note else ""),
                )
            )
        state = {name: sim.state() for name, sim in self.simulators.items()}
        return EpisodeResult(list(self.trajectory), reward, self.end or "", state, errors)


def run_episode(
    tools: list[str],
    setup: dict[str, Any] | None,
    policy: Policy,
    instruction: str = "",
    max_steps: int | None = None,
) -> EpisodeResult:
    episode = Episode(tools, setup, max_steps)
    while not episode.over:
        action = policy.act(instruction, episode.trajectory)
        if action is None:
            episode.stop()
        else:
            episode.step(action)
    return episode.result()
