"""The learned model's three input channels, all derived from the DWI.

The published SAM models take 3-channel images. Instead of three copies of the DWI, infarctsam feeds:

0. the normalised DWI (normal tissue ~1) divided by 3 and clipped to [0, 1];
1. the ratio to the local normal-tissue level (:func:`~infarctsam.preprocess.contrast.tissue_ratio`), mapped
   0.5..3 -> 0..1 inside the brain;
2. the hemispheric asymmetry (:func:`~infarctsam.preprocess.contrast.asymmetry`), mapped 0.5..3 -> 0..1 inside
   the brain.

The model therefore needs only the DWI; an ADC is not used by it.
"""

from __future__ import annotations

import numpy as np

from infarctsam.preprocess.pipeline import Preprocessed

CHANNEL_NAMES = ("dwi", "tissue_ratio", "asymmetry")


def model_channels(case: Preprocessed) -> np.ndarray:
    """Stack the three input channels on the canonical grid.

    Parameters
    ----------
    case : Preprocessed
        The preprocessed case.

    Returns
    -------
    numpy.ndarray
        ``(3, X, Y, Z)`` float32 in [0, 1].
    """
    dwi, brain = case.dwi, case.brain
    ratio, asym = case.contrast_maps()
    out = np.empty((3, *dwi.shape), dtype=np.float32)
    out[0] = np.clip(dwi / 3.0, 0.0, 1.0)
    out[1] = np.clip((ratio - 0.5) / 2.5, 0.0, 1.0) * brain
    out[2] = np.clip((asym - 0.5) / 2.5, 0.0, 1.0) * brain
    return out
