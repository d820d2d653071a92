"""CLI options that several commands share, so the same thing has the same name and help everywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from toolbench.foundation.errors import UserError

M = TypeVar("M", bound=BaseModel)

Device = Annotated[
    str,
    typer.Option(help="Where models run: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."),
]
Dtype = Annotated[
    str,
    typer.Option(
        help="Model precision: auto (bfloat16 on an accelerator, float32 on the CPU), float32, bfloat16 "
        "or float16."
    ),
]
CallFormatOption = Annotated[
    str,
    typer.Option(
        "--call-format",
        help="How to read tool calls in a model's answer text. auto (default) recognises each answer's "
        "form: OpenAI/JSON calls, Hermes/Qwen <tool_call> blocks, Llama 3.x JSON (with or without "
        "<|python_tag|>), pythonic lists [f(a=1)], Mistral [TOOL_CALLS], ToolBench python lines. Or "
        "name one reader: json, python, hermes, llama-json, pythonic, mistral.",
    ),
]
ToolCallIdsOption = Annotated[
    str,
    typer.Option(
        help="Tool-call ids in chat exports: openai (call_ + 9 characters), mistral (exactly 9 letters or "
        "digits, which Mistral's template demands and every other accepts) or auto (openai for the openai "
        "export, mistral for the others)."
    ),
]
SplitParallelOption = Annotated[
    bool,
    typer.Option(
        help="One call per assistant message (each followed by its result with --multi-turn), for chat "
        "templates that refuse several calls in one message, e.g. Llama 3.1's."
    ),
]
# ------------------------------------------------------------------ one vocabulary
# One name and one help text per concept, on every command that takes it (README, "CLI vocabulary").
# A renamed option keeps its old spelling as a hidden alias: the `Old…` types below, each a second
# parameter of the command, read back with `renamed(new, old)`, so scripts that use it still work.

T = TypeVar("T")


def renamed(value: T, old_value: T | None) -> T:
    """The value of an option whose old spelling (a hidden alias) may have been used instead."""
    return value if old_value is None else old_value


Tools = Annotated[str, typer.Option("--tools", help="Tools to use: comma-separated names, or all.")]
ToolsAndCategories = Annotated[
    str,
    typer.Option(
        "--tools",
        help="Tools to test, and cross-tool categories (multi_tool, parallel, relevance): comma-separated "
        "names, or all.",
    ),
]
Samples = Annotated[
    int,
    typer.Option(
        "--samples",
        help="How many samples to generate from the templates (distinct requests; distill scenario III: "
        "query attempts).",
        min=1,
    ),
]
ExportFormats = Annotated[
    list[str] | None,
    typer.Option(
        "--export-format",
        help="Also export the train split to OUT_STEM.<format>.jsonl: openai, hf-chat, sharegpt or "
        "toolbench (repeatable).",
    ),
]
ExportFormat = Annotated[
    str, typer.Option("--export-format", help="Export format: openai, hf-chat, sharegpt or toolbench.")
]
MaxNewTokens = Annotated[
    int, typer.Option("--max-new-tokens", help="Most new tokens per answer (model output).", min=1)
]
LearningRate = Annotated[float, typer.Option("--learning-rate", help="Peak learning rate.", min=0.0)]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Sequences per optimizer step.", min=1)]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="toolbench's cache folder, shared by runs: model answers, demo indexes, the generic corpus "
        "(default: $TOOLBENCH_CACHE or ~/.cache/toolbench).",
    ),
]
_TARGET = typer.Option(
    "--target", help="Target model: an HF folder or hub id (a causal LM with a chat template)."
)
_DRAFT = typer.Option("--draft", help="Draft model: an HF folder or hub id with the target's tokenizer.")
Target = Annotated[str, _TARGET]
Draft = Annotated[str, _DRAFT]
OptionalTarget = Annotated[str | None, _TARGET]  # where a subcommand may run instead (`distill`)
OptionalDraft = Annotated[str | None, _DRAFT]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="torch CPU threads (default: torch's; 1 is often fastest on a CPU shared with other jobs).",
        min=1,
    ),
]
EvalPerTool = Annotated[
    int, typer.Option("--eval-per-tool", help="Held-out prompts per tool for analytic α.", min=1)
]
EmbeddingModel = Annotated[
    str | None,
    typer.Option(
        "--embedding-model",
        help="sentence-transformers model id or folder for dense/hybrid (default: the bundled all-MiniLM-L6-v2).",
    ),
]

# old spellings, hidden from --help
OldTool = Annotated[str | None, typer.Option("--tool", hidden=True)]
OldN = Annotated[int | None, typer.Option("--n", hidden=True, min=1)]
OldFormats = Annotated[list[str] | None, typer.Option("--format", hidden=True)]
OldFormat = Annotated[str | None, typer.Option("--format", hidden=True)]
OldMaxTokens = Annotated[int | None, typer.Option("--max-tokens", hidden=True, min=1)]
OldLr = Annotated[float | None, typer.Option("--lr", hidden=True, min=0.0)]
OldCacheDir = Annotated[Path | None, typer.Option("--cache-dir", hidden=True)]
OldPerTool = Annotated[int | None, typer.Option("--per-tool", hidden=True, min=1)]
OldModel = Annotated[str | None, typer.Option("--model", hidden=True)]

TrainDtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="Autocast precision while training (weights stay float32): auto (bfloat16 where the "
        "hardware computes it, a GPU or an AVX-512 CPU, about 1.6x faster there; float32 on an "
        "AVX2-only CPU, which emulates bfloat16 ~20x slower), float32, bfloat16 or float16.",
    ),
]


def checked_dtype(value: str) -> str:
    """A --dtype value, or a one-line error naming the choices."""
    from toolbench.foundation.devices import DTYPE_CHOICES

    if value not in DTYPE_CHOICES:
        raise UserError(f"--dtype {value!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    return value


def checked_call_format(value: str) -> str:
    """A --call-format value, or a one-line error naming the readers."""
    from toolbench.core.calls import FORMATS

    if value not in FORMATS:
        raise UserError(f"--call-format {value!r}: expected one of {', '.join(FORMATS)}")
    return value


Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an output that already exists (refused otherwise).")
]


def claim_output(
    path: Path, overwrite: bool, inputs: tuple[Path | None, ...] = (), what: str = "--out"
) -> None:
    """Refuse, in one line, to write where it would destroy data: over one of the command's own
    inputs (always), or over an existing output unless --overwrite. A folder output counts as
    existing when it holds anything. Temporary files that a killed earlier run of this output left
    beside it (`toolbench.foundation.io.temp_files`: our own naming, matched exactly) are removed first."""
    from toolbench.foundation.io import remove_stale_temps

    remove_stale_temps(path)
    for source in inputs:
        if source is not None and source.exists() and path.exists() and path.resolve() == source.resolve():
            raise UserError(f"{what} {path} is also this command's input; write the output elsewhere")
    if not path.exists() or overwrite:
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    kind = "folder" if path.is_dir() else "file"
    raise UserError(
        f"{what} {path}: the {kind} exists; pass --overwrite to replace it, or choose another path"
    )


# ------------------------------------------------------------------ checked values
# Every check below runs before any model, index or data set is loaded, and fails with one line
# that names the option and what it accepts: a mistake costs seconds, not a long run.

SEED_MAX = 2**32 - 1  # what every seeded library accepts (numpy's limit); larger seeds are refused
Seed = Annotated[
    int, typer.Option(help="Random seed (0 to 4294967295); same seed, same result.", min=0, max=SEED_MAX)
]
PORT_RANGE = (1, 65535)
K_DEMOS_MAX = 20  # retrieved demonstrations per prompt at most (ToolBench uses 3)


def split_names(value: str, option: str) -> list[str]:
    """A comma-separated list of names, or a one-line error for an empty one (`a,,b`, `a,`, ``)."""
    parts = [part.strip() for part in value.split(",")]
    for position, part in enumerate(parts, 1):
        if not part:
            raise UserError(
                f"{option} {value!r}: name {position} of {len(parts)} is empty; give comma-separated names"
            )
    return parts


def checked_tools(value: str, option: str = "--tool", categories: bool = False) -> list[str]:
    """Tool names (and, where `categories`, the cross-tool categories), or `all` alone: each name
    checked, an unknown one refused with the known ones listed. Returns the names as given
    (`['all']` for all)."""
    from toolbench.core.registry import tool_names

    names = split_names(value, option)
    if names == ["all"]:
        return names
    known = list(tool_names())
    if categories:
        from toolbench.pipelines.tasks import CATEGORIES

        known += list(CATEGORIES)
    for name in names:
        if name == "all":
            raise UserError(f"{option} {value!r}: `all` stands alone, not in a list")
        if name not in known:
            kinds = "tools and categories" if categories else "tools"
            raise UserError(f"{option}: unknown tool {name!r}; known {kinds}: {', '.join(known)}")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UserError(f"{option} {value!r}: {', '.join(duplicated)} given more than once")
    return names


def checked_device(value: str) -> str:
    """A --device value by its form (auto, cpu, cuda, cuda:N, mps); whether it is present here
    is checked when a model is placed."""
    from toolbench.foundation.devices import DEVICE_CHOICES

    kind, colon, index = value.partition(":")
    if kind not in DEVICE_CHOICES or (colon and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"--device {value!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    return value


def checked_file(path: Path, option: str) -> Path:
    """An input file that exists and is a file (not a folder)."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file")
    if not path.is_file():
        raise UserError(f"{option} {path}: no such file")
    return path


