"""`toolbench eval`: prompts → backend → parse → score, per tool, reproducibly and resumably.

The steps are joined by files (BFCL's generate/evaluate split): every answer lands in the request
cache as it arrives, so a killed run resumes where it stopped, and `predictions.jsonl` can be
re-scored later with the replay backend.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from toolbench.backends import BackendParams, BackendRequest, BackendResponse, make_backend
from toolbench.cache import RequestCache, cached_generate
from toolbench.errors import CallParseError, UserError
from toolbench.io import atomic_open, write_json, write_jsonl
from toolbench.records import Prediction, Program, Score, Task
from toolbench.registry import formatter, get_tool, tool_names
from toolbench.results import markdown_table
from toolbench.runinfo import finish_record, start_record
from toolbench.score import summarize

COMPLETION_STOPS = ("\n\n", "\nTask:", "-------------")


def default_cache_dir() -> Path:
    return Path(os.environ.get("TOOLBENCH_CACHE", Path.home() / ".cache" / "toolbench"))


class EvalConfig(BaseModel):
    model: str
    base_url: str | None = None
    tools: list[str] = Field(default_factory=lambda: ["all"])
    tasks: list[str] | None = Field(None, description="Task files instead of the tools' own test sets.")
    mode: Literal["completion", "chat"] = "completion"
    k_demos: int = Field(3, ge=0)
    retriever: Literal["bm25", "dense", "hybrid"] = "bm25"
    system_prompt: str | None = None
    demos: str | None = Field(
        None, description="Generated samples whose train split are the demos; default: made once and cached."
    )
    max_tokens: int = Field(256, ge=1)
    temperature: float = 0.0
    seed: int = 0
    concurrency: int = 8
    batch_size: int = 8
    timeout: float = 60.0
    retries: int = 4
    use_cache: bool = True
    cache_dir: str | None = None
    limit: int | None = Field(None, description="Only the first N tasks of each file (smoke tests).")


def select_tasks(config: EvalConfig) -> list[Task]:
    from toolbench.categories import CATEGORIES, categories_dir
    from toolbench.tasks import load_tasks

    if config.tasks:
        files = [Path(p) for p in config.tasks]
    else:
        names = list(tool_names()) + list(CATEGORIES) if config.tools == ["all"] else config.tools
        files = []
        for name in names:
            files.append(
                categories_dir() / f"{name}.jsonl" if name in CATEGORIES else get_tool(name).tasks_file()
            )
    tasks = []
    for path in files:
        numbered = load_tasks(path)
        tasks.extend(n.task for n in numbered[: config.limit] if n.task.category != "episode")
    return tasks


def demo_index(config: EvalConfig, cache_dir: Path):
    """The demo retriever: from --demos, or from a train set generated once and kept in the cache."""
    from toolbench.generate import GenerateConfig, generate
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
    task: Task, answer: BackendResponse, mode: str
) -> tuple[Prediction, Program | CallParseError | None]:
    """The answer as a stored prediction and as the program the scorer runs (or the parse error)."""
    if answer.error is not None:
        return Prediction(id=task.id, text="", meta={"error": answer.error}), CallParseError(
            "backend", answer.error
        )
    tools = tuple(task.offered_tools)
    try:
        if answer.tool_calls is not None:
            program = formatter(tools, "json").parse_items(answer.tool_calls)
        else:
            program = formatter(tools, "python" if mode == "completion" else "chat-native").parse(answer.text)
    except CallParseError as error:
        return Prediction(id=task.id, text=answer.text, meta={"parse_error": error.error_type}), error
    return Prediction(id=task.id, text=answer.text, calls=list(program)), program


def run_eval(config: EvalConfig, out: Path, progress: Any = None) -> dict[str, Any]:
    from toolbench.retriever.prompt import PromptBuilder

    record = start_record("eval", config.model_dump(), seed=config.seed)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    tasks = select_tasks(config)
    if not tasks:
        raise UserError("no tasks selected")
    builder = PromptBuilder(
        demo_index(config, cache_dir) if config.k_demos else None, config.k_demos, config.system_prompt
    )
    requests = build_requests(config, tasks, builder)
    backend = make_backend(
        config.model,
        base_url=config.base_url,
        concurrency=config.concurrency,
        batch_size=config.batch_size,
        timeout=config.timeout,
        retries=config.retries,
    )
    params = BackendParams(
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        seed=config.seed,
        stop=COMPLETION_STOPS if config.mode == "completion" else (),
    )
    cache = RequestCache(cache_dir / "requests.sqlite") if config.use_cache else None
    try:
        answers, hits = cached_generate(backend, requests, params, cache, progress)
    finally:
        if cache is not None:
            cache.close()
        backend.close()
    predictions, programs = zip(
        *(to_prediction(t, a, config.mode) for t, a in zip(tasks, answers, strict=True)), strict=True
    )
    scores = score_programs(tasks, list(programs))
    summary = summarize(scores)
    finish_record(record, tasks=len(tasks), cache_hits=hits, backend=backend.fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "predictions.jsonl", predictions)
    write_jsonl(out / "scores.jsonl", scores)
    write_json(out / "summary.json", {"summary": summary, "run": record.model_dump(mode="json")})
    with atomic_open(out / "summary.md", "w") as handle:
        handle.write(markdown_table(summary))
    return summary


def score_programs(tasks: list[Task], programs: list[Program | CallParseError | None]) -> list[Score]:
    from toolbench.score import Scorer

    scorer = Scorer()
    return [scorer.score(task, program) for task, program in zip(tasks, programs, strict=True)]


def setting_name(config: EvalConfig) -> str:
    prompt = (
        "none"
        if not config.system_prompt
        else "sys" + hashlib.sha256(config.system_prompt.encode()).hexdigest()[:6]
    )
    return f"{config.mode}-k{config.k_demos}-{config.retriever if config.k_demos else 'noretr'}-{prompt}"
