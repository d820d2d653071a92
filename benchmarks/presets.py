"""What each model preset costs on this machine: training tokens/s (forward + backward + AdamW step
on SFT-shaped batches) and greedy decode tokens/s (batch 1, KV cache), with the ratio to the
`target` preset measured in the same run. Paired with the copy probe (`distill/training/copy_probe.py`,
in `train_log.jsonl`: the step at which a preset starts copying), it says which size reaches
copying soonest in wall time, and whether the target stays costly enough per token for a draft to
pay off.

    python benchmarks/presets.py [--presets target,target+copy,draft,...] [--threads 2]

A name with `+copy` is that preset with the copy head (toolbench/core/pointer_llama.py), whose
training passes only the labelled positions through its output layers (`--labelled`, the answers'
share of an SFT batch); a plain Llama's lm_head sees every position.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe_machine  # noqa: E402

VOCAB = 4098  # the product tokenizer's size


class _Vocab:
    """Just what `new_model` reads from a tokenizer."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __len__(self) -> int:
        return VOCAB


def measure(
    preset: str, batch: int, length: int, steps: int, decode_tokens: int, labelled: float
) -> dict[str, float]:
    import torch

    from toolbench.distill.training.models import new_model, parameter_count

    name, _, variant = preset.partition("+")
    model = new_model(name, _Vocab(), copy_head=variant == "copy")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(3, VOCAB, (batch, length))
    # SFT labels the answers alone: here the last `labelled` share of every 100 positions
    labels = ids.masked_fill(torch.arange(length) % 100 < round(100 * (1 - labelled)), -100)
    for _ in range(2):  # warm-up: oneDNN builds its kernels for the shape
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    started = time.perf_counter()
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    train = batch * length * steps / (time.perf_counter() - started)
    model.eval()
    prompt = torch.randint(3, VOCAB, (1, 200))
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=8, do_sample=False, min_new_tokens=8)
        started = time.perf_counter()
        model.generate(prompt, max_new_tokens=decode_tokens, do_sample=False, min_new_tokens=decode_tokens)
        decode = decode_tokens / (time.perf_counter() - started)
    return {"parameters": parameter_count(model), "train": train, "decode": decode}


def main() -> None:
    from toolbench.distill.training.models import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join([*(p for p in PRESETS if p != "tiny"), "target+copy"]))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=320, help="Tokens per sequence (an SFT conversation).")
    parser.add_argument(
        "--labelled",
        type=float,
        default=0.42,
        help="Share of positions with a label (the answers: 42% of the target's SFT tokens).",
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {describe_machine()}; torch threads {torch.get_num_threads()}")
    print(
        f"train: batch {args.batch} x {args.length} tokens ({args.labelled:.0%} labelled), {args.steps} steps;"
        f" decode: {args.decode_tokens} tokens"
    )
    rows = {
        name: measure(name, args.batch, args.length, args.steps, args.decode_tokens, args.labelled)
        for name in args.presets.split(",")
    }
    base = rows.get("target") or next(iter(rows.values()))
    print(
        f"{'preset':<12}{'params':>10}{'train tok/s':>13}{'x target':>10}{'decode tok/s':>14}{'x target':>10}"
    )
    for name, row in rows.items():
        print(
            f"{name:<12}{row['parameters'] / 1e6:>9.2f}M{row['train']:>13,.0f}{row['train'] / base['train']:>10.2f}"
            f"{row['decode']:>14,.0f}{row['decode'] / base['decode']:>10.2f}"
        )


if __name__ == "__main__":
    main()
