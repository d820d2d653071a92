"""`toolbench tasks import-bfcl`: BFCL's Python categories as a task file (`toolbench.pipelines.bfcl_import`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toolbench.cli.options import Overwrite, claim_output, output_file, split_names

console = Console()
err = Console(stderr=True)


def import_bfcl_command(
    out: Annotated[Path, typer.Option(help="Task file to write (JSON lines).")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="BFCL's data folder, the bfcl_eval package folder, or the bfcl-eval wheel "
            "(`pip download --no-deps bfcl-eval`); default: the installed bfcl-eval's."
        ),
    ] = None,
    categories: Annotated[
        str,
        typer.Option(
            help="Comma-separated BFCL categories, or all: simple_python, multiple, parallel, "
            "parallel_multiple, irrelevance, live_simple, live_multiple, live_parallel, "
            "live_parallel_multiple, live_irrelevance, live_relevance."
        ),
    ] = "all",
    overwrite: Overwrite = False,
) -> None:
    """Import BFCL's single-turn Python categories as tasks that carry their own functions and
    acceptable answers, scored by BFCL's AST matching rules. Run them like any task file:
    `toolbench eval --tasks FILE --model ...`, `toolbench score --tasks FILE ...`."""
    from toolbench.foundation.errors import UserError
    from toolbench.foundation.io import write_jsonl
    from toolbench.pipelines.bfcl_import import PYTHON_CATEGORIES, check_categories, import_bfcl, open_data

    names = list(PYTHON_CATEGORIES) if categories == "all" else split_names(categories, "--categories")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UserError(f"--categories {categories!r}: {', '.join(duplicated)} given more than once")
    check_categories(names)  # before any file is read
    output_file(out)
    claim_output(out, overwrite, inputs=(data,))
    source = open_data(data)
    result = import_bfcl(source, names)
    if not result.tasks:
        raise UserError(f"{source.origin}: the categories {', '.join(names)} hold no importable rows")
    count = write_jsonl(out, result.tasks)
    per_category = ", ".join(f"{name} {n}" for name, n in result.counts.items())
    console.print(f"wrote {count} tasks to {out} ({per_category}) from {source.origin}", highlight=False)
    for row_id, why in result.skipped:
        err.print(f"skipped {row_id}: {why}", highlight=False, soft_wrap=True)
