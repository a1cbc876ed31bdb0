"""Configuration of the phantom generator: every random range in one dataclass, with presets.

Ranges are ``(low, high)`` tuples sampled uniformly unless a field says otherwise. The default configuration is the
broad randomised one meant for training; :meth:`PhantomConfig.isles_like` and :meth:`PhantomConfig.clinical` pin the
acquisition to two common protocols.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from infarctsam.errors import ConfigError

ADC_UNITS = {"1e-6 mm2/s": 1.0, "1e-3 mm2/s": 1e-3, "mm2/s": 1e-6}
"""Stored ADC value per 1e-6 mm^2/s, for each supported unit."""

Range = tuple[float, float]


@dataclass
class PhantomConfig:
    """Random ranges of a synthetic DWI/ADC stroke case.

    Attributes
    ----------
    shape : tuple of int or None
        Fixed output grid (i, j, k); None derives it from ``fov_mm`` and ``coverage_mm``.
    inplane_mm, slice_mm, slice_gap_mm : Range
        In-plane pixel size, slice thickness and gap between slices (slice spacing = thickness + gap).
    fov_mm, coverage_mm : Range
        In-plane field of view and through-plane coverage when ``shape`` is None.
    fov_shift_mm : float
        Largest random shift of the field-of-view centre from the brain centre (crops the brain at the edges).
    max_oblique_deg : float
        Largest rotation of the slice grid (stored in the affine: oblique acquisitions).
    p_flip, p_swap_inplane : float
        Probability of reversing each voxel axis, and of storing the in-plane axes swapped (both in the affine).
    head_tilt_deg : float
        Largest rotation of the head inside the scanner (not in the affine: the head looks tilted).
    head_scale : Range
        Linear head size relative to MNI152 (which is larger than an average adult brain).
    warp_mm : Range
        Amplitude of a smooth random deformation of the anatomy.
    ventricle_expansion : Range
        Ventricular enlargement (0 none; 0.6 strongly enlarged, as in elderly patients; the template is young).
    atrophy : Range
        Sulcal widening: 0 none, 1.5 strong (tissue fractions below 1 are raised to the power 1 + 2 * atrophy).
    n_lesions : tuple of int
        Number of separate infarcts (inclusive range); lesions after the first are small (< ``satellite_max_ml``).
    p_shower : float
        Probability of an embolic shower instead: ``shower_size`` small lesions in one territory and hemisphere.
    shower_volume_ml : Range or None
        MNI-space volume range of a shower's lesions (default: up to ``satellite_max_ml``).
    p_empty : float
        Probability of a case without infarct.
    lesion_volume_ml : Range or None
        MNI-space volume range of the main lesion.
    territory : str or None
        Restrict the main lesion to a territory ('ACA', 'MCA', 'PCA', 'VB' or an ArterialAtlas abbreviation).
    lesion_weighting : str
        'natural' (SOOP volume distribution), 'uniform' or 'log_uniform'.
    p_mirror : float
        Probability of mirroring a lesion to the other hemisphere.
    dwi_ratio : Range
        Infarct DWI signal relative to the same normal tissue (sampled log-uniformly: faint lesions are common).
    adc_ratio : Range
        Infarct ADC relative to normal tissue.
    p_pseudonormal, pseudonormal_adc_ratio : float, Range
        Probability that a lesion's ADC has pseudo-normalised (older infarcts) and that lesion's ADC ratio range;
        its DWI ratio is drawn from ``pseudonormal_dwi_ratio`` (T2 shine-through keeps it bright).
    heterogeneity : Range
        Relative amplitude of the smooth texture inside an infarct.
    edge_mm : Range
        Width (Gaussian sigma) of the soft infarct border.
    dwi_gm_wm, dwi_csf_wm : Range
        Normal-tissue DWI contrasts: grey/white and CSF/white matter.
    adc_gm, adc_wm, adc_csf : Range
        Normal ADC in 1e-6 mm^2/s.
    p_artifact : float
        Probability of susceptibility pile-up artefacts (bright, normal ADC) at the skull base.
    p_artifact_bilateral : float
        Probability that each artefact also appears, similar, at the mirror position (as real ones mostly do).
    p_old_infarct : float
        Probability of an old (chronic, cavitated: dark DWI, high ADC, not labelled) infarct elsewhere.
    snr : Range
        Normal white-matter DWI signal over the noise sigma (sampled log-uniformly); Rician noise.
    bias : Range
        Peak relative amplitude of a smooth multiplicative intensity bias.
    psf_sigma_vox : Range
        In-plane blur (Gaussian sigma in voxels) of the acquisition.
    texture : Range
        Relative amplitude of fine normal-tissue texture.
    dwi_scale : Range
        Stored white-matter DWI value (log-uniform): scanners differ by orders of magnitude.
    p_integer : float
        Probability of storing rounded (integer-valued) DWI, as many scanners do.
    skull_strip_prob : float
        Probability of a skull-stripped output (zeros outside the brain); otherwise skull and scalp are simulated.
    adc_units : tuple of str
        Units to choose from for the stored ADC: '1e-6 mm2/s', '1e-3 mm2/s', 'mm2/s'.
    """

    shape: tuple[int, int, int] | None = None
    inplane_mm: Range = (0.9, 2.0)
    slice_mm: Range = (2.0, 6.0)
    slice_gap_mm: Range = (0.0, 0.0)
    fov_mm: Range = (200.0, 250.0)
    coverage_mm: Range = (110.0, 170.0)
    fov_shift_mm: float = 12.0
    max_oblique_deg: float = 15.0
    p_flip: float = 0.5
    p_swap_inplane: float = 0.2
    head_tilt_deg: float = 8.0
    head_scale: Range = (0.85, 1.0)
    warp_mm: Range = (0.0, 3.0)
    ventricle_expansion: Range = (0.05, 0.6)
    atrophy: Range = (0.2, 1.5)
    n_lesions: tuple[int, int] = (1, 3)
    satellite_max_ml: float = 3.0
    p_shower: float = 0.15
    shower_size: tuple[int, int] = (3, 10)
    shower_volume_ml: Range | None = None
    p_empty: float = 0.03
    lesion_volume_ml: Range | None = None
    territory: str | None = None
    lesion_weighting: str = "natural"
    p_mirror: float = 0.5
    dwi_ratio: Range = (1.3, 3.5)
    adc_ratio: Range = (0.45, 0.85)
    p_pseudonormal: float = 0.15
    pseudonormal_adc_ratio: Range = (0.85, 1.0)
    pseudonormal_dwi_ratio: Range = (1.3, 2.2)
    heterogeneity: Range = (0.1, 0.4)
    edge_mm: Range = (0.5, 1.2)
    dwi_gm_wm: Range = (1.05, 1.35)
    dwi_csf_wm: Range = (0.1, 0.45)
    adc_gm: Range = (800.0, 900.0)
    adc_wm: Range = (650.0, 750.0)
    adc_csf: Range = (2500.0, 3200.0)
    p_artifact: float = 0.6
    p_artifact_bilateral: float = 0.7
    p_old_infarct: float = 0.1
    snr: Range = (8.0, 40.0)
    bias: Range = (0.05, 0.4)
    psf_sigma_vox: Range = (0.0, 0.6)
    texture: Range = (0.03, 0.15)
    dwi_scale: Range = (3.0, 10000.0)
    p_integer: float = 0.3
    skull_strip_prob: float = 0.5
    adc_units: tuple[str, ...] = ("1e-6 mm2/s",)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for an empty range, a negative size, an unknown unit or a bad probability."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") or f.name == "skull_strip_prob":
                if not 0.0 <= float(value) <= 1.0:
                    raise ConfigError(f"{f.name} must be a probability in [0, 1], got {value}")
            elif isinstance(value, tuple) and len(value) == 2 and f.name != "adc_units":
                lo, hi = value
                if lo > hi:
                    raise ConfigError(f"{f.name} range is empty: low {lo} > high {hi}")
        positive = ("inplane_mm", "slice_mm", "fov_mm", "coverage_mm", "head_scale", "dwi_ratio", "adc_ratio",
                    "snr", "dwi_scale", "adc_gm", "adc_wm", "adc_csf", "dwi_gm_wm", "dwi_csf_wm")
        for name in positive:
            if min(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.shape is not None and (len(self.shape) != 3 or min(self.shape) < 2):
            raise ConfigError(f"shape must be three sizes >= 2, got {self.shape}")
        if self.n_lesions[0] < 1 or self.shower_size[0] < 1:
            raise ConfigError("n_lesions and shower_size must start at 1 or more (use p_empty for lesion-free cases)")
        if not self.adc_units or any(u not in ADC_UNITS for u in self.adc_units):
            raise ConfigError(f"adc_units must be a non-empty choice among {', '.join(ADC_UNITS)}")
        if self.lesion_weighting not in ("natural", "uniform", "log_uniform"):
            raise ConfigError(f"lesion_weighting must be natural, uniform or log_uniform, not {self.lesion_weighting}")

    def with_(self, **changes: Any) -> PhantomConfig:
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def isles_like(cls, **changes: Any) -> PhantomConfig:
        """ISLES'22-like: 112x112x73 at 2 mm isotropic, skull-stripped, ADC in 1e-3 mm^2/s."""
        base = cls(shape=(112, 112, 73), inplane_mm=(2.0, 2.0), slice_mm=(2.0, 2.0), slice_gap_mm=(0.0, 0.0),
                   fov_shift_mm=6.0, skull_strip_prob=1.0, adc_units=("1e-3 mm2/s",), p_integer=0.0,
                   snr=(12.0, 40.0), dwi_scale=(100.0, 600.0))
        return replace(base, **changes)

    @classmethod
    def clinical(cls, **changes: Any) -> PhantomConfig:
        """Clinical routine: 256x256x25, 0.9x0.9 mm in-plane, 5 mm slices (+ up to 1 mm gap), skull present."""
        base = cls(shape=(256, 256, 25), inplane_mm=(0.9, 0.9), slice_mm=(5.0, 5.0), slice_gap_mm=(0.0, 1.0),
                   skull_strip_prob=0.0, adc_units=("1e-6 mm2/s",))
        return replace(base, **changes)
