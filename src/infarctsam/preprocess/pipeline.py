"""The preprocessing pipeline: canonical orientation, brain mask, intensity normalisation.

:func:`preprocess` turns the DWI (and optional ADC) into a :class:`Preprocessed` case on the canonical RAS+ grid;
:meth:`Preprocessed.to_input` is the exact inverse back to the input DWI's voxel order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from infarctsam.errors import InputError
from infarctsam.io.volume import Volume
from infarctsam.preprocess.brain import brain_mask
from infarctsam.preprocess.orient import Reorient

MIN_BRAIN_ML = 20.0


@dataclass
class Preprocessed:
    """A case ready for an engine, on the canonical grid.

    Attributes
    ----------
    dwi : numpy.ndarray
        DWI divided by the median brain intensity (normal-appearing tissue is close to 1), float32, RAS+ order.
    adc : numpy.ndarray or None
        ADC in x10^-6 mm^2/s, RAS+ order.
    brain : numpy.ndarray
        Boolean brain mask, RAS+ order.
    reorient : Reorient
        The transform from the input grid; gives the canonical affine and spacing.
    dwi_scale : float
        The divisor applied to the raw DWI.
    """

    dwi: np.ndarray
    adc: np.ndarray | None
    brain: np.ndarray
    reorient: Reorient
    dwi_scale: float
    _maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def contrast_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The DWI's ratio to the local normal-tissue level and its left-right asymmetry
        (:mod:`infarctsam.preprocess.contrast`), computed once and shared by the model's input channels and the
        fusion head."""
        from infarctsam.preprocess.contrast import asymmetry, tissue_ratio

        if not self._maps:
            self._maps["ratio"] = tissue_ratio(self.dwi, self.brain, self.spacing)
            self._maps["asymmetry"] = asymmetry(self.dwi, self.brain, self.spacing)
        return self._maps["ratio"], self._maps["asymmetry"]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Canonical voxel size in mm."""
        return self.reorient.canonical_spacing

    @property
    def affine(self) -> np.ndarray:
        """Canonical voxel-to-world affine."""
        return self.reorient.canonical_affine

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL."""
        return float(np.prod(self.spacing) / 1000.0)

    def to_input(self, canonical: np.ndarray) -> np.ndarray:
        """Map a canonical array back to the input DWI voxel order (exact)."""
        return self.reorient.to_input(canonical)


def normalise_dwi(dwi: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, float]:
    """Divide the DWI by the median intensity inside the brain mask.

    Returns the normalised array (float32, clipped to [0, 20]) and the divisor.
    """
    values = dwi[brain & (dwi > 0)]
    scale = float(np.median(values)) if values.size else 0.0
    if not np.isfinite(scale) or scale <= 0:
        raise InputError("the DWI has no positive signal inside the brain")
    return np.clip(dwi / scale, 0.0, 20.0).astype(np.float32), scale


def preprocess(dwi: Volume, adc: Volume | None = None, erode_mm: float = 5.0) -> Preprocessed:
    """Prepare a case for an engine.

    Parameters
    ----------
    dwi : Volume
        3D DWI (as returned by :func:`infarctsam.io.dwi.load_dwi`).
    adc : Volume, optional
        ADC on the DWI grid in x10^-6 mm^2/s (as returned by :func:`infarctsam.io.dwi.load_adc`).
    erode_mm : float
        Brain-mask erosion radius for non-skull-stripped images.

    Returns
    -------
    Preprocessed

    Raises
    ------
    InputError
        When no brain (at least 20 mL) is found.
    """
    if dwi.data.ndim != 3:
        raise InputError(f"expected a 3D DWI, got shape {dwi.shape}")
    reorient = Reorient.from_affine(dwi.affine, dwi.shape)
    raw = np.nan_to_num(reorient.to_canonical(dwi.data.astype(np.float32)), nan=0.0, posinf=0.0, neginf=0.0)
    raw = np.clip(raw, 0.0, None)
    brain = brain_mask(raw, reorient.canonical_spacing, erode_mm=erode_mm)
    voxel_ml = float(np.prod(reorient.canonical_spacing) / 1000.0)
    if brain.sum() * voxel_ml < MIN_BRAIN_ML:
        raise InputError(f"no brain found in the DWI (brain mask {brain.sum() * voxel_ml:.1f} mL)")
    norm, scale = normalise_dwi(raw, brain)
    adc_c = None
    if adc is not None:
        if adc.spatial_shape != dwi.spatial_shape:
            raise InputError(f"ADC grid {adc.spatial_shape} differs from DWI grid {dwi.spatial_shape}")
        adc_c = np.nan_to_num(reorient.to_canonical(adc.data.astype(np.float32)), nan=0.0).clip(0, 5000)
    return Preprocessed(dwi=norm, adc=adc_c, brain=brain, reorient=reorient, dwi_scale=scale)
