"""Shared fixtures (helpers live in synthetic_cases.py, importable from every test folder)."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A tiny random-weight network (64-pixel input, seeded) in our weights format.

    Every test that segments with it shares its exports in the session's model cache (the same seed gives the same
    tensors, hence the same cache keys, in every pytest-xdist worker).
    """
    import torch

    from infarctsam.model.build import ARCHITECTURE, build_model
    from infarctsam.model.config import ModelConfig
    from infarctsam.model.weights_format import ModelCard, save_weights

    config = ModelConfig(image_size=64)
    torch.manual_seed(0)
    model, _ = build_model(config, None)
    card = ModelCard(name="tiny-session", architecture=ARCHITECTURE, config=config.model_dump(), image_size=64,
                     licence="Apache-2.0")
    return save_weights(tmp_path_factory.mktemp("tiny") / "tiny.safetensors", model.state_dict(), card)
