"""Reading the SOOP lesion folder and choosing the subset shipped with the package.

The bundled ``infarctsam/data/soop/soop_lesions.npz`` is reproducible::

    from infarctsam.synth.library_build import build_bundled
    build_bundled("../shared/data/soop-lesions-mni", "src/infarctsam/data/soop/soop_lesions.npz")
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from infarctsam.errors import InputError
from infarctsam.synth.library import MNI_AFFINE, MNI_SHAPE, LesionLibrary, territory_group

ATLAS_FILE = "ArterialAtlas136.nii.gz"
PARTICIPANTS_FILE = "participants.tsv"
MAX_PLAUSIBLE_ML = 500.0
MIN_BRAIN_FRACTION = 0.8


def _lesion_files(folder: Path) -> tuple[Path, list[Path]]:
    root = folder.parent if folder.name == "lesions" else folder
    sub = root / "lesions"
    files = sorted((sub if sub.is_dir() else root).glob("*.nii.gz"))
    files = [f for f in files if f.name not in (ATLAS_FILE,) and not f.name.startswith("lesion_mean")]
    if not files:
        raise InputError(f"{folder}: no lesion masks (*.nii.gz) found")
    return root, files


def _subject_id(path: Path) -> str:
    name = path.name.split("_")[0]
    digits = name.split("sub-")[-1]
    return f"sub-{digits}"


def _read_mask(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    import nibabel as nib


    try:
        img = nib.load(str(path))
        arr = np.asarray(img.dataobj) > 0
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InputError(f"{path.name}: unreadable lesion mask ({exc})") from exc
    if arr.shape != MNI_SHAPE or not np.allclose(img.affine, MNI_AFFINE, atol=1e-3):
        raise InputError(f"{path.name}: not on the SOOP MNI grid {MNI_SHAPE}")
    if not arr.any():
        return None
    idx = np.nonzero(arr)
    lo = np.array([int(i.min()) for i in idx])
    hi = np.array([int(i.max()) + 1 for i in idx])
    return arr[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))], lo


def _folder_key(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def library_from_folder(path: str | Path, cache: str | Path | None = None, plausible_only: bool = True,
                        workers: int = 2) -> LesionLibrary:
    """Read every SOOP mask of a folder (``lesions/*.nii.gz`` plus the atlas and participants table).

    Reading 1,448 masks takes about a minute; give ``cache`` (an ``.npz`` path) to save the packed result and
    reuse it on later calls with the same folder contents.

    Parameters
    ----------
    path : str or Path
        The ``soop-lesions-mni`` folder (or its ``lesions`` subfolder).
    cache : str or Path, optional
        Packed copy to read if it matches the folder, written otherwise.
    plausible_only : bool
        Drop masks larger than 500 mL or with less than 80 % of their voxels inside the template brain
        (registration failures).
    workers : int
        Threads reading files.
    """
    folder = Path(path)
    cls = LesionLibrary
    import nibabel as nib

    if not folder.is_dir():
        raise InputError(f"lesion folder not found: {folder}")
    root, files = _lesion_files(folder)
    key = _folder_key(files)
    if cache is not None and Path(cache).is_file():
        lib = cls.load(cache)
        if lib.info.get("folder_key") == key and lib.info.get("plausible_only") == plausible_only:
            return lib
    donors_table = _read_participants(root / PARTICIPANTS_FILE)
    atlas = None
    if (root / ATLAS_FILE).is_file():
        atlas = np.asarray(nib.load(str(root / ATLAS_FILE)).dataobj).astype(np.int16)
    brain = _template_brain_on_mni_grid() if plausible_only else None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        masks = list(pool.map(_read_mask, files))
    ids, offsets, shapes, chunks, nvox, terr, age, sex, nihss = [], [], [], [], [], [], [], [], []
    for path, item in zip(files, masks, strict=True):
        if item is None:
            continue
        crop, lo = item
        sl = tuple(slice(a, a + s) for a, s in zip(lo, crop.shape, strict=True))
        n = int(crop.sum())
        if brain is not None and (n / 1000.0 > MAX_PLAUSIBLE_ML or brain[sl][crop].mean() < MIN_BRAIN_FRACTION):
            continue
        label = 0
        if atlas is not None:
            lab = atlas[sl][crop]
            lab = lab[(lab > 0) & (lab <= 32)]
            label = int(np.bincount(lab).argmax()) if lab.size else 0
        sid = _subject_id(path)
        row = donors_table.get(sid, {})
        ids.append(sid)
        offsets.append(lo)
        shapes.append(crop.shape)
        chunks.append(np.packbits(crop.ravel()))
        nvox.append(n)
        terr.append(label)
        age.append(row.get("age", np.nan))
        sex.append(row.get("sex", ""))
        nihss.append(row.get("nihss", np.nan))
    starts = np.concatenate([[0], np.cumsum([len(c) for c in chunks])])
    info = {"source": str(root), "folder_key": key, "plausible_only": plausible_only, "n_files": len(files),
            "licence": "SOOP data CC0-1.0; MNI-warped masks BSD-2-Clause "
                       "(neurolabusc/StrokeOutcomeOptimizationProjectDemo)"}
    lib = cls(np.array(ids), np.array(offsets), np.array(shapes), starts, np.concatenate(chunks), np.array(nvox),
              np.array(terr), None, {"age": np.array(age), "sex": np.array(sex), "nihss": np.array(nihss)}, info)
    if cache is not None:
        lib.save(cache)
    return lib


def _read_participants(path: Path) -> dict[str, dict[str, object]]:
    if not path.is_file():
        return {}
    import pandas as pd

    table = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=True)
    out: dict[str, dict[str, object]] = {}
    for _, row in table.iterrows():
        sex = row.get("sex")
        out[str(row["participant_id"])] = {"age": _number(row.get("age")), "nihss": _number(row.get("nihss")),
                                           "sex": str(sex) if isinstance(sex, str) else ""}
    return out


def _number(value: object) -> float:
    """A table cell as a float ('89+' -> 89.0), NaN when missing or not numeric."""
    text = str(value).strip().rstrip("+")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _template_brain_on_mni_grid() -> np.ndarray:
    """The template brain mask resampled (integer index shift) onto the SOOP MNI grid."""
    from infarctsam.synth.template import grid_index_map, load_template

    tpl = load_template()
    sign, off = grid_index_map(MNI_AFFINE, tpl.affine)
    idx = [sign[a] * np.arange(MNI_SHAPE[a]) + off[a] for a in range(3)]
    valid = [(i >= 0) & (i < tpl.shape[a]) for a, i in enumerate(idx)]
    out = np.zeros(MNI_SHAPE, dtype=bool)
    sub = tpl.brain[np.ix_(idx[0][valid[0]], idx[1][valid[1]], idx[2][valid[2]])]
    out[np.ix_(valid[0], valid[1], valid[2])] = sub
    return out


def select_bundled_subset(lib: LesionLibrary, n: int = 160, min_ml: float = 0.02, seed: int = 0) -> np.ndarray:
    """Choose ``n`` entries that span the volume range and the territories.

    Half of the entries are spread evenly over log volume (so tiny lacunes and large MCA infarcts are all present),
    half follow the library's own volume quantiles; within each stratum the entry whose territory group is rarest
    so far is taken. Returns positions in ``lib``.
    """

    rng = np.random.default_rng(seed)
    vol = lib.volumes_ml
    pool = np.nonzero(vol >= min_ml)[0]
    order = pool[np.argsort(vol[pool], kind="stable")]
    logv = np.log(vol[order])
    n_log = n // 2
    edges = np.linspace(logv[0], logv[-1], n_log + 1)
    strata = [order[(logv >= a) & (logv <= b)] for a, b in zip(edges[:-1], edges[1:], strict=True)]
    q_edges = np.linspace(0, len(order), n - n_log + 1).astype(int)
    strata += [order[a:b] for a, b in zip(q_edges[:-1], q_edges[1:], strict=True)]
    counts: dict[str, int] = {}
    chosen: list[int] = []
    for stratum in strata:
        cand = [int(i) for i in stratum if int(i) not in chosen]
        if not cand:
            continue
        rng.shuffle(cand)
        best = min(cand, key=lambda i: counts.get(territory_group(int(lib.territory[i])), 0))
        chosen.append(best)
        g = territory_group(int(lib.territory[best]))
        counts[g] = counts.get(g, 0) + 1
    return np.array(sorted(chosen, key=lambda i: vol[i]))


def natural_weights(full_volumes_ml: np.ndarray, subset_volumes_ml: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-entry weights making a subset's log-volume histogram follow the full library's."""
    lo = min(np.log(full_volumes_ml).min(), np.log(subset_volumes_ml).min())
    hi = max(np.log(full_volumes_ml).max(), np.log(subset_volumes_ml).max())
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    full_h, _ = np.histogram(np.log(full_volumes_ml), edges)
    sub_h, _ = np.histogram(np.log(subset_volumes_ml), edges)
    which = np.clip(np.searchsorted(edges, np.log(subset_volumes_ml), side="right") - 1, 0, bins - 1)
    w = full_h[which] / np.maximum(sub_h[which], 1)
    return np.maximum(w, 1e-3) / np.maximum(w, 1e-3).sum() * len(w)


def build_bundled(folder: str | Path, out: str | Path, n: int = 160, seed: int = 0,
                  cache: str | Path | None = None) -> Path:
    """Read the SOOP folder (or its ``cache``), choose the spanning subset and write the bundled ``.npz``."""
    full = library_from_folder(folder, cache=cache)
    idx = select_bundled_subset(full, n=n, seed=seed)
    sub = full.subset(idx, weight=natural_weights(full.volumes_ml, full.volumes_ml[idx]))
    sub.info = {**full.info, "source": "SOOP (OpenNeuro ds004889 v1.1.2) lesion masks in MNI space",
                "n_full_plausible": len(full), "selection": json.dumps({"n": n, "seed": seed, "min_ml": 0.02})}
    return sub.save(out)
