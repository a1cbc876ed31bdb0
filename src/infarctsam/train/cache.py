"""On-disk cache of training slices and their frozen-encoder features.

The image encoder is frozen during training, so its output for every training slice is computed once and stored
(float16, memory-mapped). When the encoder's neck is trained, the cache holds the trunk's features before the neck.
Each case is made and encoded once into a case store, one file per case named by the hash of what determines it
(:func:`case_key`): an interrupted build continues where it stopped, and runs that share the store (the
leave-one-out folds and the final network share every synthetic case) make each case once. A split's cache is then
assembled from its entries in a temporary folder and renamed; a finished cache is reused by every later run (and
resume) with the same data configuration. Cases whose input is unusable are left out and listed in
``skipped.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infarctsam.errors import ConfigError, InfarctsamError
from infarctsam.io.atomic import atomic_path
from infarctsam.train.config import TrainConfig
from infarctsam.train.data import CaseLoader, CaseSlices, CaseSpec, case_slices


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

    ``onnx`` is a compiled trunk (:class:`~infarctsam.runtime.onnx_trunk.OnnxTrunk`, or :class:`OpenVinoTrunk` in
    bfloat16) computing the same features faster: called with float32 images and a batch size.
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


class OpenVinoTrunk:
    """The frozen trunk compiled by OpenVINO in bfloat16, for runs that train in bfloat16 on a CPU with native
    bfloat16: about 2.8x faster than ONNX Runtime in float32 on an AMX CPU (24 slices of 128 px: 1.1 s against
    3.2 s), features within about 3% (relative mean absolute difference), less than the augmentation changes them.

    Parameters
    ----------
    trunk : torch.nn.Module
        The encoder's trunk.
    image_size : int
        Input size in pixels.
    pre_neck : bool
        Features before the neck.
    threads : int
        Inference threads.
    """

    def __init__(self, trunk, image_size: int, pre_neck: bool, threads: int) -> None:
        import openvino as ov
        import torch

        class _Features(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.trunk = trunk

            def forward(self, x):
                return self.trunk.forward_features(x) if pre_neck else self.trunk(x)

        example = torch.zeros(2, 3, image_size, image_size)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: fixed size
            graph = ov.convert_model(_Features().eval(), example_input=example, input=[(-1, 3, image_size, image_size)])
        self._compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                                 "INFERENCE_NUM_THREADS": threads})

    def __call__(self, images: np.ndarray, batch: int) -> np.ndarray:
        """Features of ``(n, 3, S, S)`` float32 images, float32."""
        return np.concatenate([np.asarray(self._compiled(images[i: i + batch])[0])
                               for i in range(0, len(images), batch)])


class TrunkRuntime:
    """The frozen trunk on ONNX Runtime on CPU where available (same features, about twice as fast), or on OpenVINO in
    bfloat16 for a bfloat16 run, exported on first use and shared by the splits of a run (an export takes seconds).

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
        """The compiled trunk: :class:`OpenVinoTrunk` for a bfloat16 run on a CPU, else
        :class:`~infarctsam.runtime.onnx_trunk.OnnxTrunk`, or None where neither is used (PyTorch encodes)."""
        if not self._made:
            self._made = True
            import torch

            from infarctsam.runtime.onnx_trunk import OnnxTrunk, onnxruntime_available

            cfg = self.cfg
            if _encode_bf16(cfg):
                self._onnx = OpenVinoTrunk(self.model.sam.image_encoder.trunk, cfg.model.image_size,
                                           self.pre_neck, torch.get_num_threads())
            elif not cfg.model.is_sam2 and cfg.device == "cpu" and onnxruntime_available():
                self._onnx = OnnxTrunk(self.model.sam.image_encoder.trunk, cfg.model.image_size,
                                       pre_neck=self.pre_neck, threads=torch.get_num_threads(), cache_dir=None)
        return self._onnx


CASE_FORMAT = 1
"""Version of a cached case's content: bump it when slicing, preprocessing or the phantoms change what a case
holds, so that stale entries of a shared case store are not reused."""


def case_key(cfg: TrainConfig, spec: CaseSpec, copy: int, augment: bool, keep_all: bool) -> str:
    """Content key of one cached case: everything that determines its slices and features (its source, seed, files,
    augmented copy and augmentation, the slicing and the frozen encoder), and nothing about the run it serves, so
    that runs sharing a store (leave-one-out folds and the final network) make each case once."""
    src = cfg.data[spec.source].model_dump(exclude={"n", "repeat"})
    keys = {"format": CASE_FORMAT, "kind": spec.kind, "seed": spec.seed, "dwi": spec.dwi, "mask": spec.mask,
            "source": src, "copy": copy, "augment": cfg.augment.model_dump() if augment else None,
            "keep_all": keep_all, "image_size": cfg.model.image_size, "margin": cfg.margin_slices,
            "start": cfg.start, "pre_neck": cfg.stage1.train_neck}
    if _encode_bf16(cfg):
        keys["encoder"] = "openvino-bf16"
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:20]


def _encode_bf16(cfg: TrainConfig) -> bool:
    """True when the run trains in bfloat16 on a CPU and OpenVINO encodes its cases in bfloat16."""
    from infarctsam.runtime.openvino_parts import openvino_available
    from infarctsam.train.precision import resolve_precision

    return (cfg.device == "cpu" and not cfg.model.is_sam2 and resolve_precision(cfg.precision, cfg.device) == "bf16"
            and openvino_available())


