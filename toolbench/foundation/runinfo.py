"""RunRecords: config, versions, seed, git revision and machine, written beside every result."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from toolbench.foundation.records import RunRecord

TRACKED_PACKAGES = (
    "toolbench",
    "pydantic",
    "jsonschema",
    "jinja2",
    "orjson",
    "torch",
    "transformers",
    "datasets",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str | None:
    """The revision of the checkout this code runs from (with `+dirty` for local edits)."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    import os

    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()}


def start_record(command: str, config: dict[str, Any], seed: int | None = None) -> RunRecord:
    return RunRecord(
        command=command,
        config=config,
        seed=seed,
        git_revision=git_revision(),
        packages=package_versions(),
        machine=machine(),
        started_at=now(),
    )


def finish_record(record: RunRecord, **counts: Any) -> RunRecord:
    record.finished_at = now()
    record.counts.update(counts)
    return record
