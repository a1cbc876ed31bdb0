"""The result of the phantom generators: :class:`Phantom` (and its optional 1 mm :class:`SourceMaps`).

Both generators (template anatomy in :mod:`infarctsam.synth.phantom`, a real background in
:mod:`infarctsam.synth.background`) build their result here, so neither needs the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infarctsam.io.volume import Volume


@dataclass
class SourceMaps:
    """The 1 mm phantom before acquisition (kept on request, for checks).

    Attributes
    ----------
    affine : numpy.ndarray
        Voxel-to-MNI affine of the box.
    label : numpy.ndarray
        bool labelled infarct (before blurring and acquisition).
    tissue, csf : numpy.ndarray
        GM + WM and CSF fractions (after atrophy).
    dwi, adc : numpy.ndarray
        Clean DWI (WM = 1) and ADC (1e-6 mm^2/s).
    """

    affine: np.ndarray
    label: np.ndarray
    tissue: np.ndarray
    csf: np.ndarray
    dwi: np.ndarray
    adc: np.ndarray


@dataclass
class Phantom:
    """One synthetic case; all four volumes share the output grid.

    Attributes
    ----------
    dwi : Volume
        b=1000 trace DWI, float32, arbitrary scale.
    adc : Volume
        ADC in ``meta['adc_unit']``.
    lesion : Volume
        uint8 infarct mask.
    brain : Volume
        uint8 brain mask.
    meta : dict
        JSON-ready facts: ``seed``, ``lesion_ids``, ``lesions`` (territory, MNI volume, DWI/ADC ratios),
        ``lesion_volume_ml`` (mask voxels x voxel volume, exactly), ``lesion_volume_ml_1mm`` (the 1 mm label scaled
        by the head size, before acquisition), ``tissue`` contrasts, ``snr``, ``dwi_scale``, ``spacing_mm``,
        ``slice_thickness_mm``, ``adc_unit`` and ``adc_to_1e-6`` (multiply stored ADC by it to get 1e-6 mm^2/s),
        ``skull_stripped``, ``world_to_mni`` (4x4, head pose only: the smooth deformation is not included).
    source : SourceMaps or None
        The 1 mm phantom, when asked for.
    """

    dwi: Volume
    adc: Volume
    lesion: Volume
    brain: Volume
    meta: dict[str, Any] = field(default_factory=dict)
    source: SourceMaps | None = None


def assemble_phantom(affine: np.ndarray, dwi: np.ndarray, adc: np.ndarray, lesion: np.ndarray, brain: np.ndarray,
                     meta: dict[str, Any], source: SourceMaps | None = None) -> Phantom:
    """Wrap the output-grid arrays of a synthetic case into a :class:`Phantom` (one affine shared by all four)."""
    aff = np.asarray(affine, dtype=np.float64)
    unit = meta.get("adc_unit")
    return Phantom(
        dwi=Volume(dwi, aff.copy(), meta={"synthetic": True, "b_value": meta.get("b_value", 1000.0)}),
        adc=Volume(adc, aff.copy(), meta={"synthetic": True, "adc_unit": unit}),
        lesion=Volume(lesion.astype(np.uint8), aff.copy(), meta={"synthetic": True}),
        brain=Volume(brain.astype(np.uint8), aff.copy(), meta={"synthetic": True}),
        meta=meta, source=source)
