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
