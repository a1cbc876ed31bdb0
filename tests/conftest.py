"""Shared fixtures (helpers live in synthetic_cases.py, importable from every test folder)."""

from __future__ import annotations

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
def _onnx_cache_in_tmp(tmp_path_factory):
    """Exported ONNX encoders go to a temporary folder, not the user's ~/.cache."""
    from infarctsam.runtime import export_cache

    previous = export_cache.DEFAULT_CACHE
    export_cache.DEFAULT_CACHE = tmp_path_factory.mktemp("onnx-cache")
    yield
    export_cache.DEFAULT_CACHE = previous
