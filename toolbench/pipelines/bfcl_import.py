"""`toolbench tasks import-bfcl`: BFCL's single-turn Python categories as a toolbench task file.

BFCL's data (`BFCL_v4_<category>.json`, one JSON object a line: `id`, `question` (the chat so far),
`function` (the offered functions, BFCL's type names), and for the scored categories
`possible_answer/BFCL_v4_<category>.json`: `ground_truth`, per call, per argument, the acceptable
values) is read from an installed bfcl-eval, a folder (the data folder or the package folder above
it) or the bfcl-eval wheel itself (`pip download --no-deps bfcl-eval`), never imported.

Each row becomes a `Task` that carries its own functions and answers (`toolbench.core.bfcl_checker`
scores it):

- function names: `.` becomes `_` (`math.factorial` -> `math_factorial`), as BFCL does for models
  whose API takes no dots (OpenAI's, Mistral's, Google's); the python call readers and chat tools
  need names without dots. `meta.bfcl_names` keeps the originals.
- parameter types: BFCL's names become JSON schema's (`dict` -> object, `float` -> number, `tuple` ->
  array, `any` -> string: BFCL's own mapping for function-calling models); the checker maps them
  back onto BFCL's Python types, so its verdicts do not change.
- the request: the one user message; a chat with a system message or earlier turns (99 of BFCL's
  3,500 Python rows) is written as `role: content` paragraphs, since a task has one request.
- the label, for `tasks verify` and replays: one concrete answer, each argument its first acceptable
  value (`""` first: left out), checked by the checker; a row whose acceptable answers no answer can
  meet (a BFCL data error: e.g. an expected argument the function does not declare) is skipped and
  reported. Irrelevance rows are labelled with no call; live_relevance rows (any call is right) with
  a placeholder call to their first function.
"""

from __future__ import annotations

import importlib.util
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import orjson

from toolbench.core.bfcl_checker import check_task
from toolbench.foundation.errors import UserError
from toolbench.foundation.records import BfclCategory, Call, FunctionSpec, Program, Task

PYTHON_CATEGORIES: tuple[str, ...] = get_args(BfclCategory)  # what can be imported, BFCL's order
NO_CALL = frozenset({"irrelevance", "live_irrelevance"})  # right answer: no call; no answer file
ANY_CALL = frozenset({"live_relevance"})  # right answer: any call; no answer file
NOT_YET = (
    "Java, JavaScript, multi-turn, memory, web search and format-sensitivity categories are not imported"
)

# BFCL's type names -> JSON schema's (BFCL's own mapping for function-calling models).
JSON_TYPES = {
    "string": "string",
    "any": "string",
    "integer": "integer",
    "float": "number",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "dict": "object",
}

_DATA_FILE = re.compile(r"BFCL_v(\d+)_simple_python\.json$")
TOOL = "bfcl"


@dataclass
class BfclData:
    """BFCL's data files wherever they are: `read(name)` gives a file's bytes (None when absent),
    `where(name)` the name to show in an error."""

    origin: str
    prefix: str  # e.g. "BFCL_v4_"
    read: Callable[[str], bytes | None]
    where: Callable[[str], str]


