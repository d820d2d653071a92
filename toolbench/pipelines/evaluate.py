"""`toolbench eval`: prompts → backend → parse → score, per tool, reproducibly and resumably.

Episode tasks (WebShop) run as a loop instead: the backend is asked for the next action given the
history of actions and observations, one step at a time, up to the environment's step limit.

The steps are joined by files (BFCL's generate/evaluate split): every answer lands in the request
cache as it arrives, so a killed run resumes where it stopped, and `predictions.jsonl` can be
re-scored later with the replay backend.

Every answer the run gets (episode steps and re-asked refusals included) also feeds the cost
summary (`toolbench.core.score.cost_summary`: requests, tokens, latency), written beside the scores in
summary.json (`cost`) and summary.md; answers served from the cache are marked and not timed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from toolbench.core.backends import BackendParams, BackendRequest, BackendResponse, make_backend
from toolbench.core.backends.base import ANSWER_TOKENS
from toolbench.core.cache import RequestCache, cached_generate
from toolbench.core.chat_messages import assistant_calls, call_id, has_parallel, split_parallel, tool_result
from toolbench.core.episode import Episode, EpisodeResult
from toolbench.core.registry import formatter, get_tool, task_formatter, tool_names
from toolbench.core.score import Scorer, cost_summary, summarize
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.io import default_cache_dir, dumps, write_jsonl
from toolbench.foundation.records import Prediction, Program, Score, Step, Task
from toolbench.foundation.run_folder import write_run_folder
from toolbench.foundation.runinfo import finish_record, start_record
from toolbench.foundation.summaries import EvalRun
from toolbench.pipelines.results import run_markdown

COMPLETION_STOPS = ("\n\n", "\nTask:", "-------------")


class EvalConfig(BaseModel):
    model: str
    base_url: str | None = None
    tools: list[str] = Field(default_factory=lambda: ["all"])
    tasks: list[str] | None = Field(None, description="Task files instead of the tools' own test sets.")
    task_set: Literal["test", "indist"] = Field(
        "test",
        description="The tools' frozen set: test (held-out templates) or indist (training templates, "
        "new values); see toolbench.core.task_files.TASK_SETS.",
    )
    mode: Literal["completion", "chat"] = "completion"
    k_demos: int = Field(3, ge=0, le=20)
    retriever: Literal["bm25", "dense", "hybrid"] = "bm25"
    system_prompt: str | None = None
    demos: str | None = Field(
        None, description="Generated samples whose train split are the demos; default: made once and cached."
    )
    max_tokens: int = Field(ANSWER_TOKENS, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    concurrency: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    timeout: float = Field(60.0, gt=0.0, description="Seconds per request; a request never waits forever.")
    retries: int = Field(4, ge=0)
    use_cache: bool = True
    cache_dir: str | None = None
    limit: int | None = Field(None, ge=1, description="Only the first N tasks of each file (smoke tests).")
    max_steps: int | None = Field(None, ge=1, description="Episode step limit; default: the environment's.")
    call_format: str = Field("auto", description="Reader of calls in answer text (`toolbench.core.calls`).")
    device: str = "auto"
    dtype: str = "auto"
    guided: bool = Field(
        False,
        description="Guided decoding (hf: models, chat mode): only answers that parse and fit the "
        "offered tools; see toolbench.core.guided.",
    )

    @model_validator(mode="after")
    def _guided_where_it_runs(self) -> EvalConfig:
        if self.guided and not guided_runs_here(self.model, self.mode):
            raise ValueError(GUIDED_WHERE)
        return self


GUIDED_WHERE = (
    "--guided runs in toolbench's own decoding loop: give an hf: model and --mode chat "
    "(a server guides its own, e.g. vLLM with tool_choice='required')"
)


def guided_runs_here(model: str, mode: str) -> bool:
    """Guided decoding needs toolbench's decoding loop (a local model) and the request's tools."""
    return model.startswith("hf:") and mode == "chat"


class MarkingCache(RequestCache):
    """The answer cache, marking what it serves as `cached`, so the cost summary can tell answers
    asked in this run (timed) from answers reused (not timed)."""

    def get(self, key: str) -> BackendResponse | None:
        answer = super().get(key)
        return None if answer is None else answer.model_copy(update={"cached": True})


def tasks_digest(tasks: list[Task]) -> str:
    """sha256 of the task records, in id order: two runs scored the same tasks (ids, queries,
    labels, setups) exactly when their digests are equal, whatever files they came from. The
    leaderboard compares runs only when these match."""
    lines = [dumps(t.model_dump(mode="json"), sort_keys=True) for t in sorted(tasks, key=lambda t: t.id)]
    return hashlib.sha256(b"\n".join(lines)).hexdigest()


def select_tasks(config: EvalConfig) -> list[Task]:
    from toolbench.core.task_files import load_tasks
    from toolbench.pipelines.categories import CATEGORIES, categories_dir

    if config.tasks:
        files = [Path(p) for p in config.tasks]
    else:
        if config.task_set == "test":
            names = list(tool_names()) + list(CATEGORIES) if config.tools == ["all"] else config.tools
        else:  # the categories are built from held-out tasks only
            names = list(tool_names()) if config.tools == ["all"] else config.tools
            if unknown := [name for name in names if name in CATEGORIES]:
                raise UserError(
                    f"--tools {','.join(unknown)}: categories have held-out tasks only; "
                    f"--task-set {config.task_set} takes tools"
                )
        files = []
        for name in names:
            files.append(
                categories_dir() / f"{name}.jsonl"
                if name in CATEGORIES
                else get_tool(name).tasks_file(config.task_set)
            )
    tasks = []
    for path in files:
        numbered = load_tasks(path)
        tasks.extend(n.task for n in numbered[: config.limit])
    return tasks


def demo_index(config: EvalConfig, cache_dir: Path):
    """The demo retriever: from --demos, or from a train set generated once and kept in the cache."""
    from toolbench.pipelines.generate import GenerateConfig, generate
    from toolbench.retriever import demo_documents, make_retriever, open_index
    from toolbench.retriever.corpus import corpus_hash

    if config.demos:
        samples = Path(config.demos)
    else:
        samples = cache_dir / "demos" / "train-2000-per-tool-seed0.jsonl"
        if not samples.exists():
            generate(
                GenerateConfig(tools=tool_names(), n=2000 * len(tool_names()), seed=0, split="train"), samples
            )
    documents = demo_documents(samples)
    folder = cache_dir / "indexes" / f"{config.retriever}-{corpus_hash(documents)[:16]}"
    if (folder / "meta.json").exists():
        return open_index(folder, documents)
    index = make_retriever(config.retriever).build(documents)
    index.save(folder, {"demos": str(samples)})
    return index


def build_requests(config: EvalConfig, tasks: list[Task], builder: Any) -> list[BackendRequest]:
    requests = []
    for task in tasks:
        if config.mode == "completion":
            requests.append(BackendRequest(id=task.id, mode="completion", prompt=builder.completion(task)))
        else:
            messages, tools = builder.chat(task)
            requests.append(BackendRequest(id=task.id, mode="chat", messages=messages, tools=tools))
    return requests


def to_prediction(
    task: Task, answer: BackendResponse, call_format: str = "auto"
) -> tuple[Prediction, Program | CallParseError | None]:
    """The answer as a stored prediction and as the program the scorer runs (or the parse error).
    Structured `tool_calls` (an OpenAI-compatible server that parsed them) win; otherwise the text
    is read with `call_format` (`auto`: the form each answer is written in)."""
    if answer.error is not None:
        return Prediction(id=task.id, text="", meta={"error": answer.error}), CallParseError(
            "backend", answer.error
        )
    try:
        if answer.tool_calls is not None:
            program = task_formatter(task, "json").parse_items(answer.tool_calls)
        else:
            program = task_formatter(task, call_format).parse(answer.text)
    except CallParseError as error:
        return Prediction(id=task.id, text=answer.text, meta={"parse_error": error.error_type}), error
    return Prediction(id=task.id, text=answer.text, calls=list(program)), program


def run_eval(config: EvalConfig, out: Path, progress: Any = None, tasks: list[Task] | None = None) -> EvalRun:
    """Run the eval into OUT (predictions.jsonl, scores.jsonl, summary.json, summary.md); the
    summary, its cost and run record as written. `tasks`: `select_tasks(config)` when a caller has
    already read them (the CLI, for its progress total), so the task files are read once."""
    from toolbench.retriever.prompt import PromptBuilder

    record = start_record("eval", config.model_dump(), seed=config.seed)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    tasks = select_tasks(config) if tasks is None else tasks
    if not tasks:
        raise UserError("no tasks selected")
    # Demos come from the registered tools' samples: tasks that carry their own functions (BFCL's)
    # get none, so a run of only those builds no demo index.
    k_demos = config.k_demos if any(task.functions is None for task in tasks) else 0
    builder = PromptBuilder(demo_index(config, cache_dir) if k_demos else None, k_demos, config.system_prompt)
    single = [task for task in tasks if task.category != "episode"]
    requests = build_requests(config, single, builder)
    backend = make_backend(
        config.model,
        base_url=config.base_url,
        concurrency=config.concurrency,
        batch_size=config.batch_size,
        timeout=config.timeout,
        retries=config.retries,
        device=config.device,
        dtype=config.dtype,
    )
    params = BackendParams(
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        seed=config.seed,
        stop=COMPLETION_STOPS if config.mode == "completion" else (),
        guided=config.guided,
    )
    cache = MarkingCache(cache_dir / "requests.sqlite") if config.use_cache else None
    asked: list[BackendResponse] = []  # every answer the run got, for the cost summary
    try:
        answers, hits = cached_generate(backend, requests, params, cache, progress)
        asked += answers
        answers = retry_one_call_per_turn(backend, requests, answers, params, cache, asked)
        check_refusals(config.model, answers)
        episodes = [task for task in tasks if task.category == "episode"]
        played, episode_hits = run_episodes(
            config, episodes, builder, backend, params, cache, progress, asked
        )
    finally:
        if cache is not None:
            cache.close()
        backend.close()
    results: dict[str, tuple[Prediction, Score]] = {}
    scorer = Scorer()
    for task, answer in zip(single, answers, strict=True):
        prediction, program = to_prediction(task, answer, config.call_format)
        results[task.id] = (prediction, scorer.score(task, program))
    for task, result in zip(episodes, played, strict=True):
        prediction = Prediction(
            id=task.id, calls=result.actions, meta={"end": result.end, "steps": len(result.trajectory)}
        )
        results[task.id] = (prediction, scorer.score_episode(task, result))
    predictions = [results[task.id][0] for task in tasks]
    scores = [results[task.id][1] for task in tasks]
    hits += episode_hits
    summary = summarize(scores)
    cost = cost_summary(asked)
    finish_record(
        record,
        tasks=len(tasks),
        cache_hits=hits,
        backend=backend.fingerprint,
        requests=cost.requests,
        tasks_sha256=tasks_digest(tasks),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "predictions.jsonl", predictions)
    write_jsonl(out / "scores.jsonl", scores)
    run = EvalRun(summary=summary, cost=cost, run=record)
    write_run_folder(out, run, run_markdown(run))
    return run


def retry_one_call_per_turn(
    backend: Any,
    requests: list[BackendRequest],
    answers: list[BackendResponse],
    params: BackendParams,
    cache: RequestCache | None,
    asked: list[BackendResponse] | None = None,
) -> list[BackendResponse]:
    """A server whose chat template takes one call per assistant turn (Llama 3.1's) refuses
    prompts whose demos call several functions at once. Those refused requests are asked again
    with each multi-call turn split into single-call turns (`chat_messages.split_parallel`); the
    endpoint's own rendering decides, not the model's name. (The hf backend probes its template
    and splits before asking.)"""
    redo = [
        i
        for i, (request, answer) in enumerate(zip(requests, answers, strict=True))
        if answer.error is not None and request.mode == "chat" and has_parallel(request.messages)
    ]
    if not redo:
        return answers
    split = [
        requests[i].model_copy(update={"messages": split_parallel(requests[i].messages or [])}) for i in redo
    ]
    again, _ = cached_generate(backend, split, params, cache)
    if asked is not None:
        asked += again
    answers = list(answers)
    for i, answer in zip(redo, again, strict=True):
        if answer.error is None:
            answers[i] = answer
    return answers


def check_refusals(model: str, answers: list[BackendResponse]) -> None:
    """Stop, with the endpoint's own words, when most requests were refused (a chat template that
    rejects the prompt's shape, a wrong model name, a bad key): scoring those as failures would
    report a model's 0% for what is the harness's or the server's fault. A few refusals (say,
    prompts over the context length) are scored as failures and counted in the summary."""
    refused = [answer.error for answer in answers if answer.error is not None]
    if refused and 2 * len(refused) > len(answers):
        raise UserError(
            f"{model} refused {len(refused)} of {len(answers)} requests, so the run stopped instead of "
            f"scoring them as failures; the first refusal: {refused[0]}"
        )


# ------------------------------------------------------------------- episodes
EPISODE_STOPS = ("\n",)  # completion mode: one action per line, so one line per step


def episode_request(config: EvalConfig, task: Task, base: Any, history: list[Step]) -> BackendRequest:
    """The request for an episode's next action: the task's prompt, then every step so far.

    completion: the ToolBench scaffold continued with `<action>` / `Observation: <text>` lines (the
    observation's own lines indented), ending where the next action goes. chat: the task's
    messages, then per step the assistant's tool call and the tool's observation (an answer that
    held no call: the assistant's text and the error as a user turn)."""
    step = len(history)
    if config.mode == "completion":
        python = formatter(tuple(task.offered_tools), "python")
        lines = []
        for past in history:
            said = (
                python.render(Program([past.action]))
                if past.action is not None
                else (past.text or "").strip()
            )
            lines.append(f"{said}\nObservation: " + past.observation.replace("\n", "\n  ") + "\n")
        return BackendRequest(id=task.id, mode="completion", prompt=base + "".join(lines), step=step)
    messages, tools = base
    messages = list(messages)
    for i, past in enumerate(history):
        if past.action is not None:
            id_ = call_id(task.id, "step", i)
            messages.append(assistant_calls([past.action], [id_]))
            messages.append(tool_result(past.action, id_, past.observation))
        else:
            messages.append({"role": "assistant", "content": past.text or ""})
            messages.append({"role": "user", "content": past.observation})
    return BackendRequest(id=task.id, mode="chat", messages=messages, tools=tools, step=step)


def run_episodes(
    config: EvalConfig,
    tasks: list[Task],
    builder: Any,
    backend: Any,
    params: BackendParams,
    cache: RequestCache | None,
    progress: Any = None,
    asked: list[BackendResponse] | None = None,
) -> tuple[list[EpisodeResult], int]:
    """Play every episode task with the backend as the policy, all episodes in lockstep (one
    batched, cached request per running episode and step) until each ends (`toolbench.core.episode`:
    terminal action, no call in the answer, or the step limit). An answer's first call is the
    action; later calls in the same answer are ignored. Returns (results, cache hits); every
    answer is also appended to `asked` (the run's cost summary)."""
    episodes = [Episode(task.offered_tools, task.setup, config.max_steps) for task in tasks]
    bases = [
        builder.completion(task) if config.mode == "completion" else builder.chat(task) for task in tasks
    ]
    if config.mode == "completion":
        params = params.model_copy(update={"stop": EPISODE_STOPS})
    hits = 0
    while True:
        running = [k for k, episode in enumerate(episodes) if not episode.over]
        if not running:
            break
        requests = [episode_request(config, tasks[k], bases[k], episodes[k].trajectory) for k in running]
        answers, new_hits = cached_generate(backend, requests, params, cache, progress)
        hits += new_hits
        if asked is not None:
            asked += answers
        for k, answer in zip(running, answers, strict=True):
            episode = episodes[k]
            _, program = to_prediction(tasks[k], answer, config.call_format)
            if isinstance(program, CallParseError):
                episode.step(program, answer.text)
                if answer.error is not None:  # the backend refused: asking again would not help
                    episode.stop()
            elif len(program) == 0:
                episode.stop()
            else:
                episode.step(program[0], answer.text or None)
    return [episode.result() for episode in episodes], hits


def setting_name(config: EvalConfig) -> str:
    prompt = (
        "none"
        if not config.system_prompt
        else "sys" + hashlib.sha256(config.system_prompt.encode()).hexdigest()[:6]
    )
    name = f"{config.mode}-k{config.k_demos}-{config.retriever if config.k_demos else 'noretr'}-{prompt}"
    return name + ("-guided" if config.guided else "")
