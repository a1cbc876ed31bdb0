"""Is the DWI a b≈1000 diffusion-weighted image, and the ADC an ADC map? Judged from the images themselves.

A file name or a sidecar can be wrong, and swapped or mislabelled inputs otherwise give a confident wrong volume. The
images say what they are through the cerebrospinal fluid (ventricles and sulci, left and right alike):

* on a b≈1000 DWI the fluid is **dark** (its free water has lost its signal); only lesions and artefacts are bright,
  and an infarct is mostly on one side;
* on a b0 (or T2) image the fluid is bright, and on an ADC map it is much brighter still (about 3e-3 mm^2/s
  against 0.7-0.9e-3 in tissue).

The figure is the **symmetric bright fraction**: the share of the brain mask brighter than 1.8x the brain's median
whose left-right mirror position (within 2 voxels) is bright too. Measured on every real scan we have: genuine
b≈1000 DWIs 0.0002-0.012 (a 160 mL infarct included: it is one-sided), b0 images 0.026-0.14, ADC maps 0.076-0.27;
our own synthetic phantoms, with their bilateral skull-base artefacts, reach 0.025 on the DWI. A DWI above
:data:`MAX_DWI_BRIGHT_CSF` (0.03) is refused: JHU subject 02's b0, whose fluid is only faintly bright (0.026), would
pass as a DWI. An ADC below :data:`MIN_ADC_BRIGHT_CSF` (0.02) is refused (a DWI given as the ADC scores like a DWI).
A lesion mask has two values and no anatomy; it is named as such before preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infarctsam.errors import InputError

#: brighter than this times the brain's median counts as bright
BRIGHT = 1.8
#: a DWI whose symmetric bright fraction exceeds this has bright fluid: a b0, T2 or ADC image
MAX_DWI_BRIGHT_CSF = 0.03
#: an ADC whose symmetric bright fraction is below this has dark fluid: a DWI, not an ADC map
MIN_ADC_BRIGHT_CSF = 0.02
#: at most this many distinct values: a label image (mask), not an acquisition
MAX_MASK_VALUES = 3
ALLOW_FLAG = "--allow-unusual-images"


def symmetric_bright_fraction(image: np.ndarray, brain: np.ndarray) -> float:
    """Share of the brain brighter than :data:`BRIGHT` x its median whose mirror position is bright too.

    Parameters
    ----------
    image : numpy.ndarray
        An image on the canonical grid (the first axis runs left-right).
    brain : numpy.ndarray
        Boolean brain mask on the same grid.
    """
    from scipy import ndimage as ndi

    from infarctsam.preprocess.contrast import mirror_x

    values = image[brain]
    if values.size == 0:
        return 0.0
    median = float(np.median(values))
    if median <= 0:
        return 0.0
    bright = (image > BRIGHT * median) & brain
    if not bright.any():
        return 0.0
    centre = float(np.nonzero(brain)[0].mean())
    twin = ndi.binary_dilation(mirror_x(bright.astype(np.float32), centre) > 0.5, iterations=2)
    return float((bright & twin).sum() / brain.sum())


def distinct_values(data: np.ndarray) -> int:
    """Number of distinct finite values of ``data``."""
    values = np.asarray(data)
    return int(np.unique(values[np.isfinite(values)]).size)


@dataclass(frozen=True)
class ImageKind:
    """The figures of :func:`check_image_kinds`.

    Attributes
    ----------
    dwi_bright_csf : float
        Symmetric bright fraction of the DWI.
    adc_bright_csf : float or None
        The same of the ADC, when one was given.
    """

    dwi_bright_csf: float
    adc_bright_csf: float | None


def check_not_a_mask(data: np.ndarray, what: str, name: str) -> None:
    """Refuse an image with at most :data:`MAX_MASK_VALUES` distinct values (a label image).

    Raises
    ------
    InputError
        One line naming the file, what it looks like and what to pass.
    """
    n = distinct_values(np.asarray(data))
    if n <= MAX_MASK_VALUES:
        wanted = "a b~1000 diffusion-weighted image" if what == "DWI" else "an ADC map"
        raise InputError(f"{name}: looks like a mask or label image ({n} distinct values), not {wanted}: pass the "
                         f"{what} itself" + (" (a reference mask goes to --reference)" if what == "DWI" else ""))


def check_image_kinds(dwi: np.ndarray, adc: np.ndarray | None, brain: np.ndarray, dwi_name: str,
                      adc_name: str | None, allow: bool = False) -> tuple[ImageKind, list[str]]:
    """Refuse a DWI with bright fluid and an ADC with dark fluid (see the module text).

    Parameters
    ----------
    dwi, adc : numpy.ndarray
        The preprocessed DWI and ADC (canonical grid; the ADC may be None).
    brain : numpy.ndarray
        Brain mask.
    dwi_name, adc_name : str
        File names for the messages.
    allow : bool
        Record a warning instead of refusing (``--allow-unusual-images``).

    Returns
    -------
    (ImageKind, list of str)
        The figures, and the warnings to record when ``allow`` let an unusual image through.

    Raises
    ------
    InputError
        One line: which file, what it looks like, what to pass.
    """
    d = symmetric_bright_fraction(dwi, brain)
    a = symmetric_bright_fraction(adc, brain) if adc is not None else None
    problems = []
    limit_dwi, limit_adc = 100 * MAX_DWI_BRIGHT_CSF, 100 * MIN_ADC_BRIGHT_CSF
    if d > MAX_DWI_BRIGHT_CSF and a is not None and a < MIN_ADC_BRIGHT_CSF:
        problems.append(f"DWI and ADC look swapped: {dwi_name} looks like an ADC map (cerebrospinal fluid bright, "
                        f"{100 * d:.1f}% of the brain bright on both sides) and --adc {adc_name} like a DWI "
                        f"({100 * a:.1f}%): pass them the other way round")
    elif d > MAX_DWI_BRIGHT_CSF:
        problems.append(f"{dwi_name}: looks like a b0, T2 or ADC image, not a b~1000 DWI (cerebrospinal fluid is "
                        f"bright: {100 * d:.1f}% of the brain bright on both sides, at most {limit_dwi:.0f}% "
                        "on a DWI): pass the b~1000 DWI (a b0 goes to --b0)")
    elif a is not None and a < MIN_ADC_BRIGHT_CSF:
        problems.append(f"--adc {adc_name}: looks like a diffusion-weighted image, not an ADC map (cerebrospinal "
                        f"fluid is not bright: {100 * a:.1f}% of the brain bright on both sides, at least "
                        f"{limit_adc:.0f}% on an ADC map): pass the ADC map")
    if problems and not allow:
        raise InputError(f"{problems[0]}; {ALLOW_FLAG} to use them anyway")
    return ImageKind(d, a), [f"{p}; used anyway ({ALLOW_FLAG})" for p in problems]
