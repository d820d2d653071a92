"""What every call format shares: the interface, value constructors, fence stripping, the caps on
how much work one answer may cost, and error namespacing.

Caps (checked before the expensive part of a parse, the same in every format):

- `MAX_ANSWER_CHARS`: a longer answer is refused outright (`<format>:too_long`).
- `MAX_CALLS`: an answer holding more calls is refused (`<format>:too_many_calls`); where the
  calls can be counted cheaply (markers, call lines) that happens before they are read.
- `MAX_NESTING`: the python-syntax readers (`python`, `pythonic`) refuse a source whose brackets
  nest deeper (`too_deep`) before `ast.parse` sees it, so the parser's stack stays small.
- `MAX_CODE_SYMBOLS`: the same readers refuse a source of more tokens than this (`too_complex`):
  words, numbers, string literals and punctuation, counted before `ast.parse` runs. `ast` spends
  0.5 to 1.3 KB per token whatever the nesting, so this keeps one parse's peak memory (tracemalloc)
  under 10x MAX_ANSWER_CHARS, about 1.3 MB measured on the worst shapes (tests/unit/test_safety.py);
  the longest gold program of the shipped tasks has about 200. (JSON is read by the C decoder,
  which needs neither bound.)

Error kinds: a `CallParseError` kind is `<reader>:<detail>` (scored as `parse:<reader>:<detail>`),
e.g. `hermes:json`, `mistral:shape`, `pythonic:syntax`, `auto:mixed`, so a score's error taxonomy
says which reader failed. The two historical readers keep their bare kinds: the ToolBench `python`
reader (`syntax`, `unsupported`, `undefined_name`, ...) and the plain `json` reader (`json`,
`shape`, `arguments`) — a bare kind means one of those two.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import FunctionSpec, Program

MAX_ANSWER_CHARS = 200_000
MAX_CALLS = 64
MAX_NESTING = 64
MAX_CODE_SYMBOLS = 2_000

# End-of-turn / end-of-message tokens that a server may leave at the end of an answer.
END_TOKENS = ("<|eot_id|>", "<|eom_id|>", "<|eot|>", "<|eom|>", "<|im_end|>", "<|end|>", "</s>")

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


def strip_fences(text: str) -> str:
    """Models love Markdown: keep the first fenced block's body if there is one."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def parse_with_fences(parse: Callable[[str], Any], text: str) -> Any:
    """Parse the text as it is; only if that fails and it holds a Markdown fence, parse the fenced
    block. (Stripping first would cut a string argument that itself contains three backticks.)"""
    try:
        return parse(text)
    except CallParseError:
        inner = strip_fences(text)
        if inner == text:
            raise
        return parse(inner)


def strip_end_tokens(text: str, extra: tuple[str, ...] = ()) -> str:
    """The text without trailing end-of-turn tokens (and the whitespace around them)."""
    text = text.rstrip()
    changed = True
    while changed:
        changed = False
        for token in END_TOKENS + extra:
            if text.endswith(token):
                text = text[: -len(token)].rstrip()
                changed = True
    return text


def check_length(text: str, prefix: str) -> None:
    if len(text) > MAX_ANSWER_CHARS:
        raise CallParseError(
            f"{prefix}too_long",
            f"the answer is {len(text):,} characters long; at most {MAX_ANSWER_CHARS:,} are read",
        )


def check_calls(count: int, prefix: str) -> None:
    if count > MAX_CALLS:
        raise CallParseError(
            f"{prefix}too_many_calls", f"the answer holds {count} or more calls; at most {MAX_CALLS} are read"
        )


def kind_prefix(reader: str) -> str:
    """`hermes` -> `hermes:`; the historical readers (`python`, `json`) have no prefix."""
    return "" if reader in ("", "python", "json") else f"{reader}:"


@contextmanager
def namespaced(prefix: str, where: str = "") -> Iterator[None]:
    """Re-raise a reader's CallParseError with its kind under `prefix` (`hermes:`), and its
    message after `where` (`tool call 2: `). Kinds already namespaced are left alone."""
    try:
        yield
    except CallParseError as error:
        kind = error.kind if (":" in error.kind or not prefix) else f"{prefix}{error.kind}"
        raise CallParseError(kind, f"{where}{error.message}") from None


@dataclass(frozen=True)
class ValueConstructor:
    """A value object a tool lets the python format spell as a call, e.g. `Date(4, 12, 2023)`.

    `build` turns the literal arguments into the canonical JSON value (e.g. "2023-04-12") and
    raises ValueError with a reason when they are wrong; `render` goes back. A parameter whose
    JSON schema has `"format": <format>` is rendered through the constructor.
    """

    name: str
    format: str
    build: Callable[[list[Any], dict[str, Any]], Any]
    render: Callable[[Any], str]


class CallFormat(Protocol):
    """A surface form of a Program. `parse` raises only CallParseError; `split` also returns the
    answer's free-text content (what is not a call)."""

    name: str

    def render(self, program: Program) -> str: ...

    def parse(self, text: str) -> Program: ...

    def split(self, text: str) -> tuple[str, Program]: ...


@dataclass(frozen=True)
class FormatContext:
    """What a format may know about the functions on offer (to bind positional arguments and
    to spell value objects). Formats work without it, with fewer conveniences."""

    specs: Mapping[str, FunctionSpec]
    constructors: Mapping[str, ValueConstructor]

    @classmethod
    def empty(cls) -> FormatContext:
        return cls({}, {})
