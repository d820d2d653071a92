"""`toolbench leaderboard`: the Typer command; the work is in `toolbench.app.leaderboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toolbench.cli.options import Overwrite, Seed, claim_output
from toolbench.foundation.errors import UserError
from toolbench.foundation.tables import rich_table


def leaderboard_command(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR...",
            help="Folders written by `toolbench eval --out` (each holds summary.json and scores.jsonl).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Folder for leaderboard.md, leaderboard.csv, leaderboard.html (plot inlined), "
            "leaderboard.png and leaderboard.json (rows + run record)."
        ),
    ] = Path("runs/leaderboard"),
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed",
            help="Compare runs with different task sets or prompt settings anyway: the differing "
            "columns are shown and the table is marked as mixed.",
        ),
    ] = False,
    seed: Seed = 0,  # of the bootstrap: same folders + seed = same table
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples for the intervals and the paired test.", min=1000)
    ] = 10_000,
    overwrite: Overwrite = False,
) -> None:
    """Put eval runs side by side: success per category with 95% intervals, an overall score, cost.

    Overall score = the unweighted mean over categories of the category success rates (BFCL's).
    "within noise" marks runs whose difference from the leader is not significant at 95% by a
    paired bootstrap over the shared tasks (stratified by category, seeded). Runs that scored
    different tasks or used different prompt settings (mode, k demos, retriever, system prompt,
    call format) are refused unless --allow-mixed. Example:

        toolbench leaderboard runs/qwen runs/llama runs/mistral --out runs/board
    """
    from toolbench.app.leaderboard import make_leaderboard, table

    if out.is_file():
        raise UserError(f"--out {out} is a file; give a folder for the leaderboard files")
    claim_output(out, overwrite, tuple(run_dirs))
    board = make_leaderboard(run_dirs, out, allow_mixed, seed, resamples)
    headers, rows = table(board)
    keep = headers.index("within noise") + 1  # the ranking; categories and cost are in the files
    title = "leaderboard" + (" (mixed runs)" if board.mixed else "")
    console = Console()
    console.print(rich_table(headers[:keep], [row[:keep] for row in rows], title=title))
    console.print(f"wrote {out}/leaderboard.md, .csv, .html, .png, .json", highlight=False, soft_wrap=True)
