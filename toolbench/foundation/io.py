r"""Files: JSONL that names the line when it is wrong, and writes that never leave half a file.

Any value a model can put in a record is stored and read back unchanged. orjson (fast, UTF-8)
writes every record it can; it refuses three things a model's answer may hold, and for those
records alone the line is written by the standard library instead, as plain ASCII JSON:

- a lone surrogate (`"\udcff"`: valid JSON from `json.dumps`, but not encodable as UTF-8): written
  as its `\udcff` escape, which the reader turns back into the same lone surrogate (one exception,
  JSON's own: a high surrogate directly followed by a low one is, in JSON as in UTF-16, the one
  character the two pair into, `\ud83d\ude00` is 😀, and is read back as that character);
- an integer beyond 64 bits: written exactly, and read back exactly (orjson would read a float);
- a value nested deeper than orjson writes (255 levels): written in full, up to the depth the
  standard library reaches (a few hundred levels more); deeper still is a ValueError saying so.

NUL and other control characters are written as `\u0000` escapes by either library; a huge string
is just a long line. So every line is standard JSON any reader can load; `loads` below is the
reader that accepts all of them, and names the line of one it cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from toolbench.foundation.errors import UserError

M = TypeVar("M", bound=BaseModel)
_UMASK = os.umask(0)
os.umask(_UMASK)


def default_cache_dir() -> Path:
    """Where caches live unless a command is given `--cache-dir`: $TOOLBENCH_CACHE, else
    ~/.cache/toolbench (model answers, generated corpora, teacher caches, demo indexes)."""
    return Path(os.environ.get("TOOLBENCH_CACHE", Path.home() / ".cache" / "toolbench"))


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a record in a few words: `field 'labels.0': ...`, or `unknown field
    'x'` for a key the record does not have (rows refuse keys they do not know: a typo in a key
    would otherwise be ignored silently)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "record"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"unknown field '{where}'{more}"
    return f"field '{where}': {first['msg']}{more}"


# orjson's TypeErrors for values JSON can hold but orjson will not write; anything else (a dict key
# that is not a string, an object JSON has no form for) stays an error.
_STDLIB_CAN_WRITE = ("not valid UTF-8", "Integer exceeds 64-bit range", "Recursion limit reached")
# A run of 19 digits may be an integer orjson would read as a float (beyond 64 bits): such a line is
# read again by the standard library, which keeps it exact (a false alarm only costs that re-read).
# Found by mapping digits to "1" and the rest to "0" (bytes.translate and `in` run at memory speed;
# a regex costs five times orjson's own parse).
_DIGITS_TO_ONES = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_LONG_NUMBER = b"1" * 19


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """One JSON value, as orjson reads it, or, where orjson refuses standard JSON that `dumps` may
    write (a lone surrogate's escape) or would lose precision (an integer beyond 64 bits), as the
    standard library reads it. Raises orjson.JSONDecodeError (a ValueError) for anything else."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        try:
            return _stdlib_loads(data)
        except (ValueError, RecursionError):
            raise error from None
    if _LONG_NUMBER in data.translate(_DIGITS_TO_ONES):
        try:
            return _stdlib_loads(data)
        except (ValueError, RecursionError):  # e.g. an integer past Python's digit limit: orjson's float
            return value
    return value


def _stdlib_loads(data: bytes) -> Any:
    # surrogatepass: a surrogate written as raw bytes (by a writer that allowed it) reads back too.
    return json.loads(data.decode("utf-8", "surrogatepass"), parse_constant=_refuse_constant)


def iter_jsonl(path: str | Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line; a bad line is a UserError naming it.
    `on_bytes(bytes read so far)` every 1,000 lines and at the end: a progress bar's measure."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a JSONL file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    done = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            done += len(line)
            if on_bytes is not None and number % 1000 == 0:
                on_bytes(done)
            if not line.strip():
                continue
            try:
                value = loads(line)
            except orjson.JSONDecodeError as error:
                raise UserError(f"{path}:{number}: not valid JSON ({error})") from None
            yield number, value
    if on_bytes is not None:
        on_bytes(done)


def read_records(path: str | Path, model: type[M]) -> list[M]:
    records = []
    for number, value in iter_jsonl(path):
        try:
            records.append(model.model_validate(value))
        except ValidationError as error:
            raise UserError(
                f"{path}:{number}: not a {model.__name__}: {describe_validation_error(error)}"
            ) from None
    return records


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dumps(value: Any, *, sort_keys: bool = False, indent: bool = False) -> bytes:
    """One JSON value as bytes: orjson's UTF-8, or for the values orjson refuses (see the module's
    docstring) the standard library's ASCII with escapes. ValueError for a value nested too deeply
    for either; TypeError, as orjson's, for a value JSON has no form for."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    option = (orjson.OPT_SORT_KEYS if sort_keys else 0) | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(value, option=option or None)
    except TypeError as error:
        if not any(reason in str(error) for reason in _STDLIB_CAN_WRITE):
            raise
        return _stdlib_dumps(value, error, sort_keys, indent)


def _stdlib_dumps(value: Any, error: TypeError, sort_keys: bool, indent: bool) -> bytes:
    options: dict[str, Any] = {"ensure_ascii": True, "sort_keys": sort_keys, "allow_nan": False}
    options.update({"indent": 2} if indent else {"separators": (",", ":")})
    try:
        try:
            text = json.dumps(value, **options)
        except ValueError as nan:
            if "Out of range float" not in str(nan):
                raise
            text = json.dumps(_finite(value), **options)  # NaN and infinities as null, as orjson writes them
    except RecursionError:
        raise ValueError("cannot write a value nested this deeply as JSON") from None
    except ValueError as problem:  # e.g. an integer past Python's 4,300-digit limit
        raise ValueError(f"cannot write this value as JSON: {problem}") from None
    except TypeError:  # something else orjson refused too: its message says what
        raise error from None
    return text.encode("ascii")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value - value == 0 else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# `tempfile.mkstemp`/`mkdtemp` name their files `prefix + 8 characters of this alphabet + suffix`.
_TEMP_NAME = "[a-z0-9_]{8}"


def temp_files(path: str | Path) -> list[Path]:
    """The temporary files and folders `atomic_open` and `atomic_dir` make beside `path`
    (`.NAME.XXXXXXXX.tmp`, and `.NAME.old`), matched exactly: nothing else is ever touched."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:{_TEMP_NAME}\.tmp|old)")
    return sorted(p for p in path.parent.glob(f".{_glob_escape(path.name)}.*") if pattern.fullmatch(p.name))


def _glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove what a killed writer of `path` left beside it (see `temp_files`); called when a
    command that writes `path` starts, so a crash never leaves litter that outlives the next run.
    Returns what was removed."""
    removed = temp_files(path)
    for stale in removed:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return removed


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[Any]:
    """Write to a temporary file beside `path` and rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results should be readable like any other
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    count = 0
    with atomic_open(path) as handle:
        for record in records:
            handle.write(dumps(record) + b"\n")
            count += 1
    return count


def write_json(path: str | Path, value: Any) -> None:
    with atomic_open(path) as handle:
        handle.write(dumps(value, indent=True) + b"\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder beside `path`, then swap it into place: a model or checkpoint folder
    is either the old one, the new one, or absent, never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


DISK_MARGIN = 1.1  # the estimate is from the first samples; later ones may be a little longer
DISK_RESERVE = 64 * 2**20  # never fill the disk to the last byte


def check_disk_space(out: Path, samples: int, first: list[bytes]) -> None:
    """Refuse, before writing, a run whose output would not fit on its disk: `samples` more lines
    at the mean size of the `first` ones (x DISK_MARGIN), against the free space of OUT's folder
    less DISK_RESERVE. The numbers are in the error."""
    import shutil

    per_sample = sum(map(len, first)) / len(first)
    needed = int(samples * per_sample * DISK_MARGIN)
    free = shutil.disk_usage(out.parent).free
    if needed > free - DISK_RESERVE:
        raise UserError(
            f"{samples:,} samples need about {needed / 1e9:,.2f} GB ({per_sample:,.0f} bytes each), "
            f"but {out.parent} has {free / 1e9:,.2f} GB free; ask for fewer samples or write elsewhere"
        )
