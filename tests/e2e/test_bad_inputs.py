"""Every bad input, on every subcommand, is refused the same way: exit status 2, no traceback, and
one line (or Typer's own usage box, for an option Typer itself rejects) that names what is wrong
and where: the option, the file, the line, the field. And it is refused before any work: no model
loads, no data is made, no output is left behind.

The table runs in-process (Typer's CliRunner: a UserError comes back as the result's exception,
which the installed command prints as one line with exit status 2); a few cases run the real
command in a subprocess to check the installed entry point does exactly that.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import HOME_TASKS, run_cli
from toolbench.cli.main import app
from toolbench.foundation.errors import UserError

pytestmark = pytest.mark.e2e

TASK = json.loads(HOME_TASKS.read_text().splitlines()[0])
SAMPLE = {**TASK, "split": "train", "action": "API.search()", "results": []}
PREDICTION = {"id": TASK["id"], "text": "API.search()"}


def _jsonl(*rows: object) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


FILES: dict[str, str] = {
    "tasks.jsonl": _jsonl(TASK),
    "samples.jsonl": _jsonl(SAMPLE),
    "predictions.jsonl": _jsonl(PREDICTION),
    "empty.jsonl": "",
    "blank.jsonl": "\n  \n",
    "broken_line2.jsonl": _jsonl(PREDICTION, '{"id": "x", "text": '),
    "tasks_broken_line2.jsonl": _jsonl(TASK, "not json"),
    "samples_broken_line2.jsonl": _jsonl(SAMPLE, '{"id": "x",'),
    "task_unknown_key.jsonl": _jsonl({**TASK, "lables": []}),
    "task_wrong_type.jsonl": _jsonl({**TASK, "labels": "API.search()"}),
    "task_no_labels.jsonl": _jsonl({**TASK, "labels": []}),
    "task_bad_category.jsonl": _jsonl({**TASK, "category": "sometimes"}),
    "task_unknown_tool.jsonl": _jsonl({**TASK, "tool": "nosuch", "tools": []}),
    "task_duplicate.jsonl": _jsonl(TASK, TASK),
    "task_list_row.jsonl": _jsonl([TASK]),
    "sample_unknown_key.jsonl": _jsonl({**SAMPLE, "colour": "red"}),
    "sample_bad_split.jsonl": _jsonl({**SAMPLE, "split": "dev"}),
    "sample_wrong_type.jsonl": _jsonl({**SAMPLE, "query": 5}),
    "prediction_unknown_key.jsonl": _jsonl({"id": TASK["id"], "txt": "API.search()"}),
    "prediction_wrong_type.jsonl": _jsonl({"id": TASK["id"], "text": 5}),
    "prediction_no_id.jsonl": _jsonl({"text": "API.search()"}),
    "prediction_neither.jsonl": _jsonl({"id": TASK["id"]}),
    "prediction_other_task.jsonl": _jsonl({"id": "not-a-task", "text": "x"}),
    "prediction_duplicate.jsonl": _jsonl(PREDICTION, PREDICTION),
    "prediction_string_row.jsonl": _jsonl('"just text"'),
    "prediction_bad_calls.jsonl": _jsonl({"id": TASK["id"], "calls": [{"name": "f", "arguments": [1]}]}),
    "prompt.txt": "You call tools.",
    "notes.txt": "not an index",
    "latin1.txt": "caf\xe9",
}
FOLDERS = ("folder", "index_without_meta", "model_without_config")


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for name, text in FILES.items():
        (root / name).write_bytes(text.encode("latin-1") if name == "latin1.txt" else text.encode())
    for name in FOLDERS:
        (root / name).mkdir()
    (root / "index_without_meta" / "documents.jsonl").write_text("")
    (root / "model_without_config" / "weights.bin").write_bytes(b"")
    return root


# (case id, arguments with {d} for the fixture folder, fragments the message must hold)
CASES: list[tuple[str, list[str], list[str]]] = [
    # ------------------------------------------------------------------ tools
    ("tools-show-unknown", ["tools", "show", "nosuch"], ["unknown tool 'nosuch'", "weather"]),
    ("tools-show-empty", ["tools", "show", ""], ["unknown tool ''"]),
    ("tools-list-extra-option", ["tools", "list", "--bogus"], ["--bogus"]),
    # --------------------------------------------------------------- generate
    ("gen-samples-zero", ["generate", "--out", "{d}/o.jsonl", "--samples", "0"], ["--samples"]),
    ("gen-samples-negative", ["generate", "--out", "{d}/o.jsonl", "--samples", "-5"], ["--samples"]),
    ("gen-samples-text", ["generate", "--out", "{d}/o.jsonl", "--samples", "many"], ["--samples", "integer"]),
    # the old spelling (a hidden alias) is checked the same way
    ("gen-n-zero", ["generate", "--out", "{d}/o.jsonl", "--n", "0"], ["--n"]),
    (
        "gen-distractors-50",
        ["generate", "--out", "{d}/o.jsonl", "--distractors", "50"],
        ["--distractors 50", "range", "0 to"],
    ),
    (
        "gen-distractors-negative",
        ["generate", "--out", "{d}/o.jsonl", "--distractors", "-1"],
        ["--distractors"],
    ),
    ("gen-relevance-over-1", ["generate", "--out", "{d}/o.jsonl", "--relevance", "1.5"], ["--relevance"]),
    (
        "gen-tool-empty-name",
        ["generate", "--out", "{d}/o.jsonl", "--tools", "weather,,home_search"],
        ["--tools", "name 2 of 3 is empty"],
    ),
    (
        "gen-tool-trailing-comma",
        ["generate", "--out", "{d}/o.jsonl", "--tools", "weather,"],
        ["--tools", "empty"],
    ),
    ("gen-tool-empty", ["generate", "--out", "{d}/o.jsonl", "--tools", ""], ["--tools", "empty"]),
    (
        "gen-tool-unknown",
        ["generate", "--out", "{d}/o.jsonl", "--tools", "weather,nosuch"],
        ["unknown tool 'nosuch'", "home_search"],
    ),
    (
        "gen-tool-twice",
        ["generate", "--out", "{d}/o.jsonl", "--tools", "weather,weather"],
        ["weather given more than once"],
    ),
    (
        "gen-tool-all-in-list",
        ["generate", "--out", "{d}/o.jsonl", "--tools", "all,weather"],
        ["`all` stands alone"],
    ),
    ("gen-split-dev", ["generate", "--out", "{d}/o.jsonl", "--split", "dev"], ["--split", "'dev'"]),
    ("gen-out-is-folder", ["generate", "--out", "{d}/folder", "--samples", "5"], ["--out", "is a folder"]),
    ("gen-seed-negative", ["generate", "--out", "{d}/o.jsonl", "--seed", "-1"], ["--seed"]),
    ("gen-seed-huge", ["generate", "--out", "{d}/o.jsonl", "--seed", str(2**70)], ["--seed"]),
    ("gen-seed-text", ["generate", "--out", "{d}/o.jsonl", "--seed", "abc"], ["--seed"]),
    ("gen-workers-zero", ["generate", "--out", "{d}/o.jsonl", "--workers", "0"], ["--workers"]),
    (
        "gen-templates-missing",
        ["generate", "--out", "{d}/o.jsonl", "--templates", "{d}/nosuch"],
        ["--templates", "no such folder"],
    ),
    (
        "gen-templates-is-file",
        ["generate", "--out", "{d}/o.jsonl", "--templates", "{d}/notes.txt"],
        ["--templates", "is a file"],
    ),
    (
        "gen-format-unknown",
        ["generate", "--out", "{d}/o.jsonl", "--export-format", "csv"],
        ["export format 'csv'", "openai"],
    ),
    (
        "gen-tool-call-ids",
        ["generate", "--out", "{d}/o.jsonl", "--export-format", "openai", "--tool-call-ids", "uuid"],
        ["--tool-call-ids 'uuid'"],
    ),
    ("gen-out-missing", ["generate", "--samples", "5"], ["--out"]),
    # ------------------------------------------------------------------ export
    (
        "export-source-missing",
        ["export", "{d}/nosuch.jsonl", "--out", "{d}/o.jsonl"],
        ["SOURCE", "nosuch.jsonl", "no such file"],
    ),
    ("export-source-folder", ["export", "{d}/folder", "--out", "{d}/o.jsonl"], ["SOURCE", "is a folder"]),
    (
        "export-format-unknown",
        ["export", "{d}/samples.jsonl", "--out", "{d}/o.jsonl", "--export-format", "csv"],
        ["export format 'csv'"],
    ),
    (
        "export-split-dev",
        ["export", "{d}/samples.jsonl", "--out", "{d}/o.jsonl", "--split", "dev"],
        ["--split", "'dev'"],
    ),
    ("export-out-folder", ["export", "{d}/samples.jsonl", "--out", "{d}/folder"], ["--out", "is a folder"]),
    (
        "export-broken-json",
        ["export", "{d}/samples_broken_line2.jsonl", "--out", "{d}/o.jsonl"],
        ["samples_broken_line2.jsonl:2", "not valid JSON"],
    ),
    (
        "export-unknown-key",
        ["export", "{d}/sample_unknown_key.jsonl", "--out", "{d}/o.jsonl"],
        ["sample_unknown_key.jsonl:1", "unknown field 'colour'"],
    ),
    (
        "export-bad-split-value",
        ["export", "{d}/sample_bad_split.jsonl", "--out", "{d}/o.jsonl"],
        ["sample_bad_split.jsonl:1", "field 'split'"],
    ),
    (
        "export-wrong-type",
        ["export", "{d}/sample_wrong_type.jsonl", "--out", "{d}/o.jsonl"],
        ["sample_wrong_type.jsonl:1", "field 'query'"],
    ),
    (
        "export-task-not-sample",
        ["export", "{d}/tasks.jsonl", "--out", "{d}/o.jsonl"],
        ["tasks.jsonl:1", "field 'action'"],
    ),
    (
        "export-ids",
        ["export", "{d}/samples.jsonl", "--out", "{d}/o.jsonl", "--tool-call-ids", "x"],
        ["--tool-call-ids 'x'"],
    ),
    # -------------------------------------------------------------- tasks make
    ("make-neither", ["tasks", "make", "--out", "{d}/o.jsonl"], ["exactly one of --tool or --category"]),
    (
        "make-both",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "weather", "--category", "parallel"],
        ["exactly one"],
    ),
    (
        "make-tool-unknown",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "nosuch"],
        ["unknown tool 'nosuch'"],
    ),
    (
        "make-two-tools",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "weather,home_search"],
        ["--tool", "give one tool"],
    ),
    (
        "make-category-unknown",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--category", "nosuch"],
        ["--category", "'nosuch'", "parallel"],
    ),
    ("make-n-zero", ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "weather", "--n", "0"], ["--n"]),
    (
        "make-n-million",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "weather", "--n", "1000000"],
        ["--n", "100000"],
    ),
    (
        "make-out-folder",
        ["tasks", "make", "--out", "{d}/folder", "--tool", "weather"],
        ["--out", "is a folder"],
    ),
    (
        "make-seed-negative",
        ["tasks", "make", "--out", "{d}/o.jsonl", "--tool", "weather", "--seed", "-3"],
        ["--seed"],
    ),
    # ------------------------------------------------------------ tasks verify
    ("verify-missing", ["tasks", "verify", "--tasks", "{d}/nosuch.jsonl"], ["--tasks", "no such file"]),
    ("verify-folder", ["tasks", "verify", "--tasks", "{d}/folder"], ["--tasks", "is a folder"]),
    (
        "verify-broken-json",
        ["tasks", "verify", "--tasks", "{d}/tasks_broken_line2.jsonl"],
        [":2", "not valid JSON"],
    ),
    (
        "verify-unknown-key",
        ["tasks", "verify", "--tasks", "{d}/task_unknown_key.jsonl"],
        ["task_unknown_key.jsonl:1", "unknown field 'lables'"],
    ),
    ("verify-empty", ["tasks", "verify", "--tasks", "{d}/empty.jsonl"], ["empty.jsonl", "no tasks"]),
    ("verify-blank", ["tasks", "verify", "--tasks", "{d}/blank.jsonl"], ["blank.jsonl", "no tasks"]),
    (
        "verify-wrong-type",
        ["tasks", "verify", "--tasks", "{d}/task_wrong_type.jsonl"],
        ["task_wrong_type.jsonl:1", "field 'labels'"],
    ),
    (
        "verify-no-labels",
        ["tasks", "verify", "--tasks", "{d}/task_no_labels.jsonl"],
        [":1", "field 'labels'"],
    ),
    (
        "import-bfcl-unknown-category",
        ["tasks", "import-bfcl", "--data", "{d}", "--categories", "simple_java", "--out", "{d}/bfcl.jsonl"],
        ["--categories", "simple_java"],
    ),
    (
        "verify-bad-category",
        ["tasks", "verify", "--tasks", "{d}/task_bad_category.jsonl"],
        [":1", "field 'category'"],
    ),
    (
        "verify-unknown-tool",
        ["tasks", "verify", "--tasks", "{d}/task_unknown_tool.jsonl"],
        [":1", "unknown tool 'nosuch'"],
    ),
    (
        "verify-duplicate-id",
        ["tasks", "verify", "--tasks", "{d}/task_duplicate.jsonl"],
        [":2", "already used on line 1"],
    ),
    ("verify-list-row", ["tasks", "verify", "--tasks", "{d}/task_list_row.jsonl"], [":1", "not a task"]),
    # ------------------------------------------------------------ tasks replay
    (
        "replay-tasks-missing",
        ["tasks", "replay", "--tasks", "{d}/nosuch.jsonl", "--out", "{d}/o.jsonl"],
        ["--tasks", "no such file"],
    ),
    (
        "replay-format",
        ["tasks", "replay", "--tasks", "{d}/tasks.jsonl", "--out", "{d}/o.jsonl", "--call-format", "yaml"],
        ["--call-format 'yaml'"],
    ),
    (
        "replay-out-folder",
        ["tasks", "replay", "--tasks", "{d}/tasks.jsonl", "--out", "{d}/folder"],
        ["--out", "is a folder"],
    ),
    (
        "replay-tasks-folder",
        ["tasks", "replay", "--tasks", "{d}/folder", "--out", "{d}/o.jsonl"],
        ["--tasks", "is a folder"],
    ),
    # ------------------------------------------------------------------- score
    (
        "score-predictions-missing",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/nosuch.jsonl"],
        ["--predictions", "no such file"],
    ),
    (
        "score-predictions-empty",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/empty.jsonl"],
        ["--predictions", "no predictions"],
    ),
    (
        "score-predictions-blank",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/blank.jsonl"],
        ["no predictions"],
    ),
    (
        "score-predictions-folder",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/folder"],
        ["--predictions", "is a folder"],
    ),
    (
        "score-tasks-folder",
        ["score", "--tasks", "{d}/folder", "--predictions", "{d}/predictions.jsonl"],
        ["--tasks", "is a folder"],
    ),
    (
        "score-tasks-missing",
        ["score", "--tasks", "{d}/nosuch.jsonl", "--predictions", "{d}/predictions.jsonl"],
        ["--tasks", "no such file"],
    ),
    (
        "score-broken-line",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/broken_line2.jsonl"],
        ["broken_line2.jsonl:2", "not valid JSON"],
    ),
    (
        "score-unknown-key",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_unknown_key.jsonl"],
        ["prediction_unknown_key.jsonl:1", "unknown field 'txt'"],
    ),
    (
        "score-wrong-type",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_wrong_type.jsonl"],
        [":1", "field 'text'"],
    ),
    (
        "score-no-id",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_no_id.jsonl"],
        [":1", "field 'id'"],
    ),
    (
        "score-neither",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_neither.jsonl"],
        ["neither 'text' nor 'calls'"],
    ),
    (
        "score-other-task",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_other_task.jsonl"],
        ["'not-a-task'", "--ignore-extra"],
    ),
    (
        "score-duplicate",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_duplicate.jsonl"],
        ["repeats task id"],
    ),
    (
        "score-string-row",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_string_row.jsonl"],
        [":1", "Prediction"],
    ),
    (
        "score-bad-calls",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/prediction_bad_calls.jsonl"],
        [":1", "field 'calls.0.arguments'"],
    ),
    (
        "score-format",
        [
            "score",
            "--tasks",
            "{d}/tasks.jsonl",
            "--predictions",
            "{d}/predictions.jsonl",
            "--call-format",
            "xml",
        ],
        ["--call-format 'xml'"],
    ),
    (  # the old spelling of --call-format, a hidden alias
        "score-format-old-spelling",
        ["score", "--tasks", "{d}/tasks.jsonl", "--predictions", "{d}/predictions.jsonl", "--format", "xml"],
        ["--call-format 'xml'"],
    ),
    (
        "score-out-file",
        [
            "score",
            "--tasks",
            "{d}/tasks.jsonl",
            "--predictions",
            "{d}/predictions.jsonl",
            "--out",
            "{d}/notes.txt",
        ],
        ["--out", "is a file"],
    ),
    (
        "score-tasks-unknown-key",
        ["score", "--tasks", "{d}/task_unknown_key.jsonl", "--predictions", "{d}/predictions.jsonl"],
        [":1", "unknown field 'lables'"],
    ),
    # -------------------------------------------------------------------- eval
    (
        "eval-timeout-negative",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--timeout", "-1"],
        ["--timeout"],
    ),
    (
        "eval-timeout-zero",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--timeout", "0"],
        ["--timeout"],
    ),
    (
        "eval-mode",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--mode", "batch"],
        ["--mode", "'batch'"],
    ),
    (
        "eval-retriever",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--retriever", "tfidf"],
        ["--retriever", "'tfidf'"],
    ),
    (
        "eval-k-negative",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--k-demos", "-1"],
        ["--k-demos"],
    ),
    (
        "eval-k-too-many",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--k-demos", "1000"],
        ["--k-demos"],
    ),
    (
        "eval-tools-empty-name",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--tools", "weather,,parallel"],
        ["--tools", "empty"],
    ),
    (
        "eval-tools-unknown",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--tools", "nosuch"],
        ["unknown tool 'nosuch'", "parallel"],
    ),
    (
        "eval-model-prefix",
        ["eval", "--model", "gpt4", "--out", "{d}/e"],
        ["unknown model spec 'gpt4'", "hf:"],
    ),
    (
        "eval-replay-missing",
        ["eval", "--model", "replay:{d}/nosuch.jsonl", "--out", "{d}/e"],
        ["--model replay:", "no such file"],
    ),
    (
        "eval-hf-missing",
        ["eval", "--model", "hf:{d}/nosuch/model", "--out", "{d}/e"],
        ["--model hf:", "not a model folder or hub id"],
    ),
    (
        "eval-hf-not-a-model",
        ["eval", "--model", "hf:{d}/model_without_config", "--out", "{d}/e"],
        ["no config.json"],
    ),
    (
        "eval-system-prompt-missing",
        [
            "eval",
            "--model",
            "replay:{d}/predictions.jsonl",
            "--out",
            "{d}/e",
            "--system-prompt",
            "{d}/nosuch.txt",
        ],
        ["--system-prompt"],
    ),
    (
        "eval-system-prompt-folder",
        [
            "eval",
            "--model",
            "replay:{d}/predictions.jsonl",
            "--out",
            "{d}/e",
            "--system-prompt",
            "{d}/folder",
        ],
        ["--system-prompt", "is a folder"],
    ),
    (
        "eval-system-prompt-latin1",
        [
            "eval",
            "--model",
            "replay:{d}/predictions.jsonl",
            "--out",
            "{d}/e",
            "--system-prompt",
            "{d}/latin1.txt",
        ],
        ["--system-prompt", "not UTF-8"],
    ),
    (
        "eval-call-format",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--call-format", "xml"],
        ["--call-format 'xml'"],
    ),
    (
        "eval-dtype",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--dtype", "int3"],
        ["--dtype 'int3'"],
    ),
    (
        "eval-device",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--device", "tpu"],
        ["--device 'tpu'"],
    ),
    (
        "eval-device-index",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--device", "cuda:x"],
        ["--device 'cuda:x'"],
    ),
    (
        "eval-tasks-missing",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--tasks", "{d}/nosuch.jsonl"],
        ["--tasks", "no such file"],
    ),
    (
        "eval-out-file",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/notes.txt"],
        ["--out", "is a file"],
    ),
    (
        "eval-concurrency-zero",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--concurrency", "0"],
        ["--concurrency"],
    ),
    (
        "eval-limit-zero",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--limit", "0"],
        ["--limit"],
    ),
    (
        "eval-seed-negative",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--seed", "-1"],
        ["--seed"],
    ),
    (
        "eval-max-new-tokens-zero",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--max-new-tokens", "0"],
        ["--max-new-tokens"],
    ),
    (
        "eval-max-tokens-old-spelling",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--max-tokens", "0"],
        ["--max-tokens"],
    ),
    (
        "eval-temperature-negative",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--temperature", "-0.5"],
        ["--temperature"],
    ),
    (
        "eval-demos-missing",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--demos", "{d}/nosuch.jsonl"],
        ["--demos", "no such file"],
    ),
    (
        "eval-ablate-retrievers",
        [
            "eval",
            "--model",
            "replay:{d}/predictions.jsonl",
            "--out",
            "{d}/e",
            "--ablate",
            "--ablate-retrievers",
            "bm25,,dense",
        ],
        ["--ablate-retrievers", "empty"],
    ),
    (
        "eval-ablate-unknown",
        [
            "eval",
            "--model",
            "replay:{d}/predictions.jsonl",
            "--out",
            "{d}/e",
            "--ablate",
            "--ablate-retrievers",
            "bm25,tfidf",
        ],
        ["--ablate-retrievers", "'tfidf'"],
    ),
    (
        "eval-cache-dir-file",
        ["eval", "--model", "replay:{d}/predictions.jsonl", "--out", "{d}/e", "--cache-dir", "{d}/notes.txt"],
        ["--cache-dir", "is a file"],
    ),
    # ------------------------------------------------------------------- serve
    ("serve-port-huge", ["serve", "--model", "{d}/nosuch", "--port", "99999"], ["--port"]),
    ("serve-port-zero", ["serve", "--model", "{d}/nosuch", "--port", "0"], ["--port"]),
    (
        "serve-model-missing",
        ["serve", "--model", "{d}/nosuch/model"],
        ["--model", "not a model folder or hub id"],
    ),
    ("serve-model-not-hf", ["serve", "--model", "{d}/model_without_config"], ["--model", "no config.json"]),
    (
        "serve-max-tokens",
        ["serve", "--model", "{d}/nosuch", "--max-tokens-limit", "0"],
        ["--max-tokens-limit"],
    ),
    (
        "serve-request-bytes",
        ["serve", "--model", "{d}/nosuch", "--max-request-bytes", "-1"],
        ["--max-request-bytes"],
    ),
    ("serve-timeout", ["serve", "--model", "{d}/nosuch", "--request-timeout", "0"], ["--request-timeout"]),
    ("serve-dtype", ["serve", "--model", "{d}/model_without_config", "--dtype", "int3"], ["no config.json"]),
    # ------------------------------------------------------------- retrieval
    (
        "retrieve-index-missing",
        ["retrieve", "weather in Paris", "--index", "{d}/nosuch"],
        ["--index", "no such folder"],
    ),
    (
        "retrieve-index-file",
        ["retrieve", "weather in Paris", "--index", "{d}/notes.txt"],
        ["--index", "is a file"],
    ),
    (
        "retrieve-not-an-index",
        ["retrieve", "weather in Paris", "--index", "{d}/index_without_meta"],
        ["--index", "not an index"],
    ),
    ("retrieve-k-zero", ["retrieve", "weather", "--index", "{d}/folder", "--k", "0"], ["--k"]),
    ("retrieve-empty-query", ["retrieve", "  ", "--index", "{d}/folder"], ["QUERY", "empty"]),
    ("index-build-neither", ["index", "build", "--out", "{d}/i"], ["exactly one of --demos"]),
    (
        "index-build-demos-missing",
        ["index", "build", "--out", "{d}/i", "--demos", "{d}/nosuch.jsonl"],
        ["--demos", "no such file"],
    ),
    (
        "index-build-retriever",
        ["index", "build", "--out", "{d}/i", "--demos", "{d}/samples.jsonl", "--retriever", "tfidf"],
        ["--retriever", "'tfidf'"],
    ),
    (
        "index-build-api-docs",
        ["index", "build", "--out", "{d}/i", "--api-docs", "weather,nosuch"],
        ["--api-docs", "'nosuch'"],
    ),
    (
        "index-build-out-file",
        ["index", "build", "--out", "{d}/notes.txt", "--api-docs", "weather"],
        ["--out", "is a file"],
    ),
    (
        "index-eval-demos-missing",
        ["index", "evaluate", "--demos", "{d}/nosuch.jsonl"],
        ["--demos", "no such file"],
    ),
    (
        "index-eval-retriever",
        ["index", "evaluate", "--demos", "{d}/samples.jsonl", "--retriever", "tfidf"],
        ["--retriever", "'tfidf'"],
    ),
    ("index-eval-k-zero", ["index", "evaluate", "--demos", "{d}/samples.jsonl", "--k", "0"], ["--k"]),
    (
        "index-eval-tasks-missing",
        ["index", "evaluate", "--demos", "{d}/samples.jsonl", "--tasks", "{d}/nosuch.jsonl"],
        ["--tasks", "no such file"],
    ),
    # -------------------------------------------------------------------- spec
    (
        "spec-target-missing",
        ["spec", "--target", "{d}/nosuch/t", "--draft", "{d}/nosuch/d"],
        ["--target", "not a model folder or hub id"],
    ),
    (
        "spec-draft-not-hf",
        ["spec", "--target", "{d}/model_without_config", "--draft", "{d}/folder"],
        ["--target", "no config.json"],
    ),
    (
        "spec-gamma-zero",
        ["spec", "--target", "{d}/nosuch/t", "--draft", "{d}/nosuch/d", "--gamma", "0"],
        ["not a model folder or hub id"],
    ),
    ("spec-temperature", ["spec", "--target", "t", "--draft", "d", "--temperature", "-1"], ["--temperature"]),
    ("spec-k-demos", ["spec", "--target", "t", "--draft", "d", "--k-demos", "99"], ["--k-demos"]),
    ("spec-seed", ["spec", "--target", "t", "--draft", "d", "--seed", "-2"], ["--seed"]),
    # ----------------------------------------------------------------- report
    ("report-missing", ["report", "{d}/nosuch"], ["RUN_DIR", "no such folder"]),
    ("report-file", ["report", "{d}/notes.txt"], ["RUN_DIR", "is a file"]),
    # ------------------------------------------------------------------- demo
    ("demo-preset", ["demo", "--out", "{d}/demo", "--preset", "huge"], ["--preset", "'huge'"]),
    ("demo-out-file", ["demo", "--out", "{d}/notes.txt"], ["--out", "is a file"]),
    # ------------------------------------------------------------------ train
    (
        "train-tokenizer-vocab",
        ["train", "tokenizer", "--out", "{d}/tok", "--vocab-size", "10"],
        ["--vocab-size"],
    ),
    (
        "train-tokenizer-tools",
        ["train", "tokenizer", "--out", "{d}/tok", "--tools", "weather,,cat_api"],
        ["--tools", "empty"],
    ),
    ("train-tokenizer-out-file", ["train", "tokenizer", "--out", "{d}/notes.txt"], ["--out", "is a file"]),
    ("train-draft-not-generic", ["train", "draft", "--out", "{d}/m"], ["--generic"]),
    (
        "train-draft-preset",
        ["train", "draft", "--generic", "--out", "{d}/m", "--preset", "huge"],
        ["--preset", "'huge'"],
    ),
    (
        "train-draft-tokenizer",
        ["train", "draft", "--generic", "--out", "{d}/m", "--tokenizer", "{d}/nosuch"],
        ["--tokenizer", "not a tokenizer folder or hub id"],
    ),
    ("train-draft-steps", ["train", "draft", "--generic", "--out", "{d}/m", "--steps", "0"], ["--steps"]),
    (
        "train-target-preset",
        ["train", "target", "--out", "{d}/m", "--preset", "huge"],
        ["--preset", "'huge'"],
    ),
    (
        "train-target-tools",
        ["train", "target", "--out", "{d}/m", "--tools", "nosuch"],
        ["--tools", "'nosuch'"],
    ),
    (
        "train-target-copy-prior-preset",
        ["train", "target", "--out", "{d}/m", "--preset", "draft", "--copy-prior"],
        ["--copy-prior with --preset draft", "needs >= 3 attention heads"],
    ),
    (
        "train-target-hold-without-prior",
        ["train", "target", "--out", "{d}/m", "--hold-steps", "40"],
        ["--hold-steps and --release-steps", "add --copy-prior"],
    ),
    (
        "train-target-position-skip",
        ["train", "target", "--out", "{d}/m", "--position-skip", "1.5"],
        ["--position-skip", "less than or equal to 1"],
    ),
    (
        "train-target-tokenizer-file",
        ["train", "target", "--out", "{d}/m", "--tokenizer", "{d}/notes.txt"],
        ["--tokenizer", "is a file"],
    ),
    (
        "train-head-target",
        ["train", "acceptance-head", "--target", "{d}/nosuch/t", "--draft", "{d}/nosuch/d"],
        ["--target", "not a model folder or hub id"],
    ),
    (
        "train-head-width",
        ["train", "acceptance-head", "--target", "t", "--draft", "d", "--width", "-1"],
        ["--width"],
    ),
    # ---------------------------------------------------------------- distill
    ("distill-no-target", ["distill", "--draft", "{d}/nosuch"], ["--target and --draft"]),
    (
        "distill-plan-missing",
        ["distill", "--plan", "--target", "{d}/nosuch/target", "--draft", "{d}/nosuch/draft"],
        ["--target", "nosuch/target", "not a model folder or hub id"],
    ),
    (
        "distill-plan-draft-missing",
        ["distill", "--plan", "--target", "{d}/model_without_config", "--draft", "{d}/nosuch/draft"],
        ["--target", "no config.json"],
    ),
    ("distill-scenario", ["distill", "--target", "t", "--draft", "d", "--scenario", "IV"], ["--scenario"]),
    ("distill-beta", ["distill", "--target", "t", "--draft", "d", "--beta", "2"], ["--beta"]),
    (
        "distill-prompts-scenario",
        ["distill", "--target", "t", "--draft", "d", "--prompts", "{d}/tasks.jsonl"],
        ["--scenario I"],
    ),
    (
        "distill-tools",
        ["distill", "--plan", "--target", "{d}/nosuch/t", "--draft", "{d}/nosuch/d", "--tools", "x"],
        ["--target"],
    ),
    (
        "distill-alpha-draft",
        ["distill", "eval-alpha", "--target", "{d}/nosuch/t", "--draft", "a={d}/nosuch/d"],
        ["--target", "not a model folder or hub id"],
    ),
    (
        "distill-alpha-eval-per-tool",
        ["distill", "eval-alpha", "--target", "t", "--draft", "d", "--eval-per-tool", "0"],
        ["--eval-per-tool"],
    ),
    (
        "distill-alpha-per-tool-old-spelling",
        ["distill", "eval-alpha", "--target", "t", "--draft", "d", "--per-tool", "0"],
        ["--per-tool"],
    ),
    (
        "distill-grid-models",
        ["distill", "grid", "--target", "{d}/nosuch/t", "--draft", "{d}/nosuch/d"],
        ["--target", "not a model folder or hub id"],
    ),
    ("distill-grid-steps", ["distill", "grid", "--steps", "1"], ["--steps"]),
    ("distill-seed", ["distill", "--target", "t", "--draft", "d", "--seed", "-1"], ["--seed"]),
    # -------------------------------------------------------------- unknowns
    ("unknown-command", ["frobnicate"], ["frobnicate"]),
    ("unknown-tasks-command", ["tasks", "frobnicate"], ["frobnicate"]),
]

_BOX = re.compile(r"[│╭╮╰╯─]+")


def _words(text: str) -> str:
    """Text without Typer's box drawing, whitespace collapsed: a fragment split across the box's
    lines still matches."""
    return " ".join(_BOX.sub(" ", text).split())


def check_refused(result, fragments: list[str], case: str) -> None:
    """Exit 2, no traceback, and either one line of ours or Typer's usage box; the fragments
    (option, file:line, field) in the message. In-process, a UserError comes back as
    `result.exception`; the installed command prints it as `error: MESSAGE` and exits 2
    (`toolbench.cli.main.main`, checked by the subprocess cases below)."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, (case, output)
    if isinstance(result.exception, UserError):
        message = f"error: {result.exception}"
    else:
        assert result.exit_code == 2, (case, result.exit_code, output, result.exception)
        assert isinstance(result.exception, SystemExit), (case, result.exception)
        message = result.stderr.strip()
    if message.startswith("Usage:"):  # Typer refused the option itself: its box, naming it
        assert "Error" in message, (case, message)
    else:
        assert len(message.splitlines()) == 1 and message.startswith("error: "), (case, message)
    for fragment in fragments:
        assert _words(fragment) in _words(message), (case, fragment, message)


