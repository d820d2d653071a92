"""The `auto` call format: reads any family's answer, deciding per answer from the answer itself.

Detection, in order:

0. Bounds: an answer over MAX_ANSWER_CHARS is `auto:too_long`. A leading reasoning block
   `<think>…</think>` (Qwen3, DeepSeek-R1, …) is set aside as content, and trailing end-of-turn
   tokens (`<|eot_id|>`, `<|eom_id|>`, `<|eot|>`, `<|eom|>`, `<|im_end|>`, `</s>`, …) dropped.
1. Markers: `<tool_call>` (hermes), `[TOOL_CALLS]` (mistral), `<|python_tag|>` and
   `<|python_start|>` (Llama: a JSON body goes to llama-json, a `[f(…)]` / `f(…)` body to
   pythonic), `<function=` (Llama's function tag). The earliest marker decides, unless a call
   line (step 2) starts before it: then the marker is taken to be inside that call's string
   argument, and a marker outside every call is `auto:mixed`.
2. Lines (the line rule, see `scan`): a call begins a line. The first line that starts with a
   call-shaped JSON value (`{"name": …`, `[{"name": …`, `{"tool_calls": …`, also inside a code
   fence) is read as JSON calls (several may follow, separated by `;`, `,` or newlines); a line
   starting with `[name(` is a pythonic list; a line starting with `name(` or `obj.name(` (or
   `x = name(`) is a ToolBench python line, read together with the other such lines and the
   literal assignments beside them (`d = Date(1, 2, 2023)`, `n = 3`); a line may be indented.
   Calls of two syntaxes in one answer are `auto:mixed`. Lines that start no call (prose, fence
   lines, `import os`) are the content.
3. Otherwise the answer holds no call: `Program([])`, the whole text being content. A polite
   refusal in prose is that, which is the right answer for a relevance task.

The boundary between a call and prose that mentions a function: only the *start of a line*
counts. "I cannot call set_location because no city was given" mentions a function inside a
sentence: no call. A line that begins `set_location(...)` is a call, unless its parentheses close
on that line and words follow (`set_location(value) needs a city.`, `search(), which sorts.`,
`search().`): that is a sentence starting with a function's name, so prose. A line that begins
with a call that never closes (a truncated answer) is a call, and an error. `[]` (BFCL's "no
call") and JSON without call keys are prose too.

Key invariant: whatever holds a marker, a call-shaped JSON line, a pythonic list or a call line is
read as calls or raises CallParseError; it never comes out as `Program([])` (relevance scoring
counts any recognised call as a call). The one exception is OpenAI's explicit "no call",
`{"tool_calls": []}` (or `null`). JSON-ish Python (`{'name': 'f', 'arguments': {'a': True}}`, as
Hermes-2-Pro writes it) is read as the value it spells.

Errors say which reader failed: `hermes:*`, `mistral:*`, `llama-json:*`, `pythonic:*`, the bare
kinds of the ToolBench python reader (`syntax`, …) and of the JSON reader (`json`, `shape`,
`arguments`), and `auto:*` for detection itself (`auto:mixed`, `auto:too_long`,
`auto:too_many_calls`). Python lines read as by the `python` format, with the same kinds and
messages, so a ToolBench program scores the same under `auto` as under `python`.

`render` writes the `json` format (lossless for every program, whatever its names).
"""

from __future__ import annotations

import re

from toolbench.core.calls.base import (
    MAX_CALLS,
    FormatContext,
    check_calls,
    check_length,
    namespaced,
    strip_end_tokens,
)
from toolbench.core.calls.hermes import OPEN as HERMES_OPEN
from toolbench.core.calls.hermes import HermesFormat
from toolbench.core.calls.json_format import JsonFormat, read_json_values
from toolbench.core.calls.llama import FUNCTION_TAG, PYTHON_START, PYTHON_TAG, LlamaJsonFormat, unwrap
from toolbench.core.calls.mistral import TOOL_CALLS, MistralFormat
from toolbench.core.calls.python_format import PythonFormat
from toolbench.core.calls.pythonic import PythonicFormat
from toolbench.core.calls.scan import ALL_KINDS, NAME, Segment, next_segment, partition, tidy
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Program

MARKERS = {
    HERMES_OPEN: "hermes",
    TOOL_CALLS: "mistral",
    PYTHON_TAG: "llama",
    PYTHON_START: "llama",
    FUNCTION_TAG: "llama",
}
_REASONING = re.compile(r"\s*<think>.*?</think>", re.DOTALL)
_PYTHONIC_BODY = re.compile(rf"\s*(?:\[\s*)?{NAME}\(")
CALL_KINDS = ("json", "list", "call")
_FAMILY = {"json": "JSON", "list": "pythonic", "call": "python", "assign": "python"}


