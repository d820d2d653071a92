"""Where a model runs and in what precision: one answer for every command that loads a model.

`--device auto` picks CUDA, then Apple's MPS, then the CPU; `--dtype auto` picks bfloat16 on an
accelerator that supports it (float16 on one that does not) and float32 on the CPU, where bf16
matmuls are emulated and a 7B model in float32 is what people expect of a CPU run anyway.
"""

from __future__ import annotations

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
        return "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is visible here (try --device auto or cpu)")
    if kind == "mps" and not _mps_available(torch):
        raise UserError("--device mps: Apple's MPS backend is not available here (try --device auto or cpu)")
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
