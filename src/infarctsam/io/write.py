"""Writing images on the grid of a reference volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infarctsam.io.atomic import atomic_path
from infarctsam.io.volume import Volume

_GEOMETRY_FIELDS = (
    "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d",
    "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z", "xyzt_units",
)


def write_like(reference: Volume, data: np.ndarray, path: str | Path, dtype: str = "uint8") -> Path:
    """Write ``data`` as NIfTI on exactly the grid of ``reference``, atomically.

    When ``reference`` came from a NIfTI file its header is reused, so the output's shape, affine, qform and sform
    (with their codes) equal the input's. Otherwise the affine is written as both qform and sform (code 1, scanner).

    Parameters
    ----------
    reference : Volume
        The volume whose grid the output must have (the input DWI).
    data : numpy.ndarray
        3D array of ``reference.spatial_shape``.
    path : str or Path
        Destination, ``.nii`` or ``.nii.gz``.
    dtype : str
        Stored voxel type (``uint8`` for masks, ``float32`` for probabilities).

    Returns
    -------
    Path
        The written path.
    """
    import nibabel as nib

    if tuple(data.shape) != reference.spatial_shape:
        raise ValueError(f"data shape {data.shape} does not match reference grid {reference.spatial_shape}")
    arr = np.asarray(data, dtype=dtype)
    if reference.header is not None and isinstance(reference.header, nib.Nifti1Header):
        hdr = reference.header.copy()
        img = nib.Nifti1Image(arr, reference.affine, header=hdr)
        img.header.set_data_dtype(arr.dtype)
        img.header.set_slope_inter(1.0, 0.0)
        img.header["cal_min"], img.header["cal_max"] = 0, 0
        img.header["intent_code"] = 0
        # Restore the transforms byte for byte (nibabel would otherwise re-derive a transform whose code is 0).
        for key in _GEOMETRY_FIELDS:
            img.header[key] = reference.header[key]
    else:
        img = nib.Nifti1Image(arr, reference.affine)
        img.set_qform(reference.affine, code=1)
        img.set_sform(reference.affine, code=1)
    # the description marks the file as ours: a rerun may replace it, never a file it does not recognise
    img.header["descrip"] = b"infarctsam lesion mask" if arr.dtype == np.uint8 else b"infarctsam lesion probability"
    path = Path(path)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
