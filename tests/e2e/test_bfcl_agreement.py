"""toolbench's BFCL checker against BFCL's own, on the same answers: at least 99% must agree.

BFCL's checker runs in a throwaway venv (kept in the toolbench cache, so the install is paid once)
holding the bfcl-eval wheel installed without its dependencies: its `ast_checker` module needs
none of them once `constants.model_config` (which imports every provider SDK, only to look up
whether a model's API takes dots in function names) is replaced by a stub that says it does not,
the setting under which toolbench imports BFCL's function names (`.` -> `_`). BFCL reads its own
data files by row id; toolbench scores the tasks its importer made from the same files.

The answers: for every scored row, the gold answer, answers made right in other ways (the last
acceptable value of each argument, optional arguments left out, an integer for an integral float,
strings in upper case, parallel calls reversed) and systematically wrong ones (another function,
a value out of the acceptable set, a required argument left out, an unknown argument, a value of
the wrong type, a call too many or too few); a call on an irrelevance row; no call on a relevance
row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolbench.core.score import Scorer
from toolbench.foundation.records import Call, Program, Task
from toolbench.pipelines.bfcl_import import PYTHON_CATEGORIES, import_bfcl, open_data, placeholder_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

BFCL_VERSION = "2026.3.23"
MIN_AGREEMENT = 0.99

# Runs in the bfcl-eval venv: reads {"id", "category", "calls"} cases, prints one verdict a case.
PROBE = r"""
import collections, json, sys, types
config = types.ModuleType("bfcl_eval.constants.model_config")
class NoDots:  # the model's API takes no dots in function names: BFCL expects `.` as `_`
    underscore_to_dot = True
config.MODEL_CONFIG_MAPPING = collections.defaultdict(NoDots)
sys.modules["bfcl_eval.constants.model_config"] = config
import bfcl_eval
from bfcl_eval.constants.enums import Language
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
from pathlib import Path
data = Path(bfcl_eval.__path__[0]) / "data"
cases = json.load(open(sys.argv[1]))
rows, answers = {}, {}
for category in {case["category"] for case in cases}:
    for line in open(data / f"BFCL_v4_{category}.json"):
        row = json.loads(line); rows[row["id"]] = row
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    if answer_file.exists():
        for line in open(answer_file):
            row = json.loads(line); answers[row["id"]] = row["ground_truth"]
verdicts = []
for case in cases:
    output = [{call["name"]: call["arguments"]} for call in case["calls"]]
    if "irrelevance" in case["category"]:  # eval_runner: right iff the decoded output is empty
        verdicts.append(len(output) == 0)
    elif case["category"] == "live_relevance":  # right iff it holds a call
        verdicts.append(len(output) > 0)
    else:
        result = ast_checker(rows[case["id"]]["function"], output, answers[case["id"]],
                             Language.PYTHON, case["category"], "toolbench")
        verdicts.append(bool(result["valid"]))
print(json.dumps(verdicts))
"""


def bfcl_venv() -> tuple[Path, Path]:
    """(python, the installed bfcl_eval package folder) of the throwaway venv, built once."""
    root = Path(os.environ.get("TOOLBENCH_CACHE", Path.home() / ".cache" / "toolbench"))
    venv = root / "venvs" / f"bfcl-eval-{BFCL_VERSION}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
        subprocess.run([*install, f"bfcl-eval=={BFCL_VERSION}"], check=True, timeout=600)
        (venv / ".ready").write_text("ok\n")
    where = subprocess.run(
        [str(python), "-c", "import importlib.util; print(importlib.util.find_spec('bfcl_eval').origin)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return python, Path(where.stdout.strip()).parent


# ------------------------------------------------------------------ answers


def _changed(value: Any) -> Any:
    """A value of the same type outside any sensible acceptable set."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7919
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + " zzq"
    if isinstance(value, list):
        return [*value, "zzq"]
    if isinstance(value, dict):
        return {**value, "zzq": "zzq"}
    return "zzq"


def _retyped(value: Any) -> Any:
    """The same value in another type (a string for a number, a number for a string, ...)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 42
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return 1


def _with(calls: list[Call], arguments: dict[str, Any]) -> list[Call]:
    """The calls with the first one's arguments updated."""
    out = [Call(name=c.name, arguments=dict(c.arguments)) for c in calls]
    out[0].arguments.update(arguments)
    return out


def _without(calls: list[Call], key: str) -> list[Call]:
    out = [Call(name=c.name, arguments=dict(c.arguments)) for c in calls]
    del out[0].arguments[key]
    return out


def _alternative(task: Task, pick: int) -> list[Call]:
    """Each argument given its `pick`-th acceptable value (`""`: left out)."""
    calls = []
    for answer in task.answers or []:
        ((name, accepted),) = answer.items()
        arguments = {}
        for param, options in accepted.items():
            value = options[pick] if options else ""
            if not (isinstance(value, str) and value == ""):
                arguments[param] = value
        calls.append(Call(name=name, arguments=arguments))
    return calls


