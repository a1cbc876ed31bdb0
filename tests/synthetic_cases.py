"""Test helpers: small synthetic volumes with flipped, anisotropic, oblique affines; paths of the bundled real case."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009"
EXAMPLE_STEM = EXAMPLE / "sub-strokecase0009_ses-0001"


def oblique_affine(spacing=(1.5, 1.2, 4.0), angle_deg=12.0, flip=(True, False, False), origin=(-90, 110, -40)):
    """A voxel-to-world affine with flipped axes, anisotropic spacing and an in-plane rotation."""
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    signs = np.array([-1.0 if f else 1.0 for f in flip])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(np.asarray(spacing) * signs)
    aff[:3, 3] = origin
    return aff


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, qcode: int = 1, scode: int = 1) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    nib.save(img, str(path))
    return path


def head_phantom(shape=(40, 44, 16), spacing=(3.0, 3.0, 6.0), scalp=True, lesion=True, seed=0):
    """Ellipsoid 'brain' (DWI ~100, ADC ~800) with ventricles, an optional scalp shell and a bright low-ADC lesion."""
    rng = np.random.default_rng(seed)
    idx = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    r = sum(((idx[i] - c[i]) * spacing[i] / (0.36 * shape[i] * spacing[i])) ** 2 for i in range(3))
    brain = r <= 1.0
    dwi = np.where(brain, 100.0, 0.0)
    adc = np.where(brain, 800.0, 0.0)
    vent = sum(((idx[i] - c[i]) * spacing[i] / (0.08 * shape[i] * spacing[i] + 4)) ** 2 for i in range(3)) <= 1
    dwi[vent] = 30.0
    adc[vent] = 3000.0
    les = np.zeros(shape, bool)
    if lesion:
        lc = [c[0] + 0.18 * shape[0], c[1], c[2]]
        les = sum(((idx[i] - lc[i]) * spacing[i] / 9.0) ** 2 for i in range(3)) <= 1
        dwi[les] = 220.0
        adc[les] = 450.0
    if scalp:
        shell = (r > 1.35) & (r <= 1.6)
        dwi[shell] = 45.0
    dwi = dwi + rng.normal(0, 3.0, shape)
    dwi = np.abs(dwi) if scalp else np.where(brain, np.abs(dwi), 0.0)
    return dwi.astype(np.float32), adc.astype(np.float32), brain, les


def real_slab(folder: Path, first: int, stop: int, name: str = "slab") -> tuple[Path, Path, Path]:
    """Axial slices ``first`` to ``stop - 1`` of the bundled real case, written as ``NAME_dwi/adc/msk.nii.gz``.

    Each file keeps the source's affine shifted to its first slice (nibabel's slicer), so the slab is a real scan,
    in its real geometry, that the default model segments in seconds rather than minutes on 2 cores. The bundled
    case's expert lesion lies in slices 27-47 and 56-57 (2 mm isotropic).
    """
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in ("dwi", "adc", "msk"):
        path = folder / f"{name}_{kind}.nii.gz"
        nib.save(nib.load(f"{EXAMPLE_STEM}_{kind}.nii.gz").slicer[:, :, first:stop], str(path))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def copy_entries(cache: Path, key: str, dest: Path, blobs: bool = True) -> Path:
    """Copy the model-cache entries of one network (``key``: its cache key) that an fp32 engine loads into the folder
    ``dest``: the exports of its standard parts, its constants and, with ``blobs``, OpenVINO's fp32 blobs of them,
    each with its sha256 sidecar (other batch sizes and precisions that other tests compiled are left out); returns
    ``dest``."""
    import shutil

    from infarctsam.runtime.openvino_parts import GRAPHS_VERSION, PARTS, part_stem

    tag = f"v{GRAPHS_VERSION}-{key}"
    names = [f"{part_stem(n, b)}-{tag}.onnx" for n, b in PARTS] + [f"ov-constants-{tag}.npz"]
    (dest / "openvino").mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in ("", ".sha256"):
            shutil.copy2(cache / (name + suffix), dest / (name + suffix))
    if blobs:
        for n, b in PARTS:
            for path in (cache / "openvino").glob(f"{part_stem(n, b)}-{tag}-f32-*"):
                shutil.copy2(path, dest / "openvino" / path.name)
    return dest
