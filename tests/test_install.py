"""The installed PyTorch is the CPU build, without CUDA packages (what ``make`` installs: tools/install_torch.py)."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch


def test_torch_is_the_cpu_build_without_nvidia_packages():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: this environment deliberately has a CUDA build of PyTorch")
    names = sorted({(d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()})
    nvidia = [n for n in names if n.startswith("nvidia-")]
    assert torch.version.cuda is None, f"torch {torch.__version__} is built for CUDA {torch.version.cuda}"
    assert nvidia == [], f"CUDA packages installed beside a CPU-only machine's torch: {nvidia}"
    assert "triton" not in names