def checked_folder(path: Path, option: str) -> Path:
    """An input folder that exists and is a folder (not a file)."""
    if path.is_file():
        raise UserError(f"{option} {path}: is a file; give a folder")
    if not path.is_dir():
        raise UserError(f"{option} {path}: no such folder")
    return path


def output_file(path: Path, option: str = "--out") -> Path:
    """An output that must be a file: refused when a folder is in its place."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give the file to write")
    return path


def output_folder(path: Path, option: str = "--out") -> Path:
    """An output that must be a folder: refused when a file is in its place."""
    if path.is_file():
        raise UserError(f"{option} {path}: is a file; give a folder")
    return path


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def checked_model(value: str, option: str, marker: str | None = "config.json", what: str = "model") -> str:
    """A model (or tokenizer) given as an HF folder or a hub id: a folder must hold `marker`; a
    missing path is refused unless it has the form of a hub id (`org/name`, whose first part is
    not a local folder), which the loader fetches or finds in the HF cache."""
    path = Path(value).expanduser()
    if path.is_dir():
        if marker is not None and not (path / marker).is_file():
            raise UserError(f"{option} {value}: the folder has no {marker}; give an HF {what} folder")
        return value
    if path.exists():
        raise UserError(f"{option} {value}: is a file; give an HF {what} folder or hub id")
    first = value.split("/", 1)[0]
    if _HUB_ID.fullmatch(value) and not Path(first).is_dir() and not value.startswith((".", "~")):
        return value
    raise UserError(f"{option} {value}: not a {what} folder or hub id (no such {what} folder)")


def config_from_options(config_class: type[M], /, **values: Any) -> M:
    """`config_class(**values)` for a configuration built from command-line options: a value the model's
    constraints refuse is one line naming the option (`--k-demos`), not a ValidationError."""
    try:
        return config_class(**values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "value"
        value = first.get("input")
        shown = "" if isinstance(value, dict | list) else f" {value!r}"
        raise UserError(f"--{field.replace('_', '-')}{shown}: {first['msg']}") from None


CopyHead = Annotated[
    bool,
    typer.Option(
        "--copy-head/--no-copy-head",
        help="A Llama with a copy head (pointer-generator, toolbench/core/pointer_llama.py): each next "
        "token is generated or copied from the context, the model learning where to copy from. README "
        "'Train the embedded models'.",
    ),
]
