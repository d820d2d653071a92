"""Text corpora for the embedded models, all of which exist offline on every machine.

- the *generic* corpus: the Python standard library's documentation and docstrings (module, class
  and function docstrings read with `ast`, never imported, plus `pydoc_data`'s topic pages). It is
  English prose about programs, the nearest thing to "general text" that ships with Python, and it
  is what a generic draft is pretrained on.
- the *tool* corpus: generated requests, function signatures and calls in the chat-native layout,
  so the tokenizer learns merges for the text the models will read and write.
"""

from __future__ import annotations

import ast
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SKIPPED_PARTS = {"site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo"}


def stdlib_root() -> Path:
    # Inside a venv sys.prefix points at the venv; sysconfig knows where the real stdlib lives.
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_docstrings(root: Path | None = None) -> Iterator[str]:
    """Every module/class/function docstring of the standard library, in a stable order."""
    root = root or stdlib_root()
    for path in sorted(root.rglob("*.py")):
        if SKIPPED_PARTS & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    yield doc


def pydoc_topics() -> Iterator[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return
    for name in sorted(topics):
        yield topics[name]


def generic_documents() -> list[str]:
    return list(stdlib_docstrings()) + list(pydoc_topics())


def generic_corpus(cache_dir: Path) -> list[str]:
    """The generic documents, extracted once (a few seconds) and kept as JSONL."""
    path = Path(cache_dir) / "generic_corpus.jsonl"
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    from toolbench.foundation.io import write_jsonl

    documents = generic_documents()
    write_jsonl(path, documents)
    return documents


def tool_documents(per_tool: int = 2000, seed: int = 0, tools: list[str] | None = None) -> Iterator[str]:
    """Generated requests + their calls + the tools' signatures, one document per sample."""
    from toolbench.core.calls.chat_native import ChatNativeFormat
    from toolbench.core.registry import get_tool, tool_names
    from toolbench.foundation.records import Program
    from toolbench.pipelines.generate import GenerateConfig, SampleFactory

    render = ChatNativeFormat().render
    for tool in tools or list(tool_names()):
        specs = get_tool(tool).specs.values()
        yield "\n".join(f"{s.name}({', '.join(s.parameters.get('properties', {}))})" for s in specs)
        factory = SampleFactory(GenerateConfig(tools=[tool], n=per_tool, seed=seed, split="train"))
        for index in range(per_tool):
            candidate = factory.make(index)
            if candidate.line is None:
                continue
            sample = json.loads(candidate.line)
            yield sample["query"] + "\n" + render(Program.model_validate(sample["labels"][0]))