def answers_for(task: Task) -> list[tuple[str, list[Call]]]:
    """(kind, calls) answers to one task: right ones and systematically wrong ones."""
    functions = task.functions or []
    if task.answers == []:
        wrong = [placeholder_call(functions[0])] if functions else [Call(name="anything", arguments={})]
        return [("no call", []), ("call on irrelevance", wrong)]
    if task.answers is None:
        return [("placeholder call", [placeholder_call(functions[0])]), ("no call", [])]
    gold = list(task.labels[0])
    out: list[tuple[str, list[Call]]] = [("gold", gold)]
    out += [
        ("last acceptable values", _alternative(task, -1)),
        ("first acceptable values", _alternative(task, 0)),
    ]
    others = [spec.name for spec in functions if spec.name != gold[0].name]
    out.append(
        (
            "other function",
            [
                Call(name=others[0] if others else gold[0].name + "_v2", arguments=gold[0].arguments),
                *gold[1:],
            ],
        )
    )
    out.append(("unknown argument", _with(gold, {"zzq_extra": 1})))
    out.append(("one call too many", [*gold, gold[0]]))
    if len(gold) > 1:
        out.append(("reversed order", gold[::-1]))
        out.append(("one call too few", gold[:-1]))
    spec = {s.name: s for s in functions}[gold[0].name]
    required = spec.parameters.get("required", [])
    for key, value in gold[0].arguments.items():
        out.append(("changed", _with(gold, {key: _changed(value)})))
        out.append(("retyped", _with(gold, {key: _retyped(value)})))
        if isinstance(value, float) and value.is_integer():
            out.append(("int for", _with(gold, {key: int(value)})))
        if isinstance(value, str) and value.upper() != value:
            out.append(("upper", _with(gold, {key: value.upper()})))
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(("float for", _with(gold, {key: float(value)})))
            out.append(("bool for", _with(gold, {key: bool(value)})))
        if isinstance(value, str):
            out.append(
                ("spaces and punctuation", _with(gold, {key: value.replace(" ", "").replace(",", " ,")}))
            )
        if isinstance(value, list) and len(value) > 1:
            out.append(("reversed list", _with(gold, {key: value[::-1]})))
        if isinstance(value, dict) and value:
            first = next(iter(value))
            out.append(("dict without", _with(gold, {key: {k: v for k, v in value.items() if k != first}})))
            out.append(("dict changed", _with(gold, {key: {**value, first: _changed(value[first])}})))
        out.append(("null", _with(gold, {key: None})))
        if key in required:
            out.append(("missing", _without(gold, key)))
    return out


def _per_kind(kinds: list[tuple[str, str]], ours: list[bool], theirs: list[bool]) -> dict[str, list[int]]:
    """answer kind -> [answers, judged right by BFCL, agreements]."""
    table: dict[str, list[int]] = {}
    for (_, kind), mine, bfcl in zip(kinds, ours, theirs, strict=True):
        row = table.setdefault(kind, [0, 0, 0])
        row[0] += 1
        row[1] += bfcl
        row[2] += mine == bfcl
    return dict(sorted(table.items()))


def test_toolbench_checker_agrees_with_bfcl(tmp_path):
    python, package = bfcl_venv()
    imported = import_bfcl(open_data(package), list(PYTHON_CATEGORIES))
    cases, ours, kinds = [], [], []
    scorer = Scorer()
    for task in imported.tasks:
        for kind, calls in answers_for(task):
            cases.append({"id": task.id, "category": task.category, "calls": [c.model_dump() for c in calls]})
            ours.append(scorer.score(task, Program(calls)).success)
            kinds.append((task.category, kind))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    result = subprocess.run(
        [str(python), "-c", PROBE, str(tmp_path / "cases.json")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(theirs) == len(ours)
    disagree = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    agreement = 1 - len(disagree) / len(ours)
    report = {
        "answers": len(ours),
        "tasks": len(imported.tasks),
        "agreement": round(100 * agreement, 3),
        "bfcl_right": sum(theirs),
        "per_kind": _per_kind(kinds, ours, theirs),
        "disagreements": [
            {
                "id": cases[i]["id"],
                "kind": kinds[i],
                "ours": ours[i],
                "bfcl": theirs[i],
                "calls": cases[i]["calls"],
            }
            for i in disagree[:20]
        ],
    }
    print(json.dumps(report, indent=1))
    assert len(ours) >= 300 and 0.2 < sum(theirs) / len(theirs) < 0.8  # a few hundred, right and wrong
    assert agreement >= MIN_AGREEMENT, report
