"""CLI options that several commands share, so the same thing has the same name and help everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolbench.errors import UserError

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
        "--format",
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
TrainDtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="Autocast precision while training (weights stay float32): auto (= bfloat16, about 1.6x "
        "faster than float32 even on a CPU), float32, bfloat16 or float16.",
    ),
]


def checked_dtype(value: str) -> str:
    """A --dtype value, or a one-line error naming the choices."""
    from toolbench.devices import DTYPE_CHOICES

    if value not in DTYPE_CHOICES:
        raise UserError(f"--dtype {value!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    return value


def checked_call_format(value: str) -> str:
    """A --call-format value, or a one-line error naming the readers."""
    from toolbench.calls import FORMATS

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
    existing when it holds anything."""
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