def installed_data_folder() -> Path:
    """The data folder of an installed bfcl-eval, found without importing it (its import pulls in
    every provider SDK)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "no installed bfcl-eval found; give --data: BFCL's data folder or the wheel "
            "(`pip download --no-deps bfcl-eval`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def open_data(path: Path | None) -> BfclData:
    """BFCL's data from `path` (a data folder, the bfcl_eval package folder, a folder holding it,
    or the wheel), or from the installed package when `path` is None."""
    path = installed_data_folder() if path is None else path
    if path.is_file():
        return _wheel(path)
    if not path.is_dir():
        raise UserError(f"--data {path}: no such file or folder")
    for folder in (path, path / "data", path / "bfcl_eval" / "data"):
        prefix = _prefix(p.name for p in folder.glob("BFCL_v*_simple_python.json"))
        if prefix:

            def read(name: str, folder: Path = folder) -> bytes | None:
                file = folder / name
                return file.read_bytes() if file.is_file() else None

            return BfclData(str(folder), prefix, read, lambda name, folder=folder: str(folder / name))
    raise UserError(f"--data {path}: no BFCL data here (no BFCL_v*_simple_python.json in it or in data/)")


def _prefix(names: Iterator[str] | list[str]) -> str | None:
    """`BFCL_v<N>_` of the newest version among these file names."""
    versions = [int(m.group(1)) for name in names if (m := _DATA_FILE.search(name))]
    return f"BFCL_v{max(versions)}_" if versions else None


def _wheel(path: Path) -> BfclData:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise UserError(f"--data {path}: not a folder nor a readable wheel ({error})") from None
    members = {name for name in archive.namelist() if name.startswith("bfcl_eval/data/")}
    prefix = _prefix([name for name in members if name.count("/") == 2])
    if prefix is None:
        raise UserError(f"--data {path}: the wheel holds no bfcl_eval/data/BFCL_v*_simple_python.json")

    def read(name: str) -> bytes | None:
        member = f"bfcl_eval/data/{name}"
        return archive.read(member) if member in members else None

    return BfclData(str(path), prefix, read, lambda name: f"{path}!bfcl_eval/data/{name}")


# ------------------------------------------------------------------ rows -> tasks


class RowError(ValueError):
    """A row that is not BFCL's shape; becomes `FILE:LINE: message`, the line of the answer file
    when `in_answer`."""

    def __init__(self, message: str, in_answer: bool = False):
        super().__init__(message)
        self.in_answer = in_answer


@dataclass
class BfclImport:
    tasks: list[Task] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # tasks written per category
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row id, why)


def check_categories(categories: list[str]) -> None:
    """Refuse, before any file is read, a category that is not one of PYTHON_CATEGORIES."""
    for category in categories:
        if category not in PYTHON_CATEGORIES:
            raise UserError(
                f"--categories: unknown or not yet supported category {category!r}; known: "
                f"{', '.join(PYTHON_CATEGORIES)} ({NOT_YET})"
            )


def import_bfcl(data: BfclData, categories: list[str]) -> BfclImport:
    """Every row of these categories as a task (module docstring); rows no answer can satisfy
    are skipped and listed."""
    check_categories(categories)
    result = BfclImport()
    for category in categories:
        name = f"{data.prefix}{category}.json"
        rows = _rows(data, name)
        answers: list[tuple[int, dict[str, Any]]] | None = None
        if category not in NO_CALL | ANY_CALL:
            answer_name = f"possible_answer/{name}"
            answers = _rows(data, answer_name)
            if len(answers) != len(rows):
                raise UserError(
                    f"{data.where(answer_name)}: {len(answers)} answers for the {len(rows)} rows of {name}"
                )
        count = 0
        for k, (line, row) in enumerate(rows):
            try:
                answer = None
                if answers is not None:
                    answer = _ground_truth(answers[k][1], row)
                task = row_task(category, row, answer)
            except RowError as error:
                if error.in_answer and answers is not None:
                    raise UserError(
                        f"{data.where(f'possible_answer/{name}')}:{answers[k][0]}: {error}"
                    ) from None
                raise UserError(f"{data.where(name)}:{line}: {error}") from None
            if isinstance(task, str):
                result.skipped.append((str(row.get("id")), task))
                continue
            result.tasks.append(task)
            count += 1
        result.counts[category] = count
    seen: set[str] = set()
    for task in result.tasks:
        if task.id in seen:
            raise UserError(f"{data.origin}: row id '{task.id}' appears in two categories")
        seen.add(task.id)
    return result


def _rows(data: BfclData, name: str) -> list[tuple[int, dict[str, Any]]]:
    raw = data.read(name)
    if raw is None:
        raise UserError(f"{data.where(name)}: no such file in {data.origin}")
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise UserError(f"{data.where(name)}:{number}: not JSON ({error})") from None
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise UserError(f"{data.where(name)}:{number}: not a BFCL row (an object with a string 'id')")
        rows.append((number, value))
    if not rows:
        raise UserError(f"{data.where(name)}: no rows")
    return rows


def _ground_truth(answer: dict[str, Any], row: dict[str, Any]) -> list[dict[str, dict[str, list[Any]]]]:
    if answer.get("id") != row["id"]:
        raise RowError(
            f"answer row '{answer.get('id')}' is not for data row '{row['id']}' (out of step)", True
        )
    truth = answer.get("ground_truth")
    if not isinstance(truth, list) or not truth:
        raise RowError(f"'ground_truth' of '{row['id']}': expected a non-empty list of calls", True)
    for call in truth:
        if (
            not isinstance(call, dict)
            or len(call) != 1
            or not isinstance(next(iter(call.values())), dict)
            or not all(isinstance(v, list) for v in next(iter(call.values())).values())
        ):
            raise RowError(
                f"'ground_truth' of '{row['id']}': each call is {{function: {{argument: [acceptable values]}}}}",
                True,
            )
    return truth


def json_schema(schema: Any, where: str) -> Any:
    """A BFCL parameter schema with JSON schema's type names, nested properties and items too."""
    if not isinstance(schema, dict):
        raise RowError(f"{where}: a schema must be an object")
    converted = dict(schema)
    if "type" in schema:
        kind = schema["type"]
        if kind not in JSON_TYPES:
            raise RowError(f"{where}: unknown type {kind!r}; known: {', '.join(JSON_TYPES)}")
        converted["type"] = JSON_TYPES[kind]
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {
            key: json_schema(value, f"{where}.{key}") for key, value in schema["properties"].items()
        }
    if "items" in schema:
        converted["items"] = json_schema(schema["items"], f"{where}[]")
    return converted


