"""DICOM outputs for PACS: a DICOM SEG of the infarct and a DICOM SR (TID 1500 measurement report), with highdicom.

Both reference the source DICOM series: the SEG frames are the source slices (same ImagePositionPatient,
ImageOrientationPatient and PixelSpacing, same Frame of Reference), the SR cites the SEG segment and the source
series and holds the infarct volume, the lesion count and the engine and weights that produced them.

The mask (on the grid of the DWI that was segmented) is mapped onto the source slices through world coordinates,
without interpolation: every source pixel centre must fall on a mask voxel centre (within a tenth of a voxel). This
holds for a DWI read from the series itself and for a NIfTI converted from it in any voxel order (dcm2niix flips);
a series on another grid is refused with one line.

Writing needs the optional ``dicom`` extra (``pip install infarctsam[dicom]``: highdicom and pydicom).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam._version import __version__
from infarctsam.errors import InputError

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_ON_GRID_TOL = 0.1  # voxel
MANUFACTURER = "infarctsam"


@dataclass(frozen=True)
class DicomReport:
    """What the SR reports about a case.

    Attributes
    ----------
    volume_ml : float
        Infarct volume in millilitres.
    lesion_count : int
        Number of connected lesions.
    engine : str
        Engine name (``threshold``, ``sam``).
    weights : str or None
        Weights identifier (file name or sha256), when the engine has weights.
    """

    volume_ml: float
    lesion_count: int
    engine: str
    weights: str | None


def _require_highdicom() -> Any:
    try:
        import highdicom
    except ImportError as exc:
        raise InputError("DICOM SEG/SR output needs highdicom: pip install 'infarctsam[dicom]'") from exc
    return highdicom


def read_source_series(folder: str | Path, series_uid: str | None = None) -> list[Any]:
    """Read the single-frame images of one DICOM series in ``folder``, sorted along the slice normal.

    Parameters
    ----------
    folder : str or Path
        Folder holding the series (other series in it are ignored).
    series_uid : str, optional
        SeriesInstanceUID to take; by default the series with the most images.

    Returns
    -------
    list of pydicom.Dataset
        The images, inferior to superior along their normal.

    Raises
    ------
    InputError
        No DICOM image, an enhanced multi-frame image, or images without geometry.
    """
    _require_highdicom()
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"reference DICOM series not found: {folder}")
    by_series: dict[str, list[Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError):
            continue
        if "PixelData" not in ds or "SeriesInstanceUID" not in ds:
            continue
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    if not by_series:
        raise InputError(f"{folder}: no DICOM image found")
    uid = series_uid if series_uid in by_series else max(by_series, key=lambda s: len(by_series[s]))
    images = by_series[uid]
    for ds in images:
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise InputError(f"{folder}: enhanced multi-frame DICOM is not supported for SEG output (one image per "
                             "slice is needed)")
        if not all(k in ds for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")):
            raise InputError(f"{folder}: DICOM image {ds.get('SOPInstanceUID', '?')} has no position/orientation")
        if not str(ds.get("FrameOfReferenceUID", "") or "").strip():
            raise InputError(f"{folder.name}: the DICOM series has no Frame of Reference UID (0020,0052), which a "
                             "DICOM SEG must share with its source images; export the series from the scanner or "
                             "PACS with it to get a SEG/SR")
    normal = np.cross(*np.asarray(images[0].ImageOrientationPatient, dtype=float).reshape(2, 3))
    return sorted(images, key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, dtype=float))))


def pixel_to_lps(ds: Any) -> np.ndarray:
    """4x4 matrix mapping (column, row, 0, 1) of a DICOM image to patient LPS millimetres."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float).reshape(2, 3)
    row_spacing, col_spacing = (float(x) for x in ds.PixelSpacing)
    out = np.eye(4)
    out[:3, 0] = iop[0] * col_spacing  # along a row: increasing column index
    out[:3, 1] = iop[1] * row_spacing  # along a column: increasing row index
    out[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=float)
    return out