def test_the_table_is_large_and_covers_every_command():
    """~100 cases, every subcommand and sub-app in them, and no case id twice."""
    ids = [case for case, _, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 100, len(ids)
    import typer

    covered = {args[0] for _, args, _ in CASES} | {" ".join(args[:2]) for _, args, _ in CASES}
    root = typer.main.get_command(app)
    commands = set()
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        commands.add(name)
        commands.update(f"{name} {sub}" for sub in getattr(command, "commands", {}))
    missing = sorted(name for name in commands if name not in covered and name != "leaderboard")
    assert missing == [], missing


@pytest.mark.parametrize(("case", "args", "fragments"), CASES, ids=[case for case, _, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(d, case, args, fragments):
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TOOLBENCH_CACHE": str(d / "cache")})
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    started = time.perf_counter()
    result = runner.invoke(app, [arg.format(d=d) for arg in args])
    check_refused(result, [fragment.format(d=d) for fragment in fragments], case)
    # refused before any work: fast, and nothing written (no output, no partial, no temp file)
    assert time.perf_counter() - started < 10, case
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before, case


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["generate", "--tools", "", "--out", "OUT"], "--tools"),
        (["serve", "--model", "MISSING", "--port", "99999"], "--port"),
        (["distill", "--plan", "--target", "MISSING", "--draft", "MISSING"], "not a model folder or hub id"),
        (["score", "--tasks", str(HOME_TASKS), "--predictions", "EMPTY"], "no predictions"),
    ],
)
def test_the_installed_command_refuses_the_same_way(tmp_path, args, fragment):
    """The real entry point (a subprocess): exit 2, no traceback, the same message."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    names = {"OUT": str(tmp_path / "o.jsonl"), "MISSING": str(tmp_path / "nosuch" / "m"), "EMPTY": str(empty)}
    result = run_cli(*[names.get(arg, arg) for arg in args])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert fragment in _words(result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl"]


def test_a_config_constraint_names_the_option():
    """A value a configuration's own constraint refuses (a library caller, or an option Typer does
    not bound) is one line naming the option, also for a config with a field called `model`."""
    from toolbench.cli.options import config_from_options
    from toolbench.pipelines.evaluate import EvalConfig

    config = config_from_options(EvalConfig, model="replay:x.jsonl", timeout=5.0)
    assert config.model == "replay:x.jsonl" and config.timeout == 5.0
    for field, value, option in [
        ("timeout", -1.0, "--timeout"),
        ("k_demos", 99, "--k-demos"),
        ("seed", -1, "--seed"),
    ]:
        with pytest.raises(UserError) as refused:
            config_from_options(EvalConfig, model="replay:x.jsonl", **{field: value})
        assert str(refused.value).startswith(f"{option} {value!r}: "), str(refused.value)
