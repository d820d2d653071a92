"""Guided decoding of tool calls for local models: every answer parses and fits the offered tools.

A small model's answer often fails on form before its choices are judged: a copied value runs on
past its end (`"cnt": 2 101.35`), a key the function does not have, a brace missing. Guided
decoding separates the two. It masks, at every step, the tokens that cannot continue a valid
answer (what vLLM and SGLang do for a server with guided decoding). A valid answer here is either
plain text without `<` (the "no tool fits" reply) or one or more `<tool_call>{"name": ...,
"arguments": {...}}</tool_call>` blocks whose name is an offered function and whose arguments
match that function's JSON schema (keys, types, enums, required keys); a newline may follow
`<tool_call>`, precede `</tool_call>` and follow the block, so Hermes- and Qwen-style templates fit
too. It cannot make a model choose the right one among valid answers: a wrong value of the right
type still scores as wrong (README "Benchmark your model": on the embedded target it halves the
unparsed answers and adds under 2 points of success).

The character-level automaton and the token walk are lm-format-enforcer's; this module builds the
grammar of one request's answer and hands HF `generate` one enforcer per prompt of a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmformatenforcer import JsonSchemaParser, RegexParser, TokenEnforcer, TokenEnforcerTokenizerData
from lmformatenforcer.characterlevelparser import (
    CharacterLevelParser,
    CharacterLevelParserConfig,
    SequenceParser,
    StringParser,
    UnionParser,
)
from lmformatenforcer.consts import COMPLETE_ALPHABET

from toolbench.foundation.errors import UserError

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
# Schema words the automaton cannot enforce and that only narrow values: left out so that the
# guide never forbids a value the tool would accept (the scorer still checks them).
UNENFORCED = ("pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "default")
# The automaton's own limits, which would forbid right answers: arrays of at most 20 items, and
# "any character" meaning printable ASCII without `|`, `~` or `\\`. Arrays may be as long as the
# answer; any character is any the tokenizer can write (see `answer_parser`).
MAX_ARRAY_ITEMS = 100_000


def loosen(schema: Any) -> Any:
    """The schema without the words the automaton does not enforce (see UNENFORCED) and with
    type lists spelt as anyOf; property names are kept whatever they are called (a tool may have
    an argument named `format`)."""
    if isinstance(schema, list):
        return [loosen(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    loose: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNENFORCED:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            loose[key] = {name: loosen(part) for name, part in value.items()}
        else:
            loose[key] = loosen(value)
    if isinstance(loose.get("type"), list):
        # a type union, spelt as anyOf for the automaton; null joins it because the chat tools
        # drop null from unions for the templates' sake (`chat_messages.template_safe_schema`)
        kinds = dict.fromkeys([*loose.pop("type"), "null"])
        return {"anyOf": [{**loose, "type": kind} for kind in kinds]}
    return loose


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """One call's JSON schema: `{"name": <an offered function>, "arguments": <its parameters>}`."""
    variants = []
    for tool in tools:
        function = tool.get("function", tool)
        parameters = loosen(function.get("parameters") or {"type": "object", "properties": {}})
        parameters.setdefault("type", "object")
        parameters.setdefault("additionalProperties", False)
        variants.append(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [function["name"]]},
                    "arguments": parameters,
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if not variants:
        raise UserError("--guided needs the request's tools; this request offers none")
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def answer_parser(
    tools: list[dict[str, Any]], alphabet: str, require_call: bool = False
) -> CharacterLevelParser:
    """The character-level grammar of an answer to a request offering `tools`. `alphabet`: every
    character a string value may hold (the tokenizer's single-character tokens); `require_call`
    leaves out the text answer (OpenAI's tool_choice="required")."""
    config = CharacterLevelParserConfig(alphabet=alphabet, max_json_array_length=MAX_ARRAY_ITEMS)
    schema = call_schema(tools)

    def block() -> CharacterLevelParser:
        return SequenceParser(
            [
                StringParser(CALL_OPEN),
                optional_newline(),
                JsonSchemaParser(schema, config),
                optional_newline(),
                StringParser(CALL_CLOSE),
                optional_newline(),
            ]
        )

    calls = Repeated(block)
    return calls if require_call else UnionParser([RegexParser(r"[^<]+", config), calls])


