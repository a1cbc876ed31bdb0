"""Training cases: collection from the configured sources, patient-wise split, and model-ready slices.

A case becomes slices the same way inference sees them: preprocessing (canonical orientation, brain mask,
normalisation), the model's input channels, and the square slice grid; the lesion mask follows the same path.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.errors import ConfigError, InfarctsamError
from infarctsam.io.volume import Volume
from infarctsam.model.config import ModelConfig
from infarctsam.train.config import TrainConfig


@dataclass(frozen=True)
class CaseSpec:
    """How to obtain one training case.

    Attributes
    ----------
    case_id : str
        Unique identifier (source, patient, copy).
    patient : str
        Unit of the train/validation split.
    kind : str
        ``dataset``, ``synth`` or ``synth_background``.
    seed : int
        Phantom seed (synthetic) and augmentation seed.
    dwi, mask : str or None
        Files of a dataset case.
    source : int
        Index of the data source in the configuration.
    """

    case_id: str
    patient: str
    kind: str
    seed: int
    dwi: str | None = None
    mask: str | None = None
    source: int = 0


def _stable_seed(*parts: Any) -> int:
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def collect_cases(cfg: TrainConfig) -> list[CaseSpec]:
    """Every (unaugmented) case of every source, one spec per patient copy.

    Raises
    ------
    ConfigError
        A dataset source holds no case with a lesion mask.
    """
    from infarctsam.io.dataset import find_cases

    specs: list[CaseSpec] = []
    for i, src in enumerate(cfg.data):
        if src.kind == "dataset":
            try:
                found = [c for c in find_cases(src.path) if c.mask is not None]
            except InfarctsamError as exc:
                raise ConfigError(f"data source {i}: {exc}") from exc
            if not found:
                raise ConfigError(f"data source {i}: no case with a lesion mask in {src.path}")
            for c in found[: src.n or len(found)]:
                specs.append(CaseSpec(f"d{i}-{c.case_id}", f"d{i}-{c.subject or c.case_id}", "dataset",
                                      _stable_seed(cfg.seed, i, c.case_id), str(c.dwi), str(c.mask), i))
        else:
            for k in range(src.n or 0):
                seed = _stable_seed(cfg.seed + src.seed_offset, i, k)
                specs.append(CaseSpec(f"s{i}-{k:05d}", f"s{i}-{k:05d}", src.kind, seed, source=i))
    return specs


def split_cases(cases: list[CaseSpec], val_fraction: float, seed: int) -> tuple[list[CaseSpec], list[CaseSpec]]:
    """Split by patient, separately within each source (a source with one patient stays in training)."""
    train, val = [], []
    for source in sorted({c.source for c in cases}):
        group = [c for c in cases if c.source == source]
        patients = sorted({c.patient for c in group})
        rng = np.random.default_rng(_stable_seed(seed, "split", source))
        n_val = int(round(val_fraction * len(patients))) if len(patients) > 1 else 0
        held = set(rng.permutation(patients)[:n_val].tolist())
        train += [c for c in group if c.patient not in held]
        val += [c for c in group if c.patient in held]
    return train, val


class CaseLoader:
    """Loads specs into (DWI, mask) volumes, with phantom libraries and presets cached per process."""

    def __init__(self, cfg: TrainConfig, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.cache_dir = cache_dir
        self._libraries: dict[str | None, Any] = {}
        self._backgrounds: dict[str, Volume] = {}

    def library(self, path: str | None) -> Any:
        """The lesion library of a source path (the bundled one for None), read once per loader."""
        from infarctsam.synth import LesionLibrary

        if path not in self._libraries:
            if path is None:
                self._libraries[path] = LesionLibrary.bundled()
            else:
                cache = None if self.cache_dir is None else self.cache_dir / f"soop_{_stable_seed(path):08x}.npz"
                from infarctsam.synth.library_build import library_from_folder

                self._libraries[path] = library_from_folder(path, cache=cache)
        return self._libraries[path]

    def load(self, spec: CaseSpec) -> tuple[Volume, np.ndarray]:
        """The case's DWI and lesion mask (before augmentation)."""
        if spec.kind == "dataset":
            from infarctsam.io.dwi import load_dwi
            from infarctsam.io.volume import read_volume

            dwi, _ = load_dwi(spec.dwi)
            mask = read_volume(spec.mask).data
            if mask.ndim == 4:
                mask = mask[..., 0]
            if mask.shape != dwi.spatial_shape:
                raise ConfigError(f"{spec.case_id}: mask grid differs from the DWI grid")
            return dwi, mask > 0
        from infarctsam.synth import make_phantom

        src = self.cfg.data[spec.source]
        background, real_lesion = None, None
        if spec.kind == "synth_background":
            k = spec.seed % len(src.backgrounds)
            background, real_lesion = self._background(src.backgrounds[k],
                                                       src.background_masks[k] if src.background_masks else "")
        ph = make_phantom(spec.seed, src.phantom_config(), self.library(src.path), background=background)
        lesion = ph.lesion.data > 0
        if real_lesion is not None:
            lesion |= real_lesion
        return ph.dwi, lesion

    def _background(self, path: str, mask: str) -> tuple[Volume, np.ndarray | None]:
        from infarctsam.io.dwi import load_dwi
        from infarctsam.io.volume import read_volume

        if path not in self._backgrounds:
            self._backgrounds[path] = load_dwi(path)[0]
        vol = self._backgrounds[path]
        if not mask:
            return vol, None
        data = read_volume(mask).data
        if data.shape[:3] != vol.spatial_shape:
            raise ConfigError(f"background mask {Path(mask).name} is not on its DWI's grid")
        return vol, data.reshape(vol.spatial_shape) > 0


