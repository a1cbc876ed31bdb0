"""Where the infarct is: affine registration to MNI152 and the lesion's arterial territories and brain regions.

>>> from infarctsam.location import locate  # doctest: +SKIP
>>> report = locate(mask, dwi, brain, affine)  # doctest: +SKIP
>>> report["summary"]  # doctest: +SKIP
'left MCA 92%'

Stages: :mod:`~infarctsam.location.register` (SimpleITK affine to the nilearn MNI152 2009 template, with
plausibility checks), :mod:`~infarctsam.location.atlas` (the shipped JHU arterial atlas and derived regions) and
:mod:`~infarctsam.location.report` (the JSON section).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from infarctsam.location.register import Registration


def locate(mask: np.ndarray, dwi: np.ndarray, brain: np.ndarray, affine: np.ndarray,
           registration: Registration | None = None) -> dict[str, Any]:
    """Register a DWI to MNI and report where a lesion mask lies.

    Parameters
    ----------
    mask : numpy.ndarray
        Lesion mask on the DWI grid (x, y, z).
    dwi : numpy.ndarray
        DWI intensities on that grid.
    brain : numpy.ndarray
        Brain mask on that grid.
    affine : numpy.ndarray
        4x4 voxel-to-world (RAS, mm) matrix of the grid.
    registration : Registration, optional
        An already computed mapping of this DWI (to locate several masks with one registration).

    Returns
    -------
    dict
        The location report (:func:`infarctsam.location.report.location_report`).
    """
    import numpy as np

    from infarctsam.location.atlas import load_atlas
    from infarctsam.location.register import register_to_mni
    from infarctsam.location.report import location_report

    reg = registration if registration is not None else register_to_mni(dwi, brain, affine)
    return location_report(np.asarray(mask) > 0, affine, reg, load_atlas())
