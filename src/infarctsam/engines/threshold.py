"""The weight-free ``threshold`` engine: DWI hyperintensity relative to normal-appearing brain, gated by ADC.

Method (all parameters in :class:`ThresholdConfig`):

1. Normal-appearing tissue level, locally: a normalised Gaussian average (``tissue_sigma_mm``) of DWI over brain
   voxels that are neither CSF-like (DWI below ``csf_below`` x median, or ADC above ``csf_adc``) nor hyperintense;
   this absorbs coil bias fields. ``ratio = DWI / local tissue level``.
2. Hemispheric asymmetry: DWI (lightly smoothed) divided by its mirror image across the sagittal plane through the
   brain's centre; infarcts are mostly unilateral, artefacts and normal bright structures mostly symmetric.
3. Score = sigmoid((ratio - dwi_ratio) / width) x sigmoid((asymmetry - asym_ratio) / width). With ADC, a further
   factor sigmoid((adc_max - ADC) / adc_width): ``adc_max`` = 680 x10^-6 mm^2/s by default, more relaxed than RAPID's
   620 for the acute core, because follow-up infarcts partially pseudo-normalise. Without ADC the DWI ratio bound is
   raised (``dwi_ratio_no_adc``) to avoid T2 shine-through.
4. Post-processing (shared with every engine) thresholds at 0.5, keeps voxels in the brain and removes components
   smaller than ``min_lesion_ml``.

It is the baseline every learned model must beat and the fallback when no weights are installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from infarctsam.engines.base import Engine, EngineInfo
from infarctsam.preprocess.contrast import asymmetry, tissue_ratio
from infarctsam.preprocess.pipeline import Preprocessed


@dataclass
class ThresholdConfig:
    """Parameters of the threshold engine (see the module docstring)."""

    dwi_ratio: float = 1.35
    dwi_ratio_no_adc: float = 1.7
    ratio_width: float = 0.06
    asym_ratio: float = 1.25
    asym_width: float = 0.04
    adc_max: float = 680.0
    adc_width: float = 40.0
    csf_adc: float = 1500.0
    csf_below: float = 0.6
    tissue_sigma_mm: float = 15.0
    smooth_mm: float = 2.0
    min_lesion_ml: float = 0.05


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))).astype(np.float32)


class ThresholdEngine(Engine):
    """DWI hyperintensity + asymmetry + ADC rule, weight-free."""

    def __init__(self, config: ThresholdConfig | None = None) -> None:
        self.config = config or ThresholdConfig()
        self.min_lesion_ml = self.config.min_lesion_ml

    @property
    def info(self) -> EngineInfo:
        """Engine name, weights ('none') and parameters."""
        return EngineInfo(name="threshold", weights="none", config=asdict(self.config))

    @property
    def uses_adc(self) -> bool:
        """The ADC gates the DWI hyperintensity when one is given."""
        return True

    def predict(self, case: Preprocessed, progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
        """Lesion probability on the canonical grid."""
        c = self.config
        dwi, brain, sp = case.dwi, case.brain, case.spacing
        ratio = tissue_ratio(dwi, brain, sp, adc=case.adc, sigma_mm=c.tissue_sigma_mm, smooth_mm=c.smooth_mm,
                             csf_below=c.csf_below, csf_adc=c.csf_adc)
        asym = asymmetry(dwi, brain, sp, smooth_mm=c.smooth_mm)
        if case.adc is not None:
            score = _sigmoid((ratio - c.dwi_ratio) / c.ratio_width)
            score *= _sigmoid((c.adc_max - case.adc) / c.adc_width)
        else:
            score = _sigmoid((ratio - c.dwi_ratio_no_adc) / c.ratio_width)
        score *= _sigmoid((asym - c.asym_ratio) / c.asym_width)
        score[~brain] = 0.0
        return score.astype(np.float32)
