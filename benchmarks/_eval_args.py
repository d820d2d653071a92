"""The options every benchmark that runs `toolbench eval` on frozen tasks takes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TOOLS = "cat_api,home_search,spreadsheet,trip_booking,weather"


def eval_arguments(doc: str | None, task_set: str, limit: int) -> argparse.ArgumentParser:
    """A parser with --model, --tools, --task-set, --limit and --k (the embedded target's tools)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/demo/models/target", help="A local model folder or HF id.")
    parser.add_argument("--tools", default=TOOLS)
    parser.add_argument("--task-set", default=task_set, choices=["test", "indist"])
    parser.add_argument("--limit", type=int, default=limit, help="Tasks per tool.")
    parser.add_argument("--k", type=int, default=0, help="Retrieved demos per prompt.")
    return parser


def eval_config(args: argparse.Namespace, scratch: str | Path, **settings: Any):
    """The frozen tasks the options name, in chat mode with the system prompt, answer cache off
    (in `scratch`), so every run of a benchmark decodes its answers itself."""
    from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
    from toolbench.pipelines.evaluate import EvalConfig

    return EvalConfig(
        model=f"hf:{args.model}",
        tools=args.tools.split(","),
        task_set=args.task_set,
        mode="chat",
        k_demos=args.k,
        system_prompt=DEFAULT_SYSTEM_PROMPT,
        limit=args.limit,
        use_cache=False,
        cache_dir=str(Path(scratch) / "cache"),
        **settings,
    )