def case_store(cfg: TrainConfig) -> Path:
    """Folder of the run's per-case entries: ``cfg.case_cache`` (shared between runs), else inside the run folder."""
    return Path(cfg.case_cache) if cfg.case_cache else Path(cfg.output) / "cache" / "cases"


def build_cache(folder: Path, specs: list[CaseSpec], cfg: TrainConfig, model, augment: bool, keep_all: bool,
                loader: CaseLoader, progress: bool = True, trunk: TrunkRuntime | None = None) -> SliceCache:
    """Build (or reuse) the cache of a split.

    Each case is made once into the case store (:func:`case_store`; one file per case, named by :func:`case_key`),
    where later runs with the same case find it; an interrupted build continues case by case. The split's cache is
    then assembled from the entries in case order. With ``cfg.cache_workers > 1`` the cases are made (phantom,
    augmentation, preprocessing) in that many processes while this one encodes them.

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

    if (folder / "cases.json").exists():
        return SliceCache.open(folder)
    store = case_store(cfg)
    store.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, r) for spec in specs for r in range(cfg.data[spec.source].repeat if augment else 1)]
    files = [store / f"{case_key(cfg, spec, r, augment, keep_all)}.npz" for spec, r in jobs]
    pre_neck = cfg.stage1.train_neck
    trunk = trunk if trunk is not None and trunk.pre_neck == pre_neck else TrunkRuntime(model, cfg, pre_neck)
    todo = [k for k, f in enumerate(files) if not f.exists()]
    skipped: dict[int, dict] = {}
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"caching {folder.name}",
               disable=not progress, unit="case")
    for k, made in _made_cases(todo, jobs, cfg, augment, keep_all, loader):
        if isinstance(made, str):  # a broken case is reported and left out, not fatal
            skipped[k] = {"case_id": jobs[k][0].case_id, "error": made}
        else:
            feats = encoder_features(model, made.images, pre_neck, onnx=trunk.get())
            with atomic_path(files[k]) as path:
                with path.open("wb") as fh:
                    np.savez(fh, images=made.images, masks=made.masks, feats=feats, z=made.z)
        bar.update(1)
    bar.close()
    return _assemble(folder, jobs, files, skipped)


def _made_cases(todo: list[int], jobs: list[tuple[CaseSpec, int]], cfg: TrainConfig, augment: bool, keep_all: bool,
                loader: CaseLoader) -> Iterator[tuple[int, CaseSlices | str]]:
    """The cases ``todo`` made (slices, or the one-line reason a case is unusable), in order, in this process or in
    ``cfg.cache_workers`` processes (spawned: no inherited thread pools)."""
    workers = min(cfg.cache_workers, len(todo))
    if workers <= 1:
        for k in todo:
            yield k, make_case(cfg, jobs[k][0], jobs[k][1], augment, keep_all, loader)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(cfg, loader.cache_dir)) as pool:
        futures = [(k, pool.submit(_make_in_worker, jobs[k][0], jobs[k][1], augment, keep_all)) for k in todo]
        for k, fut in futures:
            yield k, fut.result()


def make_case(cfg: TrainConfig, spec: CaseSpec, copy: int, augment: bool, keep_all: bool,
              loader: CaseLoader) -> CaseSlices | str:
    """One case's model-ready slices (loaded, augmented with the copy's own seed, sliced), or why it is unusable."""
    from infarctsam.train.augment import augment_case

    rng = np.random.default_rng([spec.seed, copy])
    try:
        dwi, mask = loader.load(spec)
        if augment:
            dwi, mask = augment_case(rng, dwi, mask, cfg.augment)
        return case_slices(dwi, mask, cfg.model, cfg.margin_slices, rng, keep_all=keep_all)
    except InfarctsamError as exc:
        return str(exc)


_WORKER: dict = {}


def _init_worker(cfg: TrainConfig, cache_dir: Path | None) -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["cfg"], _WORKER["loader"] = cfg, CaseLoader(cfg, cache_dir)


def _make_in_worker(spec: CaseSpec, copy: int, augment: bool, keep_all: bool) -> CaseSlices | str:
    return make_case(_WORKER["cfg"], spec, copy, augment, keep_all, _WORKER["loader"])


def _assemble(folder: Path, jobs: list[tuple[CaseSpec, int]], files: list[Path],
              skipped: dict[int, dict]) -> SliceCache:
    """Concatenate the split's case entries (in job order) into its memory-mapped cache folder, atomically."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts, cases, start = [], [], 0
    for k, ((spec, r), done) in enumerate(zip(jobs, files, strict=True)):
        if k in skipped or not done.exists():
            continue
        with np.load(done) as arrays:
            part = (arrays["images"], arrays["masks"], arrays["feats"])
            z = arrays["z"]
        parts.append(part)
        n = len(z)
        cases.append({"case_id": f"{spec.case_id}#{r}", "start": start, "n": n, "z": z.tolist(),
                      "lesion_slices": int(part[1].reshape(n, -1).max(axis=1).sum())})
        start += n
    if not parts:
        raise ConfigError(f"no usable case for {folder.name}: {list(skipped.values())[:1]}")
    if skipped:
        (tmp / "skipped.json").write_text(json.dumps(list(skipped.values()), indent=1), encoding="utf-8")
    for name, k in (("images", 0), ("masks", 1), ("feats", 2)):
        np.save(tmp / f"{name}.npy", np.concatenate([p[k] for p in parts]))
    (tmp / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return SliceCache.open(folder)
