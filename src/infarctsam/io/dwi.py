"""Loading diffusion-weighted images and ADC maps.

* DWI may be 3D, 4D with a trailing singleton, or 4D with several b-values. The b-values come from an explicit
  ``.bval`` file, a ``.bval`` beside the image, or a BIDS JSON sidecar. The volume(s) at the b-value closest to
  1000 s/mm^2 are used (several directions at that b are combined into the trace image, their geometric mean).
* b-values are data: every one must be a finite, non-negative number (at most 10000 s/mm^2), and the volume used
  must be diffusion-weighted (b >= 400 s/mm^2); a b=0 image is never segmented as if it were a DWI.
* ADC may be stored in m^2/s (~1e-9), mm^2/s (~1e-3), x10^-3 mm^2/s (~1), x10^-5 mm^2/s (~100) or x10^-6 mm^2/s
  (~1000). The unit is the one that puts the median of the positive voxels closest to a tissue ADC of 1e-3 mm^2/s
  (a median more than ten times off in every unit is refused), and the map is converted to x10^-6 mm^2/s.
  An ADC on another grid is resampled onto the DWI grid through world coordinates; an ADC that does not cover the
  DWI is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infarctsam.errors import InputError
from infarctsam.io.safety import read_json_limited, read_text_limited
from infarctsam.io.volume import Volume, read_volume, strip_image_suffix

TARGET_B = 1000.0
MAX_B0 = 50.0  # volumes at or below this b-value are b0 images
MIN_DIFFUSION_B = 400.0  # below this a volume is not diffusion-weighted enough to show an infarct
MAX_B = 10000.0
ADC_UNITS = {"m2/s": 1e12, "mm2/s": 1e6, "1e-3 mm2/s": 1e3, "1e-5 mm2/s": 10.0, "1e-6 mm2/s": 1.0}
TISSUE_ADC_1E6 = 1000.0  # typical brain ADC in x10^-6 mm^2/s, the anchor of unit detection


@dataclass(frozen=True)
class DwiInfo:
    """Which part of the input DWI was used.

    Attributes
    ----------
    b_value : float or None
        The b-value of the volume used (None when the file does not say).
    n_volumes : int
        Number of volumes in the input (1 for a 3D image).
    used_volumes : tuple of int
        Indices of the volumes combined (geometric mean) into the image used.
    b_source : str
        Where the b-value came from ('bval file', 'json sidecar', 'none').
    """

    b_value: float | None
    n_volumes: int
    used_volumes: tuple[int, ...]
    b_source: str

    def describe(self) -> str:
        """One plain sentence naming the volume(s) used and where the b-value came from."""
        source = {"bval file": "from the .bval file", "json sidecar": "from the JSON sidecar"}.get(self.b_source,
                                                                                                  self.b_source)
        b = "b-value not recorded in the input" if self.b_value is None else f"b = {self.b_value:g} s/mm^2, {source}"
        if self.n_volumes == 1:
            return f"the single 3D volume ({b})"
        vols = ", ".join(str(i + 1) for i in self.used_volumes)
        if len(self.used_volumes) == 1:
            return f"volume {vols} of {self.n_volumes} ({b})"
        return f"volumes {vols} of {self.n_volumes}, combined as their geometric mean (trace image; {b})"


def sidecar(path: Path, suffix: str) -> Path | None:
    """The file beside ``path`` with the same stem and ``suffix`` (``.json``, ``.bval``), if it exists."""
    if path.is_dir():
        return None
    cand = path.with_name(strip_image_suffix(path.name) + suffix)
    return cand if cand.is_file() else None


def _check_bvals(values: np.ndarray, source: str) -> np.ndarray:
    if values.size == 0:
        raise InputError(f"{source}: no b-values")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{source}: b-values must be finite numbers (found NaN or infinity)")
    if np.any(values < 0) or np.any(values > MAX_B):
        raise InputError(f"{source}: b-values must lie between 0 and {MAX_B:g} s/mm^2 (found {values.min():g} to "
                         f"{values.max():g})")
    return values


def _read_bvals(path: Path) -> np.ndarray:
    text = read_text_limited(path, "b-value file")
    try:
        values = np.array([float(x) for x in text.split()], dtype=float)
    except ValueError as exc:
        raise InputError(f"{path.name}: not a readable .bval file ({exc})") from exc
    if values.size == 0:
        raise InputError(f"{path.name}: the .bval file is empty")
    return _check_bvals(values, path.name)


def _json_bvals(path: Path) -> np.ndarray | None:
    meta = read_json_limited(path, "JSON sidecar")
    if not isinstance(meta, dict):
        raise InputError(f"{path.name}: a JSON sidecar must hold an object, not {type(meta).__name__}")
    for key in ("DiffusionBValue", "bval", "bvals", "BValues"):
        value = meta.get(key)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            raise InputError(f"{path.name}: {key} must be a number or a list of numbers")
        return _check_bvals(np.asarray(items, dtype=float), f"{path.name} ({key})")
    return None


def load_dwi(path: str | Path, bval: str | Path | None = None) -> tuple[Volume, DwiInfo]:
    """Read a DWI and reduce it to the 3D image at the b-value closest to 1000.

    Parameters
    ----------
    path : str or Path
        DWI image (NIfTI, MetaImage or DICOM folder), 3D or 4D.
    bval : str or Path, optional
        An FSL-style ``.bval`` file; by default one beside the image or a BIDS JSON sidecar is used.

    Returns
    -------
    (Volume, DwiInfo)
        The 3D DWI (float32, header kept for writing outputs) and what was used.
    """
    path = Path(path)
    vol = read_volume(path)
    data = vol.data
    bvals, source = None, "none"
    if bval is not None:
        bvals, source = _read_bvals(Path(bval)), "bval file"
    elif (bv := sidecar(path, ".bval")) is not None:
        bvals, source = _read_bvals(bv), "bval file"
    elif (js := sidecar(path, ".json")) is not None and (jb := _json_bvals(js)) is not None:
        bvals, source = jb, "json sidecar"
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 3:
        if bvals is not None and bvals.size > 1:
            raise InputError(f"{path.name}: 3D image but {bvals.size} b-values")
        b = float(bvals[0]) if bvals is not None else None
        _check_diffusion_weighted(b, path.name)
        info = DwiInfo(b_value=b, n_volumes=1, used_volumes=(0,), b_source=source if b is not None else "none")
        out = vol.with_data(np.asarray(data, dtype=np.float32))
    else:
        n = data.shape[3]
        if bvals is None:
            raise InputError(
                f"{path.name}: 4D DWI with {n} volumes but no b-values; pass --bval FILE or give a JSON sidecar"
            )
        if bvals.size != n:
            raise InputError(f"{path.name}: {n} volumes but {bvals.size} b-values")
        best = float(bvals[np.argmin(np.abs(bvals - TARGET_B))])
        _check_diffusion_weighted(best, path.name)
        idx = tuple(int(i) for i in np.flatnonzero(np.isclose(bvals, best, rtol=0.02, atol=5.0)))
        sel = np.asarray(data[..., list(idx)], dtype=np.float64)
        # Trace image: geometric mean of the diffusion directions at that b-value.
        trace = np.exp(np.mean(np.log(np.clip(sel, 1e-6, None)), axis=-1)) if len(idx) > 1 else sel[..., 0]
        trace[np.all(sel <= 0, axis=-1)] = 0.0
        info = DwiInfo(b_value=best, n_volumes=n, used_volumes=idx, b_source=source)
        out = vol.with_data(trace.astype(np.float32))
        b0 = np.flatnonzero(bvals <= MAX_B0)
        if b0.size:  # the b0 volume(s) of the same series: an ADC can be computed from them
            out.meta["b0"] = np.asarray(data[..., list(b0)], dtype=np.float32).mean(axis=-1)
            out.meta["b0_volumes"] = tuple(int(i) for i in b0)
    check_intensities(out.data, path.name, "DWI")
    out.meta.update({"dwi": info.describe(), "b_value": info.b_value})
    return out, info


def adc_from_b0(b0: np.ndarray, dwi: Volume, b_value: float | None, source: str) -> Volume:
    """The ADC of a mono-exponential decay between a b0 image and the DWI: ``ADC = ln(S0 / S_b) / b``.

    Parameters
    ----------
    b0 : numpy.ndarray
        The b0 image on the DWI's grid.
    dwi : Volume
        The diffusion-weighted image (its b-value ``b_value``).
    b_value : float or None
        The DWI's b-value in s/mm^2; None (not recorded) assumes :data:`TARGET_B`.
    source : str
        Where the b0 came from (recorded in ``meta['adc_source']``).

    Returns
    -------
    Volume
        ADC on the DWI grid, float32, x10^-6 mm^2/s (0 where either signal is not positive; clipped to 0-5000), with
        ``meta['adc_unit']``, ``meta['adc_resampled']`` and ``meta['adc_source']``.
    """
    b = float(b_value) if b_value else TARGET_B
    s0 = np.asarray(b0, dtype=np.float64)
    sb = np.asarray(dwi.data, dtype=np.float64)
    ok = (s0 > 0) & (sb > 0) & np.isfinite(s0) & np.isfinite(sb)
    adc = np.zeros(sb.shape, dtype=np.float64)
    adc[ok] = np.log(s0[ok] / sb[ok]) / b * 1e6
    adc = np.clip(adc, 0.0, 5000.0)
    said = f"b = {b:g} s/mm^2" if b_value else f"b not recorded, {TARGET_B:g} s/mm^2 assumed"
    return Volume(data=adc.astype(np.float32), affine=dwi.affine.copy(), header=None, source=None,
                  meta={"adc_unit": "1e-6 mm2/s", "adc_resampled": False,
                        "adc_source": f"computed as ln(S0/S_b)/b from {source} and the DWI ({said})"})


def read_3d(path: Path, what: str) -> Volume:
    """A 3D image (a 4D file must hold one volume), float32, with usable intensities.

    Raises
    ------
    InputError
        Unreadable, several volumes, or no signal; named ``what`` in the one-line message.
    """
    vol = read_volume(path)
    data = vol.data
    if data.ndim == 4:
        if data.shape[3] != 1:
            raise InputError(f"{path.name}: the {what} must be a 3D image, got {data.shape[3]} volumes")
        data = data[..., 0]
    vol = vol.with_data(np.asarray(data, dtype=np.float32))
    check_intensities(vol.data, path.name, what)
    return vol


def on_dwi_grid(vol: Volume, dwi: Volume, name: str, what: str, min_overlap: float) -> np.ndarray:
    """``vol`` resampled onto the DWI grid (linear; 0 outside its field of view), float64.

    Raises
    ------
    InputError
        Less than ``min_overlap`` of the DWI's voxels lie inside ``vol``.
    """
    out, inside = resample_to_grid(np.asarray(vol.data, dtype=np.float64), vol.affine, dwi.spatial_shape, dwi.affine)
    frac = float(inside.mean())
    if frac < min_overlap:
        raise InputError(f"{name}: the {what} does not overlap the DWI (only {100 * frac:.0f}% of DWI voxels lie "
                         "inside it)")
    return out


def load_b0(path: str | Path, dwi: Volume, min_overlap: float = 0.5) -> np.ndarray:
    """Read a b0 (non-diffusion-weighted) image and put it on the DWI grid.

    Raises
    ------
    InputError
        Unreadable, not 3D, without signal, or not overlapping the DWI.
    """
    path = Path(path)
    vol = read_3d(path, "b0")
    if vol.same_grid(dwi):
        return vol.data
    out = on_dwi_grid(vol, dwi, path.name, "b0", min_overlap)
    return out.astype(np.float32)


def _check_diffusion_weighted(b: float | None, name: str) -> None:
    if b is not None and b < MIN_DIFFUSION_B:
        raise InputError(f"{name}: no diffusion-weighted volume (the b-value used would be {b:g} s/mm^2; at least "
                         f"{MIN_DIFFUSION_B:g} is needed, b close to 1000 is expected)")


def check_intensities(data: np.ndarray, name: str, what: str) -> None:
    """Refuse all-NaN, all-zero, constant or negative-only images with one clear line."""
    finite = np.isfinite(data)
    if not finite.any():
        raise InputError(f"{name}: the {what} holds no finite values (all NaN or infinite)")
    vals = data[finite]
    if not np.any(vals != 0):
        raise InputError(f"{name}: the {what} is all zero")
    if float(vals.max()) == float(vals.min()):
        raise InputError(f"{name}: the {what} is constant ({float(vals.max()):g} everywhere)")
    if float(vals.max()) <= 0:
        raise InputError(f"{name}: the {what} has no positive values")


def detect_adc_unit(values: np.ndarray) -> str:
    """Guess the ADC unit from the median of positive, finite voxels.

    The unit chosen is the one of :data:`ADC_UNITS` that brings the median closest (in ratio) to a tissue ADC of
    1e-3 mm^2/s: ``'m2/s'`` (~1e-9), ``'mm2/s'`` (~1e-3), ``'1e-3 mm2/s'`` (~1), ``'1e-5 mm2/s'`` (~100) or
    ``'1e-6 mm2/s'`` (~1000).

    Raises
    ------
    InputError
        No positive value, or a median more than ten times away from tissue ADC in every unit.
    """
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        raise InputError("the ADC holds no positive values")
    med = float(np.median(v))
    ratios = {unit: abs(np.log10(med * factor / TISSUE_ADC_1E6)) for unit, factor in ADC_UNITS.items()}
    unit = min(ratios, key=ratios.__getitem__)
    if ratios[unit] > 1.0:
        raise InputError(f"the ADC's median value {med:g} matches no known unit (m2/s, mm2/s, x10^-3, x10^-5 or "
                         "x10^-6 mm2/s)")
    return unit


def load_adc(path: str | Path, dwi: Volume, min_overlap: float = 0.5) -> Volume:
    """Read an ADC map, convert it to x10^-6 mm^2/s and put it on the DWI grid.

    Parameters
    ----------
    path : str or Path
        ADC image in any of the supported formats and units.
    dwi : Volume
        The DWI whose grid the ADC must match.
    min_overlap : float
        Smallest fraction of DWI voxels that must lie inside the ADC's field of view when resampling is needed.

    Returns
    -------
    Volume
        ADC on the DWI grid, float32, x10^-6 mm^2/s, with ``meta['adc_unit']`` and ``meta['adc_resampled']``.
    """
    path = Path(path)
    adc = read_3d(path, "ADC")
    unit = detect_adc_unit(adc.data)
    scaled = np.nan_to_num(adc.data.astype(np.float64) * ADC_UNITS[unit], nan=0.0, posinf=0.0, neginf=0.0)
    resampled = False
    if adc.same_grid(dwi):
        out = scaled
    else:
        out = on_dwi_grid(adc.with_data(scaled), dwi, path.name, "ADC", min_overlap)
        resampled = True
    return Volume(
        data=out.astype(np.float32),
        affine=dwi.affine.copy(),
        header=None,
        source=path,
        meta={"adc_unit": unit, "adc_resampled": resampled},
    )


def resample_to_grid(
    data: np.ndarray, src_affine: np.ndarray, dst_shape: tuple[int, int, int], dst_affine: np.ndarray, order: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``data`` onto another grid through world coordinates.

    Returns the resampled array (0 outside the source) and a boolean array of the destination voxels that fall
    inside the source field of view.
    """
    from scipy.ndimage import map_coordinates

    vox2vox = np.linalg.inv(src_affine) @ dst_affine
    grid = np.indices(dst_shape, dtype=np.float64).reshape(3, -1)
    coords = vox2vox[:3, :3] @ grid + vox2vox[:3, 3:4]
    shape = np.array(data.shape[:3])[:, None]
    inside = np.all((coords >= -0.5) & (coords <= shape - 0.5), axis=0)
    out = map_coordinates(data, coords, order=order, mode="nearest", prefilter=False)
    out[~inside] = 0.0
    return out.reshape(dst_shape), inside.reshape(dst_shape)
