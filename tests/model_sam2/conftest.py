"""Shared fixtures of the SAM 2.1 model tests (small 256 px inputs, CPU, eval mode)."""

from __future__ import annotations

import json

import pytest
import torch
from model_sam2_support import IMAGE_SIZE, SPEC_PATH, randomize_, set_object_bias

from infarctsam.model.sam2 import Sam2Model, build_sam2, hiera_tiny


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """Run these small-tensor tests on one intra-op thread (much faster on shared CPU cores); restore after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def spec() -> dict[str, list[int]]:
    """Key -> shape contract of the official SAM 2.1 Hiera-Tiny state dict."""
    with SPEC_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def tiny() -> Sam2Model:
    """Randomised Hiera-Tiny at 256 px with the object forced present."""
    torch.manual_seed(0)
    model = build_sam2(hiera_tiny(IMAGE_SIZE))
    randomize_(model, seed=1)
    set_object_bias(model, 3.0)
    return model


@pytest.fixture(scope="module")
def frames(tiny: Sam2Model):
    """Features of three random 256 px frames, computed once per module."""
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    with torch.no_grad():
        return tiny.encode_frames(images)
