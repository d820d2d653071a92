"""The one writer of a run's summary files, and their reader.

Every run kind (`eval`, `score`, `spec`, `distill grid`, `leaderboard`, `demo`) ends the same way:
`NAME.json`, its summary with the run record (`toolbench.foundation.runinfo`), and `NAME.md`, the same as
tables for people (NAME is `summary` for all but the grid, the leaderboard and the demo, whose files
keep their names). Both are written atomically (`toolbench.foundation.io`), the Markdown first: the JSON is
what marks a run as done (`toolbench demo` skips a step whose summary.json exists, the report and
the leaderboard read it), so once it is there the Markdown is too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from toolbench.foundation.errors import UserError
from toolbench.foundation.io import atomic_open, describe_validation_error, loads, write_json
from toolbench.foundation.records import RunRecord

M = TypeVar("M", bound=BaseModel)


def write_run_folder(
    folder: str | Path, document: BaseModel, markdown: str | None = None, name: str = "summary"
) -> Path:
    """Write `document` (a summary model that carries its run record as `run`) to FOLDER/NAME.json
    and `markdown`, when given, to FOLDER/NAME.md; return the JSON's path. A document without a run
    record is refused: a number that cannot be traced to how it was made is not written."""
    if not isinstance(getattr(document, "run", None), RunRecord):
        raise TypeError(f"{type(document).__name__} has no run record (`run`); a run file carries one")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if markdown is not None:
        with atomic_open(folder / f"{name}.md", "w") as handle:
            handle.write(markdown)
    path = folder / f"{name}.json"
    write_json(path, document)
    return path


def read_run_file(path: str | Path, model: type[M]) -> M:
    """A run's JSON file as `model`, or a one-line UserError naming the file and the first problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = loads(path.read_bytes())
    except ValueError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    return run_file_from(data, model, path)


def run_file_from(data: Any, model: type[M], path: str | Path) -> M:
    """`data`, read from `path` by a caller that looked into it first (the report, to see which
    command wrote it), as `model`; a one-line UserError when it is not one."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UserError(
            f"{path}: not a run file this version reads ({model.__name__}): "
            f"{describe_validation_error(error)}"
        ) from None
