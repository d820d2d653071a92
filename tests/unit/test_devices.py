"""Where a model runs and in what precision (toolbench/foundation/devices.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from toolbench.foundation import devices
from toolbench.foundation.errors import UserError


def test_inference_auto_is_float32_on_the_cpu_and_names_are_checked():
    assert devices.resolve_dtype("auto", "cpu") is torch.float32
    assert devices.resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(UserError, match="--dtype 'half'"):
        devices.resolve_dtype("half", "cpu")


def test_training_autocasts_to_bfloat16_only_where_the_hardware_computes_it(monkeypatch):
    """An AVX2-only CPU emulates bf16 (one target SFT step: 118 s against 5 s in float32)."""
    monkeypatch.setattr(devices, "_cpu_computes_bf16", lambda torch: False)
    assert devices.training_precision("cpu") is torch.float32
    monkeypatch.setattr(devices, "_cpu_computes_bf16", lambda torch: True)
    assert devices.training_precision("cpu") is torch.bfloat16
    assert devices.training_precision("mps") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.training_precision("cuda") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert devices.training_precision("cuda") is torch.bfloat16


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
@pytest.mark.parametrize(("setting", "expected"), [("1", "True True"), ("0", "False False")])
def test_a_cpu_model_keeps_freed_memory_unless_told_not_to(setting, expected):
    """Once per process, on resolving the CPU (benchmarks/cpu_decode.py measures what it buys)."""
    code = (
        "from toolbench.foundation import devices; devices.resolve_device('cpu'); "
        "print(devices._KEEPING_FREED_MEMORY, devices.keep_freed_memory())"
    )
    env = {**os.environ, "TOOLBENCH_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()