def mask_frames(mask: np.ndarray, affine: np.ndarray, images: list[Any]) -> np.ndarray:
    """The mask sampled on each source image: ``(n_images, rows, columns)`` uint8, in the order of ``images``.

    Parameters
    ----------
    mask : numpy.ndarray
        3D lesion mask (i, j, k) on ``affine``.
    affine : numpy.ndarray
        Voxel-to-RAS affine of the mask.
    images : list of pydicom.Dataset
        Source images.

    Raises
    ------
    InputError
        A source pixel does not fall on a mask voxel (the series is not on the segmented grid).
    """
    to_vox = np.linalg.inv(_LPS @ np.asarray(affine, dtype=float))
    shape = np.array(mask.shape[:3])
    frames = []
    for ds in images:
        rows, cols = int(ds.Rows), int(ds.Columns)
        r, c = np.mgrid[0:rows, 0:cols]
        pix = np.stack([c.ravel(), r.ravel(), np.zeros(r.size), np.ones(r.size)]).astype(np.float64)
        ijk = (to_vox @ pixel_to_lps(ds) @ pix)[:3]
        idx = np.rint(ijk)
        off = float(np.abs(ijk - idx).max())
        inside = np.all((idx >= 0) & (idx < shape[:, None]), axis=0)
        if off > _ON_GRID_TOL or not inside.all():
            raise InputError(
                f"the DICOM series does not lie on the segmented grid (image {ds.get('InstanceNumber', '?')}: "
                f"{'pixels outside the mask' if not inside.all() else f'{off:.2f} voxel off the voxel centres'})"
            )
        i, j, k = idx.astype(np.intp)
        frames.append(mask[i, j, k].reshape(rows, cols))
    return (np.stack(frames) > 0).astype(np.uint8)


def _codes() -> dict[str, Any]:
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    return {
        "category": codes.SCT.MorphologicallyAbnormalStructure,
        "infarct": Code("55641003", "SCT", "Infarct"),
        "brain": Code("12738006", "SCT", "Brain"),
        "volume": Code("118565006", "SCT", "Volume"),
        "ml": Code("ml", "UCUM", "milliliter"),
        "count": Code("246205007", "SCT", "Quantity"),
        "lesions": Code("{lesions}", "UCUM", "lesions"),
        "procedure": Code("24590-2", "LN", "MR Brain"),
        "ai": codes.DCM.ArtificialIntelligence,
    }


def build_seg(images: list[Any], frames: np.ndarray, report: DicomReport, series_number: int = 9901) -> Any:
    """A binary DICOM SEG of the infarct with one frame per source image that holds lesion.

    Parameters
    ----------
    images : list of pydicom.Dataset
        Source images (their study, patient and Frame of Reference are copied).
    frames : numpy.ndarray
        ``(n_images, rows, columns)`` mask in the order of ``images`` (from :func:`mask_frames`).
    report : DicomReport
        Engine and weights for the algorithm identification.
    series_number : int
        SeriesNumber of the new series.

    Returns
    -------
    highdicom.seg.Segmentation
    """
    hd = _require_highdicom()
    from pydicom.uid import generate_uid

    c = _codes()
    params = {"weights": report.weights} if report.weights else None
    algorithm = hd.AlgorithmIdentificationSequence(name=f"infarctsam {report.engine}", family=c["ai"],
                                                   version=__version__, parameters=params)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Infarct", segmented_property_category=c["category"],
        segmented_property_type=c["infarct"], algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_uid=generate_uid(), tracking_id="infarct",
        anatomic_regions=[c["brain"]],
    )
    return hd.seg.Segmentation(
        source_images=images, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=f"infarctsam {report.engine}", software_versions=__version__,
        device_serial_number="0", series_description="infarctsam infarct SEG", content_label="INFARCT",
        content_description="Follow-up infarct (automatic)", omit_empty_frames=bool(frames.any()),
    )


def build_sr(images: list[Any], seg: Any, report: DicomReport, series_number: int = 9902) -> Any:
    """A Comprehensive 3D SR holding a TID 1500 measurement report of the infarct.

    The report has one volumetric ROI group (TID 1411) that references segment 1 of ``seg`` and the source series,
    with the infarct volume (mL) and the lesion count, and the algorithm identification (engine, version, weights).

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
    """
    hd = _require_highdicom()
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    c = _codes()
    params = [f"weights={report.weights}"] if report.weights else None
    algorithm = hd.sr.AlgorithmIdentification(name=f"infarctsam {report.engine}", version=__version__,
                                              parameters=params)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="infarctsam", manufacturer_name=MANUFACTURER,
            model_name=f"infarctsam {report.engine}"),
    )
    measurements = [
        hd.sr.Measurement(name=c["volume"], value=round(float(report.volume_ml), 4), unit=c["ml"],
                          algorithm_id=algorithm),
        hd.sr.Measurement(name=c["count"], value=int(report.lesion_count), unit=c["lesions"], algorithm_id=algorithm),
    ]
    roi = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="infarct"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=1,
            source_series=hd.sr.SourceSeriesForSegmentation(str(images[0].SeriesInstanceUID))),
        finding_type=c["infarct"], algorithm_id=algorithm, measurements=measurements,
        finding_sites=[hd.sr.FindingSite(anatomic_location=c["brain"])],
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=c["procedure"], imaging_measurements=[roi],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*images, seg], content=content, series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description="infarctsam infarct volume report",
    )


