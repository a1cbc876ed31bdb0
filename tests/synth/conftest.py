"""Fixtures of the synthetic-phantom tests: small, fast configurations (no ../shared needed)."""

from __future__ import annotations

import pytest

from infarctsam.synth import LesionLibrary, PhantomConfig


@pytest.fixture(scope="session")
def library() -> LesionLibrary:
    return LesionLibrary.bundled()


@pytest.fixture
def fast_config() -> PhantomConfig:
    """A coarse grid (about 4 mm) with every random effect on; one phantom takes a fraction of a second."""
    return PhantomConfig(shape=(56, 64, 32), inplane_mm=(3.5, 4.0), slice_mm=(4.0, 5.0), slice_gap_mm=(0.0, 0.5),
                         p_empty=0.0, lesion_volume_ml=(4.0, 150.0))


@pytest.fixture
def clean_config(fast_config: PhantomConfig) -> PhantomConfig:
    """One clearly restricted infarct, high SNR, no distractors: contrast checks are unambiguous on a coarse grid
    (partial volume with CSF lifts the ADC of cortical lesions with ratios near 0.85)."""
    return fast_config.with_(n_lesions=(1, 1), p_shower=0.0, p_artifact=0.0, p_old_infarct=0.0, p_pseudonormal=0.0,
                             snr=(60.0, 80.0), bias=(0.0, 0.0), texture=(0.0, 0.0), lesion_volume_ml=(8.0, 150.0),
                             adc_ratio=(0.45, 0.7))