def optional_newline() -> CharacterLevelParser:
    return UnionParser([StringParser("\n"), StringParser("")])


class Repeated(CharacterLevelParser):
    """One or more blocks: after a complete block the answer may end or another block start
    (lm-format-enforcer has sequences and unions but no repetition). A fresh block's first
    characters are read once and handed on, so the vocabulary walk does not build a new block's
    parser at every token it tries after a block's end."""

    def __init__(
        self,
        make: Callable[[], CharacterLevelParser],
        current: CharacterLevelParser | None = None,
        first: str | None = None,
    ):
        super().__init__()
        self.make = make
        self.current = make() if current is None else current
        self.first = make().get_allowed_characters() if first is None else first

    def add_character(self, character: str) -> CharacterLevelParser:
        options = []
        if character in self.current.get_allowed_characters():
            options.append(Repeated(self.make, self.current.add_character(character), self.first))
        if self.current.can_end() and character in self.first:
            options.append(Repeated(self.make, self.make().add_character(character), self.first))
        if not options:  # the enforcer turns a refused character into "stop here"
            raise ValueError(f"{character!r} cannot continue the answer")
        return options[0] if len(options) == 1 else UnionParser(options)

    def get_allowed_characters(self) -> str:
        allowed = self.current.get_allowed_characters()
        return "".join(set(allowed) | set(self.first)) if self.current.can_end() else allowed

    def can_end(self) -> bool:
        return self.current.can_end()

    def shortcut_key(self) -> Any:
        """Inside a string value, the JSON parser's "any token without a quote" shortcut (the
        enforcer then skips walking the vocabulary): valid while the block's first remaining part
        cannot end, since only that part's characters are allowed then."""
        current = self.current
        if isinstance(current, SequenceParser) and not current.parsers[0].can_end():
            return current.parsers[0].shortcut_key()
        return None


def accepts(tools: list[dict[str, Any]], text: str, require_call: bool = False, whole: bool = True) -> bool:
    """Whether the grammar of `tools` allows `text` as a whole answer, or (whole=False) as the
    start of one: an answer cut off by the token budget. For tests and checks."""
    parser = answer_parser(tools, COMPLETE_ALPHABET + "".join(set(text)), require_call)
    for character in text:
        if character not in parser.get_allowed_characters():
            return False
        parser = parser.add_character(character)
    return parser.can_end() or not whole


def vocabulary(tokenizer: Any) -> list[tuple[int, str, bool]]:
    """Every regular token as (id, text, starts a word). A token's text is read after a "0" so
    that a SentencePiece word-start space survives decoding; special tokens are left out, so the
    guide never lets a chat marker into an answer (the end tokens are allowed apart)."""
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    tokens = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        after_zero = tokenizer.decode([zero, token])[1:]
        alone = tokenizer.decode([token])
        tokens.append((token, after_zero, len(after_zero) > len(alone)))
    return tokens


class CallGuide:
    """A tokenizer's view for guided decoding, built once per model (a walk over the vocabulary)."""

    def __init__(self, tokenizer: Any, end_ids: set[int]):
        def decode(tokens: list[int]) -> str:
            return tokenizer.decode(tokens).rstrip("\ufffd")  # a cut multi-byte character waits

        self.data = TokenEnforcerTokenizerData(
            vocabulary(tokenizer), decode, sorted(end_ids), use_bitmask=False, vocab_size=len(tokenizer)
        )

    def prefix_allowed_tokens_fn(
        self, tools_per_row: list[list[dict[str, Any]]], require_call: bool = False
    ) -> Callable[[int, Any], list[int]]:
        """HF generate's `prefix_allowed_tokens_fn` for one batch: row i follows the grammar of
        row i's tools."""
        alphabet = self.data.tokenizer_alphabet
        enforcers = [
            TokenEnforcer(self.data, answer_parser(tools, alphabet, require_call)) for tools in tools_per_row
        ]

        def allowed(row: int, ids: Any) -> list[int]:
            # a row that has ended (or a state with nowhere to go) may only end: never an empty
            # list, which generate refuses
            return enforcers[row].get_allowed_tokens(ids.tolist()).allowed_tokens or ends

        ends = list(self.data.eos_token_id)

        return allowed
