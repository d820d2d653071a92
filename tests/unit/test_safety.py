"""Model output is never executed: no eval/exec/compile-to-run, no shell=True, anywhere shipped."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["toolbench", "tools", "retriever", "distill", "templates"]


def shipped_python_files() -> list[Path]:
    return [p for folder in SHIPPED for p in (REPO / folder).rglob("*.py")]


def test_no_eval_exec_or_shell_true_in_the_package():
    offences = []
    for path in shipped_python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                # the builtins, called bare or as builtins.eval; torch's `model.eval()` is a mode switch
                func = node.func
                builtin = (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "builtins"
                )
                name = func.id if isinstance(func, ast.Name) else (func.attr if builtin else None)
                if name in ("eval", "exec"):
                    offences.append(f"{path}:{node.lineno}: {name}()")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        offences.append(f"{path}:{node.lineno}: shell=...")
    assert len(shipped_python_files()) > 10
    assert offences == []


# ----------------------------------------------------------------- parser memory


def _padded(code: str, size: int = 200_000) -> str:
    """`code` stretched to `size` characters with blanks before its last character: the longest
    answer a reader takes, with as much code inside as the token cap lets through."""
    return code[:-1] + " " * (size - len(code)) + code[-1]


def _worst_shapes() -> dict[str, str]:
    """The shapes that cost `ast` the most per character, each just under the token cap (a few
    just over it): nested and flat brackets, dicts, boolean chains, strings, f-strings, escaped
    quotes and unclosed literals (which once cost the scanner's regex ~130 bytes a character)."""
    from toolbench.core.calls import MAX_CODE_SYMBOLS, MAX_NESTING

    t = MAX_CODE_SYMBOLS - 140
    depth = MAX_NESTING - 2
    return {
        "nested brackets": _padded(
            "f(a=[" + ("[" * depth + "]" * depth + ",") * (t // (2 * depth + 1)) + "])"
        ),
        "nested pythonic": _padded(
            "[f(a=[" + ("[" * depth + "]" * depth + ",") * (t // (2 * depth + 1)) + "])]"
        ),
        "flat list": _padded("f(a=[" + "1," * (t // 2) + "])"),
        "empty lists": _padded("f(a=[" + "[]," * (t // 3) + "])"),
        "dicts": _padded("f(a={" + "1:{}," * (t // 5) + "})"),
        "and chain": _padded("f(a=" + "a and " * (t // 2) + "a)"),
        "strings": _padded("f(a=[" + "'x'," * (t // 2) + "])"),
        "calls": _padded("f(a=[" + "g()," * (t // 4) + "])"),
        "f-string": _padded("f(a=f'{" + "a and " * (t // 2) + "a}')"),
        "over the cap": _padded("f(a=[" + "1," * MAX_CODE_SYMBOLS + "])"),
        "escaped quotes": "f(a='" + "\\'" * 99_990 + ")",
        "unclosed f-string": "f(a=f'{" + "a and " * (t // 2) + "a}" + " " * 190_000 + ")",
        "call lines": "\n".join(["f(a=1)"] * (t // 6)),
    }


def test_python_readers_peak_memory_is_under_ten_times_the_answer():
    """A 200,000-character answer costs the python-syntax readers (and auto, which uses them) at
    most 10x its size at peak, whatever its shape: the token cap is checked before `ast.parse`."""
    import tracemalloc

    from toolbench.core.calls import MAX_ANSWER_CHARS, get_format
    from toolbench.foundation.errors import CallParseError

    peaks = {}
    outcomes = {}
    for name, text in _worst_shapes().items():
        assert len(text) <= MAX_ANSWER_CHARS, name
        for fmt in ("python", "pythonic", "auto"):
            reader = get_format(fmt)
            tracemalloc.start()
            try:
                reader.parse(text)
                outcomes[name, fmt] = "ok"
            except CallParseError as error:
                outcomes[name, fmt] = error.error_type
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            peaks[name, fmt] = peak / len(text)
    assert max(peaks.values()) <= 10, sorted(peaks.items(), key=lambda item: -item[1])[:3]
    # the shapes under the cap really were parsed (the bound is not a refusal of everything)
    assert outcomes["flat list", "python"] == "ok"
    assert outcomes["nested brackets", "pythonic"] == "ok"
    assert outcomes["over the cap", "python"] == "parse:too_complex"
    assert outcomes["over the cap", "auto"] == "parse:too_complex"


def test_token_count_is_an_upper_bound_of_pythons_tokens():
    """The cap counts at least as many tokens as Python's tokenizer reads (a string literal is one
    token; an f-string's parts are counted one by one), so no source slips under it."""
    import io
    import tokenize

    from toolbench.core.calls.ast_reader import count_tokens

    sources = [
        "f(a=[1, 2, 3], b='x y z', c=\"q\")",
        "API.search(city='Austin, TX', near=f'{a and b}')\nx = 3",
        "g(a='it\\'s', b=rb'raw', c='''tri ple''', d=-1.5e3)",
    ]

    def count(source: str) -> int:  # a limit below the length: every token is counted
        return count_tokens(source, len(source) - 1)

    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
    for source in sources:
        real = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skip]
        assert count(source * 3) >= len(real) * 3 > 0, source
    assert count("'a b c d'  ") == 1
    assert count("f'a b c d'  ") == 7  # f ' a b c d ': an f-string's parts are counted one by one
    assert count_tokens("a b c", 2) == 3  # counting stops past the limit
