"""The copy probe: has the model learnt to copy argument values from the request into its calls?

A from-scratch target learns the calls' layout and the functions long before it copies values
(README "Train the embedded models"), and the loss hardly shows when copying starts: values are a
few tokens among many. The probe measures it directly. On frozen `indist` tasks (training
templates, new values; never trained on), each gold answer is laid out exactly as `toolbench eval
--mode chat` asks (tools, system prompt, k = 0) and scored teacher-forced: for every argument
value that appears verbatim in the request, is each of its tokens the model's top prediction?

- `copy_token_acc`: share of those value tokens predicted right;
- `copy_value_acc`: share of values whose every token is right;
- `copy_end_acc`: share of values after which the model closes the value (the token after it, a
  quote, comma or brace, is its top prediction) instead of copying on from the request;
- `copy_span_acc`: share of values right and closed, what a call needs. `copy_value_acc` alone
  missed the most common failure of the first copy-head targets, a value that runs on past its
  end (`"city": "Mexico City at the moment"`).

Teacher-forced, so it costs one forward pass per batch (~1 s for 40 tasks on 2 cores for the
`target` preset) and separates copying from everything that can go wrong before a value in free
generation. The trainer logs it every `probe_every` steps (`train_log.jsonl`, `loss.png`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from toolbench.foundation.records import Task


def copyable_values(task: Task) -> list[str]:
    """The gold program's argument values (strings, and numbers as JSON writes them) that appear
    verbatim in the request: the ones a model has to copy, not compute."""
    found: list[str] = []

    def leaves(value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        elif isinstance(value, list):
            for item in value:
                yield from leaves(item)
        elif not isinstance(value, bool) and value is not None:
            yield value

    for call in task.labels[0]:
        for value in leaves(call.arguments):
            text = value if isinstance(value, str) else json.dumps(value)
            if text and text in task.query and text not in found:
                found.append(text)
    return found


def _find(sequence: Sequence[int], part: Sequence[int], start: int) -> int:
    for i in range(start, len(sequence) - len(part) + 1):
        if list(sequence[i : i + len(part)]) == list(part):
            return i
    return -1


class CopyProbe:
    """Callable on a model: {"copy_token_acc", "copy_value_acc", "copy_end_acc",
    "copy_span_acc"} over the prepared tasks."""

    def __init__(self, tokenizer: Any, tasks: Sequence[Task], batch_size: int = 16):
        from toolbench.core.prompts import DEFAULT_SYSTEM_PROMPT
        from toolbench.distill.training.data import assistant_message, tokenize_conversation
        from toolbench.retriever.prompt import PromptBuilder

        builder = PromptBuilder(None, 0, DEFAULT_SYSTEM_PROMPT)
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.examples: list[dict[str, list[int]]] = []
        self.spans: list[list[tuple[int, int]]] = []  # per example: (start, end) of each value's tokens
        for task in tasks:
            messages, tools = builder.chat(task)
            example = tokenize_conversation(tokenizer, [*messages, assistant_message(task)], tools)
            ids, labels = example["input_ids"], example["labels"]
            answer_start = next(i for i, label in enumerate(labels) if label != -100)
            spans = []
            for value in copyable_values(task):
                part = tokenizer(value, add_special_tokens=False)["input_ids"]
                at = _find(ids, part, answer_start)
                if part and at > 0:
                    spans.append((at, at + len(part)))
            if spans:
                self.examples.append(example)
                self.spans.append(spans)
        self.values = sum(len(spans) for spans in self.spans)

    def __call__(self, model: Any) -> dict[str, float]:

        from toolbench.distill.training.trainer import collate

        device = next(model.parameters()).device
        right_tokens = tokens = right_values = right_ends = right_spans = 0
        for start in range(0, len(self.examples), self.batch_size):
            chunk = self.examples[start : start + self.batch_size]
            batch = collate(chunk, self.tokenizer.pad_token_id)
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits
            predicted = logits.argmax(-1).cpu()  # predicted[i] is the guess for token i + 1
            for row, spans in enumerate(self.spans[start : start + self.batch_size]):
                ids = batch["input_ids"][row]
                for begin, end in spans:
                    hits = (predicted[row, begin - 1 : end - 1] == ids[begin:end]).tolist()
                    right_tokens += sum(hits)
                    tokens += len(hits)
                    right_values += all(hits)
                    # a value is never the last token (its quote, comma or brace follows)
                    closed = bool(predicted[row, end - 1] == ids[end])
                    right_ends += closed
                    right_spans += closed and all(hits)
        return {
            "copy_token_acc": round(right_tokens / max(1, tokens), 4),
            "copy_value_acc": round(right_values / max(1, self.values), 4),
            "copy_end_acc": round(right_ends / max(1, self.values), 4),
            "copy_span_acc": round(right_spans / max(1, self.values), 4),
        }


def indist_probe(tokenizer: Any, tools: Sequence[str], per_tool: int = 8) -> CopyProbe | None:
    """The probe on the first `per_tool` frozen indist tasks of each tool that has them."""
    from toolbench.core.task_files import load_tasks, tool_task_files

    files = tool_task_files("indist")
    tasks = [n.task for tool in tools if tool in files for n in load_tasks(files[tool])[:per_tool]]
    probe = CopyProbe(tokenizer, tasks) if tasks else None
    return probe if probe is not None and probe.values else None