class AutoFormat:
    name = "auto"

    def __init__(self, context: FormatContext | None = None):
        self.context = context or FormatContext.empty()
        self.json = JsonFormat(self.context)
        self.python = PythonFormat(self.context)
        self.hermes = HermesFormat(self.context)
        self.llama = LlamaJsonFormat(self.context)
        self.pythonic = PythonicFormat(self.context)
        self.mistral = MistralFormat(self.context)

    def render(self, program: Program) -> str:
        return self.json.render(program)

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

    def split(self, text: str) -> tuple[str, Program]:
        """(free-text content, calls) of a model's answer, whatever its family."""
        check_length(text, "auto:")
        reasoning = _REASONING.match(text)
        answer = strip_end_tokens(text[reasoning.end() :] if reasoning else text)
        content, program = self._split(answer)
        if reasoning:
            content = (reasoning.group().strip() + "\n\n" + content).strip()
        return content, program

    def detect(self, text: str) -> str | None:
        """The family an answer is read as: hermes, mistral, llama-json, pythonic, json, python,
        or None (no call). Detection only: the answer may still fail to parse."""
        reasoning = _REASONING.match(text)
        answer = strip_end_tokens(text[reasoning.end() :] if reasoning else text)
        marker, family = _first_marker(answer)
        first = _first_call(answer)
        if marker >= 0 and (first is None or first.start > marker):
            return self._marker_reader(family, answer).name
        return None if first is None else {"json": "json", "list": "pythonic", "call": "python"}[first.kind]

    # ------------------------------------------------------------------ the two paths
    def _split(self, answer: str) -> tuple[str, Program]:
        marker, family = _first_marker(answer)
        first = _first_call(answer)
        if marker >= 0 and (first is None or first.start > marker):
            content, program = self._marker_reader(family, answer).split(answer)
            if not len(program):  # every marker reader raises instead; kept as a guard
                raise CallParseError("auto:empty", f"a {family} tool-call marker without a call")
            return content, program
        if first is None:
            return answer.strip(), Program([])
        return self._lines(answer)

    def _marker_reader(self, family: str, answer: str):
        if family == "hermes":
            return self.hermes
        if family == "mistral":
            return self.mistral
        _, body, wrapped = unwrap(answer)
        if wrapped and _PYTHONIC_BODY.match(body):
            return self.pythonic
        return self.llama

    def _lines(self, answer: str) -> tuple[str, Program]:
        found: list[Segment] = []
        values = []
        count = 0
        segment = next_segment(answer, 0)
        while segment is not None:
            if segment.kind == "json":
                read, end = read_json_values(answer, segment.start)
                values.extend(read)
                count += len(read) - 1
                segment = Segment("json", segment.start, end)
            found.append(segment)
            count += 1  # assignments count too: no answer needs MAX_CALLS of them
            check_calls(count, "auto:")
            segment = next_segment(answer, segment.end)
        calls = [s for s in found if s.kind != "assign"] or found  # a call inside an assignment
        if len({_FAMILY[s.kind] for s in calls}) > 1:
            raise CallParseError("auto:mixed", f"calls in two syntaxes: {_describe(answer, calls)}")
        if calls[0].kind not in ("call", "assign"):
            found = calls  # literal assignments only go with python lines; beside others, prose
        _check_markers_inside(answer, found)
        source, content = partition(answer, found)
        kind = calls[0].kind
        if kind == "json":
            return tidy(content), self.json.calls(values)
        if kind == "list":
            with namespaced("pythonic:"):
                return tidy(content), Program(self.pythonic.read(source))
        return tidy(content), self.python.parse_lines(source)


def _first_call(text: str) -> Segment | None:
    """The first segment that is a call (literal assignments alone, `E = mc^2`, are prose)."""
    segment = next_segment(text, 0)
    skipped = 0
    while segment is not None and segment.kind == "assign":
        skipped += 1
        kinds = ALL_KINDS if skipped < MAX_CALLS else CALL_KINDS  # bounded work on `x = 1` lines
        # from the assignment's next line: a call inside an unclosed `x = [` is still a call
        newline = text.find("\n", segment.start)
        segment = None if newline < 0 else next_segment(text, newline + 1, kinds)
    return segment


def _first_marker(text: str) -> tuple[int, str]:
    best, family = -1, ""
    for marker, name in MARKERS.items():
        at = text.find(marker, 0, best if best >= 0 else len(text))
        if at >= 0:
            best, family = at, name
    return best, family


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _describe(text: str, found: list[Segment]) -> str:
    seen: dict[str, int] = {}
    for segment in found:
        seen.setdefault(_FAMILY[segment.kind], _line(text, segment.start))
    return ", ".join(f"{family} at line {line}" for family, line in seen.items())


def _check_markers_inside(text: str, found: list[Segment]) -> None:
    """A tool-call marker outside every call read by the line rule is a second call syntax."""
    for marker in MARKERS:
        at = text.find(marker)
        while at >= 0:
            if not any(s.start <= at < s.end for s in found):
                raise CallParseError(
                    "auto:mixed",
                    f"calls in two syntaxes: {_describe(text, found)}, and {marker} at line {_line(text, at)}",
                )
            at = text.find(marker, at + 1)