def to_bytes(ds: Any) -> bytes:
    """A dataset as the bytes of a DICOM Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom_outputs(series: str | Path, mask: np.ndarray, affine: np.ndarray, report: DicomReport,
                  series_uid: str | None = None) -> tuple[bytes, bytes]:
    """The SEG and SR files (as bytes) of a case whose mask lies on the grid of a DICOM series.

    Parameters
    ----------
    series : str or Path
        Folder of the source DICOM series.
    mask : numpy.ndarray
        3D lesion mask (i, j, k) on ``affine``.
    affine : numpy.ndarray
        Voxel-to-RAS affine of the mask (the segmented DWI's).
    report : DicomReport
        Volume, lesion count, engine, weights.
    series_uid : str, optional
        SeriesInstanceUID to reference when the folder holds several series.

    Returns
    -------
    (bytes, bytes)
        The SEG and SR files.

    Raises
    ------
    InputError
        Missing highdicom, no usable series, or a series that is not on the mask's grid.
    """
    images = read_source_series(series, series_uid)
    frames = mask_frames(np.asarray(mask), affine, images)
    try:
        seg = build_seg(images, frames, report)
        sr = build_sr(images, seg, report)
    except (ValueError, AttributeError, TypeError) as exc:  # highdicom's refusals of incomplete source headers
        raise InputError(f"cannot build DICOM SEG/SR from {Path(series).name}: {' '.join(str(exc).split())[:200]}"
                         ) from exc
    return to_bytes(seg), to_bytes(sr)


def is_dicom_input(path: str | Path) -> bool:
    """True when ``path`` is a DICOM series: a folder, or a DICOM file (its folder is the series)."""
    from infarctsam.io.volume import looks_like_dicom

    path = Path(path)
    return path.is_dir() or looks_like_dicom(path)


def skipped_warning(exc: BaseException) -> str:
    """The one warning line for a DICOM DWI whose SEG/SR cannot be written: what is missing and how to fix it."""
    reason = " ".join(str(exc).split())
    if "highdicom" in reason or "pip install" in reason:
        return ("DICOM SEG/SR not written: the optional 'dicom' extra (highdicom, pydicom) is not installed; "
                "pip install 'infarctsam[dicom]' and rerun to get them")
    return f"DICOM SEG/SR not written: {reason}"


def case_dicom_files(dwi: str | Path, reference_series: str | Path | None, mask: np.ndarray, affine: np.ndarray,
                     report: DicomReport, mask_path: Path, series_uid: str | None = None
                     ) -> tuple[dict[str, tuple[Path, bytes]], dict[str, Any] | None]:
    """The SEG and SR of a case, to write beside its mask, and what to record about them in the case JSON.

    With ``reference_series`` given, the files are built from that series and any problem is an error. Without it,
    they are built when the DWI itself is a DICOM series; a problem then (highdicom missing, no Frame of Reference UID,
    an enhanced multi-frame series) is recorded under ``dicom.skipped`` in the JSON with one line naming the reason and
    the fix under ``dicom.warning`` (also among the case's warnings, so it is printed on stderr), and the NIfTI outputs
    are written as usual.

    Parameters
    ----------
    dwi : str or Path
        The DWI input.
    reference_series : str or Path, optional
        DICOM series folder to reference (for a NIfTI DWI converted from it).
    mask, affine
        Lesion mask on the DWI grid and its voxel-to-RAS affine.
    report : DicomReport
        Volume, lesion count, engine, weights.
    mask_path : Path
        The NIfTI mask path: ``X_mask.nii.gz`` gives ``X_seg.dcm`` and ``X_sr.dcm``.
    series_uid : str, optional
        The series the DWI was read from.

    Returns
    -------
    (dict, dict or None)
        ``{"dicom_seg": (path, bytes), "dicom_sr": (path, bytes)}`` (empty when not written) and the JSON record.
    """
    explicit = reference_series is not None
    if not explicit and not is_dicom_input(dwi):
        return {}, None
    series = Path(reference_series) if explicit else (Path(dwi) if Path(dwi).is_dir() else Path(dwi).parent)
    try:
        seg, sr = dicom_outputs(series, mask, affine, report, series_uid=None if explicit else series_uid)
    except InputError as exc:
        if explicit:
            raise
        return {}, {"series": str(series), "skipped": str(exc), "warning": skipped_warning(exc)}
    stem = mask_path.name[: -len("_mask.nii.gz")] if mask_path.name.endswith("_mask.nii.gz") else mask_path.stem
    files = {"dicom_seg": (mask_path.with_name(f"{stem}_seg.dcm"), seg),
             "dicom_sr": (mask_path.with_name(f"{stem}_sr.dcm"), sr)}
    return files, {"series": str(series), "seg": files["dicom_seg"][0].name, "sr": files["dicom_sr"][0].name}
