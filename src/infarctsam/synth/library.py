"""A library of real infarct shapes in MNI space (SOOP), cropped to their bounding boxes.

Each entry is one binary infarct mask drawn on b=1000 DWI by the Stroke Outcome Optimization Project and warped to
MNI space (1 mm, grid 157x189x136). A small subset ships inside the package (:meth:`LesionLibrary.bundled`); the full
set of 1,448 can be read from the SOOP folder (:func:`infarctsam.synth.library_build.library_from_folder`). Masks are
stored as packed bits of their bounding-box crop plus the crop's offset on the MNI grid, with the dominant arterial
territory (from the ArterialAtlas, label of most voxels) and, where the SOOP table has them, the donor's age, sex
and NIHSS.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.errors import InputError

MNI_SHAPE = (157, 189, 136)
MNI_AFFINE = np.array([[-1.0, 0, 0, 78], [0, 1, 0, -112], [0, 0, 1, -50], [0, 0, 0, 1]])
BUNDLED_FILE = "soop_lesions.npz"

# ArterialAtlas labels 1..32 (odd = left, even = right; the atlas' own text table repeats some left names for the
# right side, corrected here) and the group column of that table.
TERRITORY_LABELS = (
    "ACAL", "ACAR", "MLSL", "MLSR", "LLSL", "LLSR", "MCAFL", "MCAFR", "MCAPL", "MCAPR", "MCATL", "MCATR",
    "MCAOL", "MCAOR", "MCAIL", "MCAIR", "PCATL", "PCATR", "PCAOL", "PCAOR", "PCTPL", "PCTPR", "ACTPL", "ACTPR",
    "BL", "BR", "SCL", "SCR", "ICL", "ICR", "LVL", "LVR",
)
_GROUP_OF_LABEL = ("ACA",) * 4 + ("MCA",) * 12 + ("PCA",) * 8 + ("VB",) * 6 + ("LV",) * 2
TERRITORY_GROUPS = ("ACA", "MCA", "PCA", "VB", "LV")


def territory_name(label: int) -> str:
    """Atlas abbreviation of a territory label (1..32), '' for 0 (outside the atlas)."""
    return TERRITORY_LABELS[label - 1] if 1 <= label <= len(TERRITORY_LABELS) else ""


def territory_group(label: int) -> str:
    """Territory group ('ACA', 'MCA', 'PCA', 'VB', 'LV') of a label, '' for 0."""
    return _GROUP_OF_LABEL[label - 1] if 1 <= label <= len(TERRITORY_LABELS) else ""


def territory_side(label: int) -> str:
    """'L' or 'R' of a label, '' for 0."""
    return ("L" if label % 2 == 1 else "R") if label >= 1 else ""


def mirror_label(label: int) -> int:
    """The same territory on the other hemisphere."""
    if label < 1:
        return label
    return label + 1 if label % 2 == 1 else label - 1


@dataclass(frozen=True)
class LesionSample:
    """One infarct mask, cropped, with where it sits on the MNI grid.

    Attributes
    ----------
    lesion_id : str
        Source name (``sub-<id>``), suffixed ``:mirrored`` when flipped left-right.
    crop : numpy.ndarray
        bool mask of the bounding box.
    offset : tuple of int
        MNI-grid index of ``crop[0, 0, 0]``.
    territory : int
        Dominant ArterialAtlas label (0 when unknown).
    mirrored : bool
        Flipped across the midline (the template is symmetric, so the shape is as plausible there).
    """

    lesion_id: str
    crop: np.ndarray
    offset: tuple[int, int, int]
    territory: int = 0
    mirrored: bool = False

    @property
    def n_voxels(self) -> int:
        """Voxel count (1 mm^3 each)."""
        return int(np.count_nonzero(self.crop))

    @property
    def volume_ml(self) -> float:
        """Volume in MNI space, mL."""
        return self.n_voxels / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-MNI affine of the crop."""
        shift = np.eye(4)
        shift[:3, 3] = self.offset
        return MNI_AFFINE @ shift

    @property
    def territory_name(self) -> str:
        """Atlas abbreviation of the dominant territory."""
        return territory_name(self.territory)

    def full(self) -> np.ndarray:
        """The mask on the full MNI grid (157x189x136, uint8)."""
        out = np.zeros(MNI_SHAPE, dtype=np.uint8)
        sl = tuple(slice(o, o + s) for o, s in zip(self.offset, self.crop.shape, strict=True))
        out[sl] = self.crop
        return out

    def mirror(self) -> LesionSample:
        """Left-right mirrored copy (MNI x -> -x)."""
        lo = MNI_SHAPE[0] - (self.offset[0] + self.crop.shape[0])
        name = self.lesion_id[: -len(":mirrored")] if self.mirrored else f"{self.lesion_id}:mirrored"
        return LesionSample(name, self.crop[::-1].copy(), (lo, self.offset[1], self.offset[2]),
                            mirror_label(self.territory), not self.mirrored)


