"""Python API of ``infarctsam locate``: where a lesion mask from anywhere (a reader, another tool) lies.

>>> from infarctsam.locate import locate_mask
>>> report = locate_mask("reader1_mask.nii.gz", "sub-01_dwi.nii.gz", "out/")  # doctest: +SKIP
>>> report["location"]["summary"]  # doctest: +SKIP
'left MCA 92%'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def locate_mask(mask: str | Path, dwi: str | Path, output: str | Path, *, bval: str | Path | None = None,
                picture: bool = True) -> dict[str, Any]:
    """Register a DWI to MNI and report the arterial territories and regions of a lesion mask on its grid.

    Parameters
    ----------
    mask : str or Path
        Lesion mask (0 and 1) on the DWI's grid.
    dwi : str or Path
        The DWI it was drawn on (NIfTI, MetaImage or DICOM folder; 4D with b-values is reduced as by ``segment``).
    output : str or Path
        Output folder: ``MASKNAME_location.json`` and ``MASKNAME_location.png`` are written there.
    bval : str or Path, optional
        b-values of a 4D DWI without sidecar.
    picture : bool
        Also write the registration picture with the territories.

    Returns
    -------
    dict
        What the JSON holds: ``mask``, ``dwi``, ``volume_ml``, ``location``, ``warnings``, ``outputs``.

    Raises
    ------
    InputError, OutputError
        One line, before anything is written.
    """
    import numpy as np

    from infarctsam.api import load_reference, utc_timestamp
    from infarctsam.io.atomic import atomic_path, write_json
    from infarctsam.io.dataset import safe_id
    from infarctsam.io.dwi import load_dwi
    from infarctsam.io.hashing import file_sha256
    from infarctsam.io.safety import check_input_path, check_not_inputs
    from infarctsam.io.volume import strip_image_suffix
    from infarctsam.location.case import case_location
    from infarctsam.outputs.case import check_writable, ensure_folder, tag_png
    from infarctsam.preprocess import preprocess

    mask_path = check_input_path(mask, "mask")
    dwi_path = check_input_path(dwi, "DWI", folder_ok=True)
    outdir = Path(output)
    stem = safe_id(strip_image_suffix(mask_path.name))
    json_path, png_path = outdir / f"{stem}_location.json", outdir / f"{stem}_location.png"
    check_not_inputs([json_path, png_path], [mask_path, dwi_path, bval])
    check_writable(outdir)
    dwi_vol, _ = load_dwi(dwi_path, bval=bval)
    ref = load_reference(mask_path, dwi_vol)
    pre = preprocess(dwi_vol, None)
    mask_c = pre.reorient.to_canonical(ref) > 0
    loc = case_location(pre, mask_c, outdir / f"{stem}_qc.png", picture=picture, title=f"{stem} on {dwi_path.name}")
    result: dict[str, Any] = {
        "mask": {"path": str(mask_path), "sha256": file_sha256(mask_path)},
        "dwi": {"path": str(dwi_path), "sha256": file_sha256(dwi_path) if dwi_path.is_file() else None},
        "volume_ml": round(float(np.count_nonzero(ref)) * dwi_vol.voxel_volume_ml, 4),
        "location": loc.report, "warnings": loc.warnings, "outputs": {"json": json_path.name},
        "created_utc": utc_timestamp(),
    }
    ensure_folder(outdir)
    if "location" in loc.files:
        with atomic_path(png_path) as tmp:
            tmp.write_bytes(tag_png(loc.files["location"][1]))
        result["outputs"]["picture"] = png_path.name
    write_json(json_path, result)
    return result