def _function(value: Any, where: str) -> FunctionSpec:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise RowError(f"{where}: a function needs a string 'name'")
    parameters = value.get("parameters", {"type": "dict", "properties": {}})
    if not isinstance(parameters, dict) or not isinstance(parameters.get("properties", {}), dict):
        raise RowError(f"{where}: {value['name']}: 'parameters' must be an object with 'properties'")
    for name, schema in parameters.get("properties", {}).items():
        if not isinstance(schema, dict) or schema.get("type") not in JSON_TYPES:
            raise RowError(f"{where}: {value['name']}.{name}: unknown type {schema.get('type')!r}")
    return FunctionSpec(
        name=own_name(value["name"]),
        description=str(value.get("description", "")),
        parameters=json_schema({**parameters, "type": "dict"}, f"{where}: {value['name']}"),
    )


def own_name(name: str) -> str:
    """BFCL's function name as offered here: dots become underscores (BFCL's rule for APIs that
    take no dots in names)."""
    return name.replace(".", "_")


def query_text(question: Any, where: str) -> str:
    """The request: the single user message, or every message as a `role: content` paragraph."""
    if not isinstance(question, list) or len(question) != 1 or not isinstance(question[0], list):
        raise RowError(
            f"{where}: 'question' must hold one turn (a list of messages); multi-turn rows are not imported"
        )
    messages = question[0]
    if not messages or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise RowError(f"{where}: 'question' messages must be objects with string 'role' and 'content'")
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def row_task(
    category: str, row: dict[str, Any], truth: list[dict[str, dict[str, list[Any]]]] | None
) -> Task | str:
    """One BFCL row as a task, or why it is skipped (no answer can satisfy its acceptable values)."""
    where = f"row '{row['id']}'"
    query = query_text(row.get("question"), where)
    raw_functions = row.get("function")
    if not isinstance(raw_functions, list) or (not raw_functions and category not in NO_CALL):
        raise RowError(f"{where}: 'function' must be a non-empty list")  # empty: irrelevance only
    functions = [_function(f, f"{where} function {i + 1}") for i, f in enumerate(raw_functions)]
    names = [spec.name for spec in functions]
    if len(set(names)) != len(names):
        raise RowError(f"{where}: two functions share a name once dots become underscores: {names}")
    renamed = {own_name(f["name"]): f["name"] for f in raw_functions if "." in f["name"]}
    meta: dict[str, Any] = {"source": "bfcl", "bfcl_category": category}
    if renamed:
        meta["bfcl_names"] = renamed
    if len(row["question"][0]) > 1:
        meta["bfcl_messages"] = len(row["question"][0])
    by_name = {spec.name: spec for spec in functions}
    if category in NO_CALL:
        answers: list[dict[str, dict[str, list[Any]]]] | None = []
        labels = [Program([])]
    elif category in ANY_CALL:
        answers = None
        labels = [Program([placeholder_call(functions[0])])]
    else:
        assert truth is not None
        answers = [{own_name(name): args for name, args in call.items()} for call in truth]
        unknown = [name for call in answers for name in call if name not in by_name]
        if unknown:
            raise RowError(
                f"'ground_truth' of '{row['id']}' calls {unknown[0]}, which the row does not offer", True
            )
        label = concrete_answer(by_name, answers, category)
        if label is None:
            return "no answer meets its acceptable values (BFCL data error)"
        labels = [label]
    return Task(
        id=row["id"],
        tool=TOOL,
        category=category,  # type: ignore[arg-type]
        query=query,
        labels=labels,
        functions=functions,
        answers=answers,
        meta=meta,
    )