class LesionLibrary:
    """Packed infarct masks with volume, territory and donor data.

    Build one with :meth:`bundled`, :meth:`load` or :func:`infarctsam.synth.library_build.library_from_folder`; draw
    lesions with :meth:`sample`.
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, starts: np.ndarray,
                 bits: np.ndarray, n_voxels: np.ndarray, territory: np.ndarray, weight: np.ndarray | None = None,
                 donors: dict[str, np.ndarray] | None = None, info: dict[str, Any] | None = None) -> None:
        n = len(ids)
        self.ids = np.asarray(ids, dtype=str)
        self.offsets = np.asarray(offsets, dtype=np.int32).reshape(n, 3)
        self.shapes = np.asarray(shapes, dtype=np.int32).reshape(n, 3)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.bits = np.asarray(bits, dtype=np.uint8)
        self.n_voxels = np.asarray(n_voxels, dtype=np.int64)
        self.territory = np.asarray(territory, dtype=np.int16)
        self.weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
        nan = np.full(n, np.nan)
        donors = donors or {}
        self.donors = {"age": np.asarray(donors.get("age", nan), dtype=np.float64),
                       "sex": np.asarray(donors.get("sex", np.full(n, "")), dtype=str),
                       "nihss": np.asarray(donors.get("nihss", nan), dtype=np.float64)}
        self.info = dict(info or {})
        if len(self.starts) != n + 1 or len(self.n_voxels) != n or len(self.territory) != n or len(self.weight) != n:
            raise InputError("lesion library arrays have inconsistent lengths")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def volumes_ml(self) -> np.ndarray:
        """MNI-space volume of every entry, mL."""
        return self.n_voxels / 1000.0

    # ------------------------------------------------------------------ constructors
    @classmethod
    def bundled(cls) -> LesionLibrary:
        """The subset shipped in ``infarctsam/data/soop`` (cached per process)."""
        return _bundled()

    @classmethod
    def load(cls, path: str | Path) -> LesionLibrary:
        """Read a library saved with :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path.name}: not a readable lesion library ({exc})") from exc
        required = {"ids", "offsets", "shapes", "starts", "bits", "n_voxels", "territory"}
        if not required <= arrays.keys():
            raise InputError(f"{path.name}: lesion library lacks {sorted(required - arrays.keys())}")
        info = json.loads(str(arrays["info"])) if "info" in arrays else {}
        donors = {k: arrays[f"donor_{k}"] for k in ("age", "sex", "nihss") if f"donor_{k}" in arrays}
        return cls(arrays["ids"], arrays["offsets"], arrays["shapes"], arrays["starts"], arrays["bits"],
                   arrays["n_voxels"], arrays["territory"], arrays.get("weight"), donors, info)

    def save(self, path: str | Path) -> Path:
        """Write the library as one compressed ``.npz`` (atomic)."""
        from infarctsam.io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(
                fh, ids=self.ids, offsets=self.offsets.astype(np.int16), shapes=self.shapes.astype(np.int16),
                starts=self.starts, bits=self.bits, n_voxels=self.n_voxels.astype(np.int32),
                territory=self.territory.astype(np.uint8), weight=self.weight.astype(np.float32),
                donor_age=self.donors["age"].astype(np.float32), donor_sex=self.donors["sex"],
                donor_nihss=self.donors["nihss"].astype(np.float32), info=np.array(json.dumps(self.info)))
        return path

    def subset(self, indices: np.ndarray | list[int], weight: np.ndarray | None = None) -> LesionLibrary:
        """A new library holding the given entries (packed bits copied)."""
        idx = np.asarray(indices, dtype=np.int64)
        chunks = [self.bits[self.starts[i]:self.starts[i + 1]] for i in idx]
        starts = np.concatenate([[0], np.cumsum([len(c) for c in chunks])])
        bits = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
        donors = {k: v[idx] for k, v in self.donors.items()}
        return LesionLibrary(self.ids[idx], self.offsets[idx], self.shapes[idx], starts, bits, self.n_voxels[idx],
                             self.territory[idx], self.weight[idx] if weight is None else weight, donors, self.info)

    # ------------------------------------------------------------------ access
    def get(self, index: int | str) -> LesionSample:
        """Entry by position or by id (``sub-<id>``)."""
        if isinstance(index, str):
            hits = np.nonzero(self.ids == index)[0]
            if not len(hits):
                raise InputError(f"lesion {index!r} is not in the library")
            index = int(hits[0])
        i = int(index)
        shape = tuple(int(s) for s in self.shapes[i])
        n = int(np.prod(shape))
        crop = np.unpackbits(self.bits[self.starts[i]:self.starts[i + 1]], count=n).astype(bool).reshape(shape)
        return LesionSample(str(self.ids[i]), crop, tuple(int(o) for o in self.offsets[i]),  # type: ignore[arg-type]
                            int(self.territory[i]))

    def donor(self, index: int) -> dict[str, Any]:
        """Age, sex and NIHSS of the patient the lesion came from (None where unknown)."""
        age, sex, nihss = self.donors["age"][index], self.donors["sex"][index], self.donors["nihss"][index]
        return {"age": None if np.isnan(age) else float(age), "sex": str(sex) or None,
                "nihss": None if np.isnan(nihss) else float(nihss)}

    def indices(self, volume_ml: tuple[float, float] | None = None, territory: str | None = None,
                side: str | None = None) -> np.ndarray:
        """Positions of the entries within a volume range (MNI mL), a territory and a hemisphere.

        ``territory`` is an atlas abbreviation (``'MCAFL'``) or a group (``'ACA'``, ``'MCA'``, ``'PCA'``, ``'VB'``,
        ``'LV'``); ``side`` is ``'L'`` or ``'R'``.
        """
        keep = np.ones(len(self), dtype=bool)
        if volume_ml is not None:
            lo, hi = volume_ml
            keep &= (self.volumes_ml >= lo) & (self.volumes_ml <= hi)
        labels = [int(t) for t in self.territory]
        if territory is not None:
            t = territory.upper()
            if t not in TERRITORY_LABELS and t not in TERRITORY_GROUPS:
                raise InputError(f"unknown territory {territory!r} (use one of {', '.join(TERRITORY_GROUPS)} "
                                 "or an ArterialAtlas abbreviation)")
            keep &= np.array([territory_name(lb) == t or territory_group(lb) == t for lb in labels], dtype=bool)
        if side is not None:
            if side.upper() not in ("L", "R"):
                raise InputError(f"side must be 'L' or 'R', not {side!r}")
            keep &= np.array([territory_side(lb) == side.upper() for lb in labels], dtype=bool)
        return np.nonzero(keep)[0]

    def sample(self, rng: np.random.Generator, volume_ml: tuple[float, float] | None = None,
               territory: str | None = None, side: str | None = None, weighting: str = "natural",
               mirror_prob: float = 0.0) -> LesionSample:
        """Draw one lesion.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness.
        volume_ml, territory, side
            Filters, as in :meth:`indices`. With ``mirror_prob > 0`` and a ``side``, lesions of the other side are
            eligible too and are mirrored onto the requested side.
        weighting : {'natural', 'uniform', 'log_uniform'}
            'natural' follows the SOOP volume distribution (bundled entries carry weights that undo the subset's
            selection), 'uniform' weighs entries equally, 'log_uniform' flattens the log-volume distribution.
        mirror_prob : float
            Probability of flipping the lesion to the other hemisphere.
        """
        cand = self.indices(volume_ml, territory, None if mirror_prob > 0 else side)
        if not len(cand):
            raise InputError(f"no lesion in the library matches volume {volume_ml} mL, territory {territory}")
        if weighting == "natural":
            w = self.weight[cand]
        elif weighting == "uniform":
            w = np.ones(len(cand))
        elif weighting == "log_uniform":
            w = _inverse_density(np.log(self.volumes_ml[cand]))
        else:
            raise InputError(f"unknown lesion weighting {weighting!r} (natural, uniform, log_uniform)")
        i = int(rng.choice(cand, p=w / w.sum()))
        lesion = self.get(i)
        if side is not None and mirror_prob > 0:
            if territory_side(lesion.territory) not in ("", side.upper()):
                lesion = lesion.mirror()
        elif mirror_prob > 0 and rng.random() < mirror_prob:
            lesion = lesion.mirror()
        return lesion


def _inverse_density(logv: np.ndarray, bins: int = 12) -> np.ndarray:
    if len(logv) < 2 or np.ptp(logv) == 0:
        return np.ones(len(logv))
    hist, edges = np.histogram(logv, bins=bins)
    which = np.clip(np.searchsorted(edges, logv, side="right") - 1, 0, bins - 1)
    return 1.0 / hist[which]


@functools.lru_cache(maxsize=1)
def _bundled() -> LesionLibrary:
    ref = importlib.resources.files("infarctsam") / "data" / "soop" / BUNDLED_FILE
    with importlib.resources.as_file(ref) as path:
        if not path.is_file():
            raise InputError(f"the bundled lesion library is missing from the installation: {path}")
        return LesionLibrary.load(path)
