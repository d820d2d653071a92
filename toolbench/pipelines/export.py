"""Exports of canonical samples into the formats training stacks read directly.

- `openai`: the OpenAI fine-tuning chat format: `messages` (assistant `tool_calls` with
  `arguments` as a JSON string) + `tools` + `parallel_tool_calls`.
- `hf-chat`: `messages` + `tools` for `tokenizer.apply_chat_template(messages, tools=tools)` and
  TRL's SFTTrainer (assistant `tool_calls` with `arguments` as a dict, as HF chat templates expect).
- `sharegpt`: `conversations` (human / function_call / observation / gpt) + `tools` as a JSON
  string + optional `system`, as LLaMA-Factory reads it.
- `toolbench`: `prompt` (the ToolBench scaffold: API docs, `Task:`, `Actions:`) + `completion`
  (the python-format program).

Multi-turn samples add each tool result as a `tool`/`observation` message and the tool's
`final_reply` as the closing assistant turn. A sample whose gold program is empty (relevance)
ends with an assistant text reply instead of calls. Episode samples are always multi-turn: one
action per assistant turn, each followed by the observation it produced (assistant action → tool
observation → … → closing reply).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from toolbench.core.chat_messages import call_id, openai_tools, tool_result
from toolbench.core.prompts import completion_prompt
from toolbench.core.registry import spec_index
from toolbench.core.simulator import result_text
from toolbench.foundation.errors import UserError
from toolbench.foundation.io import describe_validation_error, iter_jsonl, write_jsonl
from toolbench.foundation.records import Call, FunctionSpec, Sample

ExportFormat = Literal["openai", "hf-chat", "sharegpt", "toolbench"]
EXPORT_FORMATS: tuple[str, ...] = ("openai", "hf-chat", "sharegpt", "toolbench")
NO_CALL_REPLY = "None of the available functions can do that, so I made no call."


TOOL_CALL_IDS: tuple[str, ...] = ("auto", "openai", "mistral")


def tool_call_id(style: str, *parts: object) -> str:
    """A deterministic call id: `mistral` = 9 letters or digits (what Mistral's template demands,
    valid everywhere), `openai` = `call_` + those 9 (the OpenAI look)."""
    short = call_id(*parts)
    return f"call_{short}" if style == "openai" else short


def tool_call(id_: str, call: Call, as_string: bool) -> dict[str, Any]:
    """One entry of an assistant message's `tool_calls` (OpenAI shape; `arguments` a JSON string
    for the OpenAI API, an object for HF chat templates)."""
    arguments = json.dumps(call.arguments, ensure_ascii=False) if as_string else dict(call.arguments)
    return {"id": id_, "type": "function", "function": {"name": call.name, "arguments": arguments}}


class _Parts(NamedTuple):
    """What every chat-shaped export is built from."""

    specs: list[FunctionSpec]
    calls: list[Call]
    turns: list[list[int]]  # assistant turns as call indices: all calls in one, or one per action
    final: str | None


class Exporter:
    """Episode samples (category `episode`) are always multi-turn, one action per assistant turn,
    each followed by its observation, then the tool's closing reply: the next action depends on
    what the last one showed, so a conversation without the observations would teach guessing."""

    def __init__(
        self,
        fmt: str,
        multi_turn: bool = False,
        system_prompt: str | None = None,
        tool_call_ids: str = "auto",
        split_parallel: bool = False,
    ):
        if fmt not in EXPORT_FORMATS:
            raise UserError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
        if tool_call_ids not in TOOL_CALL_IDS:
            raise UserError(f"--tool-call-ids {tool_call_ids!r}: expected one of {', '.join(TOOL_CALL_IDS)}")
        self.fmt, self.multi_turn, self.system_prompt = fmt, multi_turn, system_prompt
        # auto: the OpenAI look for the OpenAI format, template-safe ids for what templates render
        self.id_style = (
            ("openai" if fmt == "openai" else "mistral") if tool_call_ids == "auto" else tool_call_ids
        )
        self.split_parallel = split_parallel

    def __call__(self, sample: Sample) -> dict[str, Any]:
        index = spec_index(tuple(sample.offered_tools))
        specs = list(index.specs.values())
        calls = list(sample.labels[0])
        episode = sample.category == "episode"
        final = self._final_reply(sample, calls, index) if self.multi_turn or episode or not calls else None
        if self.fmt == "toolbench":
            return {
                "prompt": completion_prompt(sample.query, specs, system_prompt=self.system_prompt),
                "completion": sample.action,
            }
        one_per_turn = episode or self.split_parallel
        turns = (
            [[i] for i in range(len(calls))] if one_per_turn else ([list(range(len(calls)))] if calls else [])
        )
        parts = _Parts(specs, calls, turns, final)
        return self._sharegpt(sample, parts) if self.fmt == "sharegpt" else self._chat(sample, parts)

    def _final_reply(self, sample: Sample, calls: list[Call], index: Any) -> str:
        if not calls:
            return NO_CALL_REPLY
        return index.owner[calls[-1].name].final_reply(calls, sample.results)

    def _shows_results(self, sample: Sample) -> bool:
        return self.multi_turn or sample.category == "episode"

    @staticmethod
    def _content(sample: Sample, i: int) -> str:
        """A tool turn's text: an episode's observation as shown, other results as JSON."""
        result = sample.results[i]
        return result if sample.category == "episode" else result_text(result)

    def _chat(self, sample: Sample, parts: _Parts) -> dict[str, Any]:
        specs, calls, turns, final = parts
        as_string = self.fmt == "openai"
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": sample.query})
        ids = [tool_call_id(self.id_style, sample.id, i) for i in range(len(calls))]
        for turn in turns:
            messages.append(
                {
                    "role": "assistant",
                    "content": None if as_string else "",
                    "tool_calls": [tool_call(ids[i], calls[i], as_string) for i in turn],
                }
            )
            if self._shows_results(sample):
                messages += [tool_result(calls[i], ids[i], self._content(sample, i)) for i in turn]
        if final is not None:
            messages.append({"role": "assistant", "content": final})
        record: dict[str, Any] = {"messages": messages, "tools": openai_tools(specs)}
        if as_string:
            record["parallel_tool_calls"] = any(len(turn) > 1 for turn in turns)
        return record

    def _sharegpt(self, sample: Sample, parts: _Parts) -> dict[str, Any]:
        specs, calls, turns, final = parts
        conversation = [{"from": "human", "value": sample.query}]
        for turn in turns:
            payload = [{"name": calls[i].name, "arguments": calls[i].arguments} for i in turn]
            conversation.append(
                {
                    "from": "function_call",
                    "value": json.dumps(payload[0] if len(payload) == 1 else payload, ensure_ascii=False),
                }
            )
            if self._shows_results(sample):
                if sample.category == "episode":
                    value = "\n".join(sample.results[i] for i in turn)
                else:
                    results = [
                        sample.results[i] if sample.results[i] is not None else {"status": "ok"} for i in turn
                    ]
                    value = json.dumps(results[0] if len(results) == 1 else results, ensure_ascii=False)
                conversation.append({"from": "observation", "value": value})
        if final is not None:
            conversation.append({"from": "gpt", "value": final})
        record: dict[str, Any] = {
            "conversations": conversation,
            "tools": json.dumps(openai_tools_functions(specs), ensure_ascii=False),
        }
        if self.system_prompt:
            record["system"] = self.system_prompt
        return record


def openai_tools_functions(specs: list[FunctionSpec]) -> list[dict[str, Any]]:
    return [tool["function"] for tool in openai_tools(specs)]


def iter_samples(
    path: Path, split: str = "all", on_bytes: Callable[[int], None] | None = None
) -> Iterator[Sample]:
    for number, value in iter_jsonl(path, on_bytes):
        try:
            sample = Sample.model_validate(value)
        except ValidationError as error:
            raise UserError(
                f"{path}:{number}: not a generated sample ({describe_validation_error(error)}); "
                "export reads the canonical output of `toolbench generate`"
            ) from None
        if split == "all" or sample.split == split:
            yield sample


def export_file(
    source: Path,
    out: Path,
    fmt: str,
    split: str = "all",
    multi_turn: bool = False,
    system_prompt: str | None = None,
    tool_call_ids: str = "auto",
    split_parallel: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Export `source` to `out` (written whole or not at all); `on_progress(bytes of source read)`.
    Refused before writing when the export would not fit on OUT's disk (`check_export_space`)."""
    exporter = Exporter(fmt, multi_turn, system_prompt, tool_call_ids, split_parallel)
    check_export_space(source, out, exporter, split)
    return write_jsonl(out, (exporter(sample) for sample in iter_samples(source, split, on_progress)))


EXPORT_PROBE = 200  # samples exported up front to measure output bytes per source byte


def check_export_space(source: Path, out: Path, exporter: Exporter, split: str) -> None:
    """An export can be several times its source (the OpenAI format repeats the tool list in every
    record): measure that ratio on the first EXPORT_PROBE samples, scale it to the whole source and
    compare with OUT's free space, as `generate` does for its samples."""
    import itertools

    import orjson

    from toolbench.foundation.io import check_disk_space

    probe = list(itertools.islice(iter_samples(source, split), EXPORT_PROBE))
    if not probe:
        return
    source_bytes = sum(len(sample.model_dump_json()) + 1 for sample in probe)
    exported = [orjson.dumps(exporter(sample)) + b"\n" for sample in probe]
    ratio = sum(map(len, exported)) / source_bytes
    estimated_records = max(
        1, int(Path(source).stat().st_size * ratio / (sum(map(len, exported)) / len(exported)))
    )
    check_disk_space(Path(out), estimated_records, exported)


def export_path(out: Path, fmt: str) -> Path:
    """Where `generate --format` puts an export: beside the canonical file."""
    return out.with_name(f"{out.stem}.{fmt}.jsonl")
