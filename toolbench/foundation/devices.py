"""Where a model runs and in what precision: one answer for every command that loads a model.

`--device auto` picks CUDA, then Apple's MPS, then the CPU; `--dtype auto` picks bfloat16 on an
accelerator that supports it (float16 on one that does not) and float32 on the CPU, where bf16
matmuls are emulated and a 7B model in float32 is what people expect of a CPU run anyway.

A model that runs on the CPU also gets glibc's allocator told to keep freed memory
(`keep_freed_memory`): decoding allocates a new key/value tensor per layer per step, and by default
each one is a fresh memory mapping whose pages fault in, are zeroed and are handed back when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

from toolbench.foundation.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str = "auto") -> str:
    """A torch device string; an accelerator that was asked for but is absent is a UserError."""
    import torch

    kind = device.split(":", 1)[0]
    if kind not in DEVICE_CHOICES:
        raise UserError(f"--device {device!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available(torch):
            return "mps"
        device = kind = "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is visible here (try --device auto or cpu)")
    if kind == "mps" and not _mps_available(torch):
        raise UserError("--device mps: Apple's MPS backend is not available here (try --device auto or cpu)")
    if kind == "cpu":
        keep_freed_memory()
    return device


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for weights on `device` (already resolved)."""
    import torch

    if dtype not in DTYPE_CHOICES:
        raise UserError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    if dtype != "auto":
        return getattr(torch, dtype)
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "mps":
        return torch.float16
    return torch.float32


def training_precision(device_type: str) -> Any:
    """The autocast dtype of training's forward passes under `--dtype auto`: bfloat16 where the
    hardware computes it (a CUDA GPU that supports it; a CPU with AVX-512 or Arm's bf16, where it
    trained ~1.6x faster than float32), float32 elsewhere. On an AVX2-only CPU (AMD EPYC Milan)
    oneDNN emulates bf16: one SFT step of the target took 118 s against 5 s in float32."""
    import torch

    if device_type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device_type == "cpu" and _cpu_computes_bf16(torch):
        return torch.bfloat16
    return torch.float32


def _cpu_computes_bf16(torch: Any) -> bool:
    """oneDNN's own test for fast bf16 kernels (AVX-512 BW/VL/DQ, or Arm bf16)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def placement(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """(device, torch dtype), both resolved."""
    resolved = resolve_device(device)
    return resolved, resolve_dtype(dtype, resolved)


_KEEPING_FREED_MEMORY: bool | None = None
# glibc's mallopt options (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for the next allocation (once per process); True
    where it applied. CPU decoding grows each layer's key/value cache by concatenation, one new
    tensor per layer per step; above glibc's mmap threshold every one is a fresh mapping whose pages
    fault in and are zeroed, then go back to the system when freed; a heap that keeps its memory
    serves them without. That made a decoding step 2.2-2.8x faster with a training job on the
    other core and was a wash on an idle machine (`python benchmarks/cpu_decode.py`). The price is
    a resident size that stays at its peak instead of shrinking after it (`toolbench serve` trims
    the heap when idle). `TOOLBENCH_KEEP_FREED_MEMORY=0` leaves the allocator alone; other C
    libraries (musl, macOS) are left alone too."""
    global _KEEPING_FREED_MEMORY
    if _KEEPING_FREED_MEMORY is None:
        _KEEPING_FREED_MEMORY = _tune_glibc_malloc()
    return _KEEPING_FREED_MEMORY


def _tune_glibc_malloc() -> bool:
    if os.environ.get("TOOLBENCH_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc
        return False
    settings = (
        (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest: below it, allocations come from the heap
        (_M_TRIM_THRESHOLD, 1 << 30),  # hand memory back only past 1 GiB free at the heap's top
        (_M_TOP_PAD, 64 << 20),  # grow the heap in 64 MiB steps
    )
    return all(mallopt(option, value) == 1 for option, value in settings)