@dataclass
class CaseSlices:
    """Model-ready slices of one case.

    Attributes
    ----------
    images : numpy.ndarray
        ``(n, 3, S, S)`` float16 input channels.
    masks : numpy.ndarray
        ``(n, S, S)`` uint8 lesion masks on the same grid.
    z : numpy.ndarray
        Axial index of each slice in the canonical volume (consecutive runs form clips).
    """

    images: np.ndarray
    masks: np.ndarray
    z: np.ndarray


def case_slices(dwi: Volume, mask: np.ndarray, model: ModelConfig, margin: int, rng: np.random.Generator,
                keep_all: bool = False) -> CaseSlices:
    """Preprocess a case and cut the slices to train on.

    Lesion cases keep the slices from ``margin`` below the lowest to ``margin`` above the highest lesion slice;
    lesion-free cases keep one random block of ``2 * margin + 2`` brain slices; ``keep_all`` keeps every brain slice.
    """
    from infarctsam.preprocess import SliceGrid, preprocess
    from infarctsam.preprocess.channels import model_channels
    from infarctsam.runtime.slices import brain_slices

    pre = preprocess(dwi)
    lesion_c = pre.reorient.to_canonical(mask.astype(np.float32))
    zs = brain_slices(pre.brain)
    if zs.size == 0:
        raise ConfigError("a training case has no brain slices")
    if not keep_all:
        lz = np.flatnonzero(lesion_c.sum(axis=(0, 1)) > 0)
        lz = lz[np.isin(lz, zs)]
        if lz.size:
            lo, hi = max(zs.min(), lz.min() - margin), min(zs.max(), lz.max() + margin)
        else:
            length = min(2 * margin + 2, zs.size)
            lo = int(zs[rng.integers(0, zs.size - length + 1)])
            hi = lo + length - 1
        zs = zs[(zs >= lo) & (zs <= hi)]
    channels = model_channels(pre)
    sp = pre.spacing
    grid = SliceGrid(pre.dwi.shape[:2], (sp[0], sp[1]), model.image_size)
    images = np.stack([grid.to_stack(channels[c][:, :, zs]) for c in range(3)], axis=1)
    masks = grid.to_stack(lesion_c[:, :, zs]) >= 0.5
    return CaseSlices(images.astype(np.float16), masks.astype(np.uint8), zs.astype(np.int32))