# ------------------------------------------------------------------ concrete labels

_PLACEHOLDERS: dict[str, Any] = {
    "string": "example",
    "integer": 1,
    "number": 1.0,
    "boolean": True,
    "array": [],
    "object": {},
}


def placeholder_call(spec: FunctionSpec) -> Call:
    """A call with every required argument set (its enum's first value, its default, or a value of
    its type): live_relevance's label, where any call is right."""
    properties = spec.parameters.get("properties", {})
    arguments = {}
    for name in spec.parameters.get("required", []):
        schema = properties.get(name, {})
        if schema.get("enum"):
            arguments[name] = schema["enum"][0]
        elif "default" in schema and schema["default"] is not None:
            arguments[name] = schema["default"]
        else:
            arguments[name] = _PLACEHOLDERS.get(schema.get("type"), "example")
    return Call(name=spec.name, arguments=arguments)


def _first(options: list[Any], omit_first_blank: bool) -> tuple[bool, Any]:
    """(give it, value): the first acceptable value; `""` first means leave it out."""
    if omit_first_blank and options and options[0] == "" and type(options[0]) is str:
        return False, None
    given = [v for v in options if not (type(v) is str and v == "")]
    return (True, given[0]) if given else (True, "")


def _concrete_value(value: Any, schema: dict[str, Any]) -> Any:
    """An acceptable value as a concrete one: an object's (or a list of objects') values are lists
    of acceptable values, of which the first is taken (`""`: the key is left out)."""
    if schema.get("type") == "object" and type(value) is dict:
        return _concrete_object(value)
    items = schema.get("items") or {}
    if schema.get("type") == "array" and items.get("type") == "object" and type(value) is list:
        return [_concrete_object(v) if type(v) is dict else v for v in value]
    return value


def _concrete_object(value: dict[str, Any]) -> dict[str, Any]:
    concrete = {}
    for key, options in value.items():
        if type(options) is not list:
            concrete[key] = options
            continue
        give, item = _first(options, True)
        if give:
            concrete[key] = item
    return concrete


def concrete_answer(
    functions: dict[str, FunctionSpec], answers: list[dict[str, dict[str, list[Any]]]], category: str
) -> Program | None:
    """One concrete answer that the checker accepts: first acceptable values, `""` first meaning
    leave it out (then: every optional argument left out where it may be; then every argument
    given), or None when none of these passes (the row's acceptable values cannot be met)."""
    for strategy in ("first", "omit", "give"):
        calls = []
        for answer in answers:
            ((name, accepted),) = answer.items()
            spec = functions[name]
            required = set(spec.parameters.get("required", []))
            properties = spec.parameters.get("properties", {})
            arguments = {}
            for param, options in accepted.items():
                if strategy == "first":
                    give, value = _first(options, param not in required)
                elif strategy == "omit":
                    give, value = (
                        (False, None) if "" in options and param not in required else _first(options, False)
                    )
                else:
                    give, value = _first(options, False)
                if give:
                    arguments[param] = _concrete_value(value, properties.get(param, {}))
            calls.append(Call(name=name, arguments=arguments))
        probe = Task(
            id="probe",
            tool=TOOL,
            category=category,  # type: ignore[arg-type]
            query="",
            labels=[Program(calls)],
            functions=list(functions.values()),
            answers=answers,
        )
        if check_task(probe, calls).valid:
            return Program(calls)
    return None
