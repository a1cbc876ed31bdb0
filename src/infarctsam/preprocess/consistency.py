"""Inputs that must belong together: does the ADC (and the reference mask) show the DWI's anatomy?

An ADC from another patient, or one shifted against the DWI, still overlaps the DWI's box and is resampled onto it
without complaint. What gives it away is the anatomy: in the same head, cerebrospinal fluid is dark on the DWI and
bright on the ADC (and an infarct the other way round), so inside the DWI's brain the two are clearly
anti-correlated. The figure is the voxel-wise rank correlation in the preprocessed brain after a 2 mm Gaussian
smoothing of both (an ADC resampled from another grid is blurrier than the DWI). On real scans: the own ADC of both
labelled ISLES'22 cases, the native-resolution example, a clinical 1.2 x 1.2 x 5 mm scan and a normal slab -0.45 to
-0.77, case 0009's own ADC resampled onto a rotated 3 mm grid -0.36; another patient's ADC -0.09 to +0.08; the own
ADC shifted 20 mm -0.13 to 0.00. The limit, -0.25, lies between. (Smaller misregistrations are not what this check
is for: 10 mm through slices scores -0.13 to -0.28, 5 mm in plane -0.28 to -0.33.)

A reference lesion mask drawn on the DWI covers hyperintense tissue: the DWI inside it is brighter than the brain's
median. One that is not (another patient's mask, a mask on another scan) is reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infarctsam.errors import InputError

if TYPE_CHECKING:
    from infarctsam.preprocess.pipeline import Preprocessed

#: the ADC must correlate with the DWI at or below this (rank correlation in the DWI's brain)
MAX_ADC_CORRELATION = -0.25
#: Gaussian smoothing (mm) of both images before they are compared
SMOOTH_MM = 2.0
#: fewer brain voxels inside the ADC's field of view than this: too little to judge
MIN_VOXELS = 500
#: mean DWI in the reference mask over the brain's median below this: the mask does not mark a DWI lesion
MIN_REFERENCE_CONTRAST = 1.1


@dataclass(frozen=True)
class AdcAgreement:
    """How well an ADC matches the DWI's anatomy.

    Attributes
    ----------
    correlation : float or None
        Rank correlation of DWI and ADC in the DWI's brain, where the ADC has values (None: too little to judge).
    voxels : int
        Voxels compared.
    """

    correlation: float | None
    voxels: int

    @property
    def matches(self) -> bool:
        """True unless the figure shows another anatomy."""
        return self.correlation is None or self.correlation <= MAX_ADC_CORRELATION

    def describe(self) -> str:
        """One phrase with the figure and the limit."""
        if self.correlation is None:
            return f"too little overlap to compare ({self.voxels} voxels)"
        return (f"DWI-ADC rank correlation in the brain {self.correlation:+.2f} (a matching ADC is at most "
                f"{MAX_ADC_CORRELATION:+.2f}; another patient or a shifted ADC is near 0)")


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the mean of their positions (``scipy.stats.rankdata``'s
    "average" method), computed with NumPy: importing ``scipy.stats`` costs about 2 s, once per case process.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional values.

    Returns
    -------
    numpy.ndarray
        float64 ranks, the same length as ``values``.
    """
    values = np.asarray(values).ravel()
    if values.size == 0:
        return np.zeros(0, np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]  # where each run of equal values starts
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends + 1) / 2.0  # positions start..end-1, 1-based: mean = (start + 1 + end) / 2
    out = np.empty(values.size, np.float64)
    out[order] = mean_rank[np.cumsum(first) - 1]
    return out


