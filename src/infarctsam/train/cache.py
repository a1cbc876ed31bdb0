"""On-disk cache of training slices and their frozen-encoder features.

The image encoder is frozen during training, so its output for every training slice is computed once and stored
(float16, memory-mapped). When the encoder's neck is trained, the cache holds the trunk's features before the neck.
A cache is built in a temporary folder, one file per finished case (an interrupted build continues where it
stopped), then assembled and renamed; a finished cache is reused by every later run (and resume) with the same data
configuration. Cases whose input is unusable are left out and listed in ``skipped.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infarctsam.errors import ConfigError, InfarctsamError
from infarctsam.io.atomic import atomic_path
from infarctsam.train.config import TrainConfig
from infarctsam.train.data import CaseLoader, CaseSpec, case_slices


@dataclass
class SliceCache:
    """Memory-mapped slices of one split.

    Attributes
    ----------
    images : numpy.ndarray
        ``(N, 3, S, S)`` float16 model inputs.
    masks : numpy.ndarray
        ``(N, S, S)`` uint8 lesion masks.
    feats : numpy.ndarray
        ``(N, C, h, w)`` float16 encoder features (before the neck when the neck is trained).
    cases : list of dict
        ``case_id``, ``start`` row and ``n`` rows per case, and the axial indices ``z``.
    """

    images: np.ndarray
    masks: np.ndarray
    feats: np.ndarray
    cases: list[dict]

    @classmethod
    def open(cls, folder: Path) -> SliceCache:
        """Open a finished cache folder."""
        return cls(np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy", mmap_mode="r"),
                   np.load(folder / "feats.npy", mmap_mode="r"),
                   json.loads((folder / "cases.json").read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def lesion_rows(self) -> np.ndarray:
        """Rows whose mask holds lesion."""
        return np.flatnonzero(self.masks.reshape(len(self), -1).max(axis=1) > 0)

    def clip_starts(self, length: int) -> np.ndarray:
        """First rows of every run of ``length`` consecutive slices of one case."""
        starts = []
        for case in self.cases:
            z = np.asarray(case["z"])
            for i in range(0, case["n"] - length + 1):
                if z[i + length - 1] - z[i] == length - 1:
                    starts.append(case["start"] + i)
        return np.asarray(starts, dtype=np.int64)


def encoder_features(model, images: np.ndarray, pre_neck: bool, batch: int = 8, onnx=None) -> np.ndarray:
    """Frozen encoder output for ``(n, 3, S, S)`` images (trunk features when ``pre_neck``), float16.

    ``onnx`` is an :class:`~infarctsam.runtime.onnx_trunk.OnnxTrunk` computing the same features faster.
    """
    import torch

    if onnx is not None:
        return onnx(np.asarray(images, dtype=np.float32), batch).astype(np.float16)
    trunk = model.sam.image_encoder.trunk
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.asarray(images[i: i + batch], dtype=np.float32))
            f = trunk.forward_features(x) if pre_neck else trunk(x)
            out.append(f.to(torch.float16).numpy())
    return np.concatenate(out)


class TrunkRuntime:
    """The frozen trunk on ONNX Runtime on CPU where available (same features, about twice as fast), exported on first
    use and shared by the splits of a run (an export takes seconds).

    Parameters
    ----------
    model : PromptFreeSam
        Model whose trunk is exported.
    cfg : TrainConfig
        Run configuration.
    pre_neck : bool
        Export the trunk's features before the neck.
    """

    def __init__(self, model, cfg: TrainConfig, pre_neck: bool) -> None:
        self.model, self.cfg, self.pre_neck = model, cfg, pre_neck
        self._made = False
        self._onnx = None

    def get(self):
        """The :class:`~infarctsam.runtime.onnx_trunk.OnnxTrunk`, or None where ONNX Runtime is not used."""
        if not self._made:
            self._made = True
            import torch

            from infarctsam.runtime.onnx_trunk import OnnxTrunk, onnxruntime_available

            cfg = self.cfg
            if not cfg.model.is_sam2 and cfg.device == "cpu" and onnxruntime_available():
                self._onnx = OnnxTrunk(self.model.sam.image_encoder.trunk, cfg.model.image_size,
                                       pre_neck=self.pre_neck, threads=torch.get_num_threads(), cache_dir=None)
        return self._onnx


def build_cache(folder: Path, specs: list[CaseSpec], cfg: TrainConfig, model, augment: bool, keep_all: bool,
                loader: CaseLoader, progress: bool = True, trunk: TrunkRuntime | None = None) -> SliceCache:
    """Build (or reuse) the cache of a split.

    Parameters
    ----------
    folder : Path
        Final cache folder; reused when it exists.
    specs : list of CaseSpec
        Cases of the split (each dataset case is repeated ``repeat`` times with different augmentations).
    cfg : TrainConfig
        Run configuration.
    model : PromptFreeSam
        Model whose frozen encoder produces the features.
    augment : bool
        Apply the configured augmentation.
    keep_all : bool
        Keep every brain slice (validation) instead of the lesion range.
    loader : CaseLoader
        Case loader.
    progress : bool
        Show a progress bar.
    trunk : TrunkRuntime, optional
        The trunk's runtime, shared with the run's other splits (default: one for this split).
    """
    from tqdm import tqdm

    from infarctsam.train.augment import augment_case

    if (folder / "cases.json").exists():
        return SliceCache.open(folder)
    tmp = folder.with_name(folder.name + ".partial")  # one file per finished case: an interrupted build resumes
    tmp.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, r) for spec in specs for r in range(cfg.data[spec.source].repeat if augment else 1)]
    parts, cases, start, skipped = [], [], 0, []
    pre_neck = cfg.stage1.train_neck
    trunk = trunk if trunk is not None and trunk.pre_neck == pre_neck else TrunkRuntime(model, cfg, pre_neck)
    for k, (spec, r) in enumerate(tqdm(jobs, desc=f"caching {folder.name}", disable=not progress, unit="case")):
        done = tmp / f"case{k:05d}.npz"
        if not done.exists():
            rng = np.random.default_rng([spec.seed, r])
            try:
                dwi, mask = loader.load(spec)
                if augment:
                    dwi, mask = augment_case(rng, dwi, mask, cfg.augment)
                sl = case_slices(dwi, mask, cfg.model, cfg.margin_slices, rng, keep_all=keep_all)
            except InfarctsamError as exc:  # a broken case is reported and left out, not fatal
                skipped.append({"case_id": spec.case_id, "error": str(exc)})
                continue
            feats = encoder_features(model, sl.images, pre_neck, onnx=trunk.get())
            with atomic_path(done) as path:
                with path.open("wb") as fh:
                    np.savez(fh, images=sl.images, masks=sl.masks, feats=feats, z=sl.z)
        with np.load(done) as arrays:
            part = (arrays["images"], arrays["masks"], arrays["feats"])
            z = arrays["z"]
        parts.append(part)
        n = len(z)
        cases.append({"case_id": f"{spec.case_id}#{r}", "start": start, "n": n, "z": z.tolist(),
                      "lesion_slices": int(part[1].reshape(n, -1).max(axis=1).sum())})
        start += n
    if not parts:
        raise ConfigError(f"no usable case for {folder.name}: {skipped[:1]}")
    if skipped:
        (tmp / "skipped.json").write_text(json.dumps(skipped, indent=1), encoding="utf-8")
    for name, k in (("images", 0), ("masks", 1), ("feats", 2)):
        np.save(tmp / f"{name}.npy", np.concatenate([p[k] for p in parts]))
    (tmp / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    for done in tmp.glob("case*.npz"):
        done.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return SliceCache.open(folder)
