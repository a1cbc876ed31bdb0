"""Shared fixtures (helpers live in synthetic_cases.py, importable from every test folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthetic_cases import SHARED, head_phantom, oblique_affine, save_nifti


@pytest.fixture
def affine():
    return oblique_affine()


@pytest.fixture
def phantom_files(tmp_path, affine):
    """A skull-stripped phantom case on an oblique, flipped, anisotropic grid: (dwi, adc, mask) paths."""
    dwi, adc, _, les = head_phantom(spacing=tuple(np.linalg.norm(affine[:3, :3], axis=0)), scalp=False)
    return (
        save_nifti(tmp_path / "case01_dwi.nii.gz", dwi, affine),
        save_nifti(tmp_path / "case01_adc.nii.gz", adc, affine),
        save_nifti(tmp_path / "case01_msk.nii.gz", les.astype(np.uint8), affine),
    )


@pytest.fixture
def shared_dir():
    if not SHARED.is_dir():
        pytest.skip("../shared (real data for local checks) is not present on this machine")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache_in_tmp(tmp_path_factory, request):
    """Exported models go to a temporary folder, not the user's ~/.cache: one folder for the whole run, shared by
    pytest-xdist's workers (the cache's entries are verified and written atomically, so concurrent writers are safe),
    so that each model is exported once."""
    from infarctsam.runtime import export_cache

    root = tmp_path_factory.getbasetemp()
    in_worker = hasattr(request.config, "workerinput")  # a pytest-xdist worker: its basetemp is under the run's
    folder = (root.parent if in_worker else root) / "model-cache"
    folder.mkdir(exist_ok=True)
    previous = export_cache.DEFAULT_CACHE
    export_cache.DEFAULT_CACHE = folder
    yield
    export_cache.DEFAULT_CACHE = previous


@dataclass(frozen=True)
class TinyNet:
    """The session's tiny random-weight network (32-pixel input), with a memory path that matters (memory gate open,
    stem and object score given a voice), saved in our weights format.

    ``key``: its name in the model cache (the engine's and the runtimes' ``cache_key``), so that every test that
    compiles it reads the parts exported once for the run (``compiled_cache``).
    """

    model: Any
    config: Any
    weights: Path
    key: str


@pytest.fixture(scope="session")
def tiny_net(tmp_path_factory) -> TinyNet:
    """The session's tiny network (seeded: the same tensors, hence the same cache key, in every xdist worker)."""
    import torch

    from infarctsam.model.build import ARCHITECTURE, build_model
    from infarctsam.model.config import ModelConfig
    from infarctsam.model.weights_format import ModelCard, save_weights

    config = ModelConfig(image_size=32)
    torch.manual_seed(0)
    model, _ = build_model(config, None)
    with torch.no_grad():
        model.memory_gate.fill_(1.5)
        for p in model.stem.parameters():  # the stem's last layers start at zero: give them a voice
            p.add_(0.05 * torch.randn_like(p))
        head = model.sam.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        last.bias.fill_(0.2)
    model.eval()
    card = ModelCard(name="tiny-session", architecture=ARCHITECTURE, config=config.model_dump(), image_size=32,
                     licence="Apache-2.0")
    weights = save_weights(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", model.state_dict(), card)
    from infarctsam.model.weights_format import read_card

    return TinyNet(model, config, weights, read_card(weights).tensors_sha256[:24])


@pytest.fixture(scope="session")
def tiny_weights(tiny_net) -> Path:
    """The session's tiny network in our weights format (see :class:`TinyNet`)."""
    return tiny_net.weights


@pytest.fixture(scope="session")
def compiled_cache(tiny_net) -> Path:
    """The session's model cache, holding the tiny network's compiled parts (exported once for the run: tests that
    damage entries copy them first, with :func:`copy_entries`)."""
    from infarctsam.engines.sam import SamEngine
    from infarctsam.runtime import export_cache

    SamEngine.from_weights(tiny_net.weights, precision="fp32")  # exports and compiles into the session's cache
    return export_cache.DEFAULT_CACHE