def _smooth(values: np.ndarray, support: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian smoothing of ``values`` within ``support`` (normalised, so the edge does not darken)."""
    from scipy import ndimage as ndi

    weight = support.astype(np.float32)
    num = ndi.gaussian_filter(np.where(support, values, 0.0).astype(np.float32), sigma)
    return np.where(support, num / np.maximum(ndi.gaussian_filter(weight, sigma), 1e-3), 0.0)


def adc_agreement(dwi: np.ndarray, adc: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
                  smooth_mm: float = SMOOTH_MM) -> AdcAgreement:
    """Rank correlation of ``dwi`` and ``adc`` (same grid) inside ``brain`` where the ADC is positive, both first
    smoothed by a Gaussian of ``smooth_mm`` (an ADC resampled from another grid is blurrier than the DWI).

    Parameters
    ----------
    dwi, adc : numpy.ndarray
        The DWI and the ADC on the same grid (the ADC 0 outside its field of view).
    brain : numpy.ndarray
        Boolean brain mask of the DWI.
    spacing : tuple of float
        Voxel size in mm.
    smooth_mm : float
        Standard deviation of the smoothing (0: none).

    Returns
    -------
    AdcAgreement
    """
    adc = np.nan_to_num(np.asarray(adc, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    dwi = np.nan_to_num(np.asarray(dwi, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    covered = adc > 0
    if smooth_mm > 0:
        sigma = smooth_mm / np.asarray(spacing, dtype=float)
        dwi, adc = _smooth(dwi, brain, sigma), _smooth(adc, covered, sigma)
    use = brain & covered
    n = int(use.sum())
    if n < MIN_VOXELS:
        return AdcAgreement(None, n)
    d, a = dwi[use], adc[use]
    if np.ptp(d) == 0 or np.ptp(a) == 0:  # a constant map carries no anatomy to compare
        return AdcAgreement(None, n)
    if n > 200_000:  # a regular subsample keeps the ranking fast on large volumes
        step = n // 200_000 + 1
        d, a = d[::step], a[::step]
    r = float(np.corrcoef(ranks(d), ranks(a))[0, 1])
    return AdcAgreement(round(r, 3), n)


def check_adc(dwi: np.ndarray, adc: np.ndarray, brain: np.ndarray, spacing: tuple[float, float, float],
              adc_name: str, allow: bool = False) -> tuple[AdcAgreement, str | None]:
    """Refuse an ADC that does not show the DWI's anatomy.

    Parameters
    ----------
    dwi, adc, brain, spacing
        As :func:`adc_agreement`.
    adc_name : str
        The ADC's file name, for the message.
    allow : bool
        Turn the refusal into a warning (``--allow-mismatched-adc``).

    Returns
    -------
    (AdcAgreement, str or None)
        The figure, and the warning to record when a mismatch was allowed.

    Raises
    ------
    InputError
        The ADC does not match and ``allow`` is False.
    """
    agreement = adc_agreement(dwi, adc, brain, spacing)
    if agreement.matches:
        return agreement, None
    message = f"{adc_name}: the ADC does not match the DWI's anatomy: {agreement.describe()}"
    if not allow:
        raise InputError(f"--adc {message}; --allow-mismatched-adc to use it anyway")
    return agreement, f"{message}; used anyway (--allow-mismatched-adc)"


def reference_warning(dwi: np.ndarray, brain: np.ndarray, reference: np.ndarray, name: str) -> str | None:
    """A warning when a reference lesion mask does not cover hyperintense DWI tissue (None when it does).

    Parameters
    ----------
    dwi : numpy.ndarray
        The DWI (any scale).
    brain : numpy.ndarray
        Boolean brain mask.
    reference : numpy.ndarray
        The reference lesion mask on the same grid.
    name : str
        The mask's file name, for the message.
    """
    ref = reference > 0
    if not ref.any() or not brain.any():
        return None
    inside = float((ref & brain).sum()) / float(ref.sum())
    if inside < 0.5:
        return (f"{name}: only {100 * inside:.0f}% of the reference mask lies in the DWI's brain: drawn on another "
                "scan?")
    level = float(np.median(dwi[brain]))
    contrast = float(dwi[ref].mean()) / level if level > 0 else float("inf")
    if contrast < MIN_REFERENCE_CONTRAST:
        return (f"{name}: the DWI inside the reference mask is {contrast:.2f}x the brain's median (an infarct on "
                f"DWI is brighter, at least {MIN_REFERENCE_CONTRAST}x): drawn on another scan?")
    return None



def input_consistency(pre: Preprocessed, adc_name: str | None, reference: np.ndarray | None, reference_name: str,
                      allow_mismatched_adc: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Check the preprocessed case's ADC and the reference mask (input voxel order) against its DWI.

    Returns
    -------
    (dict, list of str)
        ``{"adc_dwi_correlation": r}`` when an ADC was given (for the JSON), and the warnings to record.

    Raises
    ------
    InputError
        The ADC does not match the DWI and ``allow_mismatched_adc`` is False.
    """
    record: dict[str, Any] = {}
    notes: list[str] = []
    if pre.adc is not None and adc_name is not None:
        agreement, note = check_adc(pre.dwi, pre.adc, pre.brain, pre.spacing, adc_name, allow=allow_mismatched_adc)
        record["adc_dwi_correlation"] = agreement.correlation
        notes += [note] if note else []
    if reference is not None:
        note = reference_warning(pre.dwi, pre.brain, pre.reorient.to_canonical(reference), reference_name)
        notes += [note] if note else []
    return record, notes
