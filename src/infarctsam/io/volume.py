"""The one I/O contract: an image array that travels with its geometry.

A :class:`Volume` holds the voxel array in the file's own voxel order (i, j, k[, t]) and the 4x4 affine that maps
voxel indices to RAS+ world coordinates in millimetres (the NIfTI / nibabel convention). When the image was read
from NIfTI the original header is kept, so a mask written back on the same grid reproduces shape, affine, qform and
sform (with their codes) exactly. MetaImage and DICOM are read with SimpleITK and converted from LPS to RAS.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.errors import InputError
from infarctsam.io.capture import captured_stderr, summary
from infarctsam.io.limits import check_dicom_promise, check_metaimage, check_nifti_promise
from infarctsam.io.safety import check_input_path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A voxel array with its geometry.

    Attributes
    ----------
    data : numpy.ndarray
        Voxel values in file voxel order, 3D ``(i, j, k)`` or 4D ``(i, j, k, t)``.
    affine : numpy.ndarray
        4x4 voxel-to-world (RAS+, mm) matrix.
    header : nibabel.Nifti1Header or None
        The source NIfTI header, kept so that outputs reproduce qform/sform codes exactly.
    source : pathlib.Path or None
        Where the volume was read from.
    meta : dict
        Free-form provenance (b-value used, ADC unit detected, resampling applied, ...).
    """

    data: np.ndarray
    affine: np.ndarray
    header: Any = None
    source: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return tuple(int(s) for s in self.data.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """The first three dimensions."""
        return tuple(int(s) for s in self.data.shape[:3])  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (column norms of the affine)."""
        return tuple(float(x) for x in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (|det| of the affine's 3x3 part / 1000)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def with_data(self, data: np.ndarray, **meta: Any) -> Volume:
        """Return a volume on the same grid with other voxel values (and extra provenance)."""
        if tuple(data.shape[:3]) != self.spatial_shape:
            raise ValueError(f"shape {data.shape} does not match grid {self.spatial_shape}")
        return replace(self, data=data, meta={**self.meta, **meta})

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes share spatial shape and affine (within ``atol`` mm)."""
        return self.spatial_shape == other.spatial_shape and bool(np.allclose(self.affine, other.affine, atol=atol))


def image_suffix(path: Path) -> str:
    """The image-format suffix of ``path`` ('.nii.gz', '.nii', '.mha', '.mhd') or '' when none."""
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd"):
        if name.endswith(suffix):
            return suffix
    return ""


def strip_image_suffix(name: str) -> str:
    """File name without its image suffix (``a_dwi.nii.gz`` -> ``a_dwi``)."""
    suffix = image_suffix(Path(name))
    return name[: -len(suffix)] if suffix else name


def read_volume(path: str | Path) -> Volume:
    """Read a NIfTI, MetaImage or DICOM-series image.

    Parameters
    ----------
    path : str or Path
        A ``.nii``/``.nii.gz``/``.mha``/``.mhd`` file or a folder holding one DICOM series.

    Returns
    -------
    Volume
        3D or 4D real-valued data (float32 unless the file stores integers) with its geometry.

    Raises
    ------
    InputError
        Missing or unreadable path, unknown format, empty or truncated file, complex data, fewer than 3 or more
        than 4 dimensions, zero/missing/non-finite voxel spacing, or a singular direction matrix.
    """
    path = check_input_path(path, "input", folder_ok=True)
    try:
        if path.is_dir():
            vol = _read_dicom_series(path)
        else:
            if path.stat().st_size == 0:
                raise InputError(f"{path.name}: the file is empty")
            suffix = image_suffix(path)
            if suffix in NIFTI_SUFFIXES:
                vol = _read_nifti(path)
            elif suffix in ITK_SUFFIXES:
                vol = _read_itk(path)
            elif looks_like_dicom(path):
                vol = _read_dicom_series(path.parent)
            else:
                raise InputError(
                    f"{path.name}: unsupported image format (expected .nii, .nii.gz, .mha, .mhd or a DICOM folder)"
                )
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: expected a file") from exc
    _validate(vol, path)
    return vol


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise InputError(f"{path.name}: not a NIfTI-1/2 image")
        check_nifti_promise(path, img.header)
        raw = np.asanyarray(img.dataobj)
    except InputError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise InputError(f"{path.name}: file is truncated or corrupt ({_short(exc)})") from exc
    except Exception as exc:  # nibabel raises many types (ImageFileError, ValueError, ...)
        raise InputError(f"{path.name}: not a readable NIfTI image ({_short(exc)})") from exc
    _check_dtype(raw, path)
    _check_raw_pixdim(img, path)
    header = img.header.copy()
    affine = np.asarray(img.affine, dtype=np.float64)
    return Volume(data=_as_float(raw, path), affine=affine, header=header, source=path)


def _check_raw_pixdim(img: Any, path: Path) -> None:
    """nibabel silently replaces zero pixdims by 1 when loading; read the raw header to refuse them instead."""
    import nibabel as nib

    if int(img.header["sform_code"]) > 0:
        return  # the sform carries the spacing
    with nib.openers.ImageOpener(str(path)) as fh:
        raw = type(img.header).from_fileobj(fh, check=False)
    pixdim = np.asarray(raw["pixdim"][1:4], dtype=float)
    if np.any(~np.isfinite(pixdim)) or np.any(np.abs(pixdim) < 1e-6):
        raise InputError(f"{path.name}: zero or missing voxel spacing (pixdim {tuple(pixdim.tolist())})")


def _read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    check_metaimage(path)
    with captured_stderr() as said:
        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError:
            img = None
    if img is None:
        raise InputError(f"{path.name}: not a readable MetaImage ({summary(said) or 'unknown reason'})")
    vol = _from_sitk(img, path)
    if said:
        vol.meta["warnings"] = list(said)
    return vol


def looks_like_dicom(path: Path) -> bool:
    """True when ``path`` has the DICOM preamble magic (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _read_dicom_series(folder: Path) -> Volume:
    import SimpleITK as sitk

    try:
        special = [p.name for p in folder.iterdir() if not p.is_dir() and not p.is_file()]
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from exc
    if special:  # GDCM would open a FIFO and wait forever, or read a device without end
        raise InputError(f"{folder.name}: holds {special[0]}, which is not a regular file (a FIFO, device, socket or "
                         "broken link); a DICOM folder must hold only files")
    with captured_stderr():
        try:
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
        except RuntimeError:
            series = ()
    if not series:
        raise InputError(f"{folder}: no DICOM series and no image file found")
    with captured_stderr():
        files_per_series = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series}
    sid = max(files_per_series, key=lambda s: len(files_per_series[s]))
    check_dicom_promise(files_per_series[sid])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files_per_series[sid])
    with captured_stderr() as said:
        try:
            img = reader.Execute()
        except RuntimeError as exc:
            img, failure = None, _short(exc)
    if img is None:
        raise InputError(f"{folder.name}: DICOM series cannot be read ({summary(said) or failure})")
    if any("missing slices" in line or "Non uniform sampling" in line for line in said):
        raise InputError(f"{folder.name}: the DICOM series has missing slices or uneven slice spacing; it cannot be "
                         "read as one volume")
    vol = _from_sitk(img, folder)
    if said:
        vol.meta["warnings"] = list(said)
    vol.meta["dicom_series"] = sid
    vol.meta["dicom_files"] = len(files_per_series[sid])
    return vol


def _from_sitk(img: Any, path: Path) -> Volume:
    import SimpleITK as sitk

    if img.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise InputError(f"{path.name}: complex-valued images are not supported (give the magnitude image)")
    arr = sitk.GetArrayFromImage(img)  # (k, j, i) or (t, k, j, i), components last
    dim = img.GetDimension()
    ncomp = img.GetNumberOfComponentsPerPixel()
    if ncomp > 1:
        arr = np.moveaxis(arr, -1, 0)  # components as the slowest axis, like a 4th dimension
        dim += 1
    arr = np.transpose(arr, tuple(range(arr.ndim))[::-1])  # -> (i, j, k[, t])
    _check_dtype(arr, path)
    ndim_sp = min(img.GetDimension(), 3)
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(img.GetDimension(), img.GetDimension())
    spacing = np.array(img.GetSpacing(), dtype=np.float64)[:ndim_sp]
    origin = np.array(img.GetOrigin(), dtype=np.float64)[:ndim_sp]
    if ndim_sp < 3:
        raise InputError(f"{path.name}: {img.GetDimension()}D image; a 3D or 4D DWI is required")
    lps = np.eye(4)
    lps[:3, :3] = direction[:3, :3] @ np.diag(spacing)
    lps[:3, 3] = origin
    return Volume(data=_as_float(arr, path), affine=_LPS_TO_RAS @ lps, header=None, source=path, meta={"itk_dim": dim})


def _check_dtype(arr: np.ndarray, path: Path) -> None:
    if np.iscomplexobj(arr):
        raise InputError(f"{path.name}: complex-valued images are not supported (give the magnitude image)")
    if arr.dtype.fields is not None or arr.dtype.kind not in "biuf":
        raise InputError(f"{path.name}: unsupported voxel type {arr.dtype} (RGB or structured data?)")


def _as_float(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype.kind == "b" or (arr.dtype.kind in "iu" and arr.dtype.itemsize == 1):
        return np.asarray(arr)
    if arr.dtype.kind == "f" and arr.dtype.itemsize <= 4:
        return np.asarray(arr, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(arr, dtype=np.float32)
    if arr.dtype.kind == "f" and np.any(np.isinf(out) & np.isfinite(arr)):
        raise InputError(f"{path.name}: voxel values exceed the single-precision range (check the header's "
                         "intensity scaling, scl_slope / scl_inter)")
    return out


def _validate(vol: Volume, path: Path) -> None:
    name = path.name or str(path)
    nd = vol.data.ndim
    if nd < 3 or nd > 4:
        raise InputError(f"{name}: {nd}D image; a 3D volume (or 4D with b-values) is required")
    if vol.data.size == 0:
        raise InputError(f"{name}: the image holds no voxels")
    if min(vol.spatial_shape) < 2:
        raise InputError(f"{name}: image of shape {vol.spatial_shape} is too small to hold a brain volume")
    if not np.all(np.isfinite(vol.affine)):
        raise InputError(f"{name}: the image geometry (affine) holds NaN or infinite values")
    spacing = np.array(vol.spacing)
    if np.any(spacing <= 1e-6):
        raise InputError(f"{name}: zero or missing voxel spacing {tuple(round(s, 6) for s in spacing)}")
    if abs(np.linalg.det(vol.affine[:3, :3])) < 1e-9:
        raise InputError(f"{name}: degenerate voxel-to-world matrix (direction cosines are not independent)")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)
