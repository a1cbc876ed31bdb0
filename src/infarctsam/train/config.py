"""Typed training configuration, read from YAML or JSON and saved fully resolved with each run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from infarctsam.errors import ConfigError
from infarctsam.model.config import ModelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # "lr: .inf" is refused, not trained forever


class DataSource(_Strict):
    """One source of training cases.

    Attributes
    ----------
    kind : str
        ``dataset``: a BIDS / ISLES'22 root or flat folder with lesion masks (cases without a mask are skipped);
        ``synth``: synthetic phantoms painted into the MNI template (:mod:`infarctsam.synth`);
        ``synth_background``: synthetic infarcts painted into the stroke-free real DWIs listed in ``backgrounds``.
    path : str, optional
        ``dataset``: the root. ``synth*``: a SOOP lesion folder (``soop-lesions-mni``) to draw shapes from; the
        bundled subset when omitted.
    n : int, optional
        ``synth*``: number of phantoms; ``dataset``: at most this many cases.
    repeat : int
        Augmented copies of each case (each copy is a separately augmented volume).
    preset : str
        ``synth*``: phantom preset (``default`` randomised, ``isles``, ``clinical``).
    backgrounds : list of str
        ``synth_background``: real DWI files to paint synthetic infarcts into.
    background_masks : list of str
        ``synth_background``: the expert lesion masks of those DWIs, in the same order (empty string for a stroke-free
        scan); the training label is the union of the real and the painted lesions.
    seed_offset : int
        Added to the run seed for this source's phantoms.
    phantom : dict
        ``synth*``: fields of :class:`~infarctsam.synth.PhantomConfig` changed from the preset, e.g. embolic showers
        ``{p_shower: 0.9, shower_size: [5, 40], shower_volume_ml: [0.01, 0.5], dwi_ratio: [1.2, 2.1]}``.
    """

    kind: Literal["dataset", "synth", "synth_background"]
    path: str | None = None
    n: int | None = Field(None, ge=1)
    repeat: int = Field(1, ge=1)
    preset: Literal["default", "isles", "clinical"] = "default"
    backgrounds: list[str] = Field(default_factory=list)
    background_masks: list[str] = Field(default_factory=list)
    seed_offset: int = 0
    phantom: dict[str, Any] = Field(default_factory=dict)

    def phantom_config(self) -> Any:
        """The :class:`~infarctsam.synth.PhantomConfig` of a ``synth*`` source: its preset with ``phantom`` applied.

        Raises
        ------
        ConfigError
            An unknown field or an invalid value.
        """
        from dataclasses import fields

        from infarctsam.synth import PhantomConfig

        base = {"default": PhantomConfig, "isles": PhantomConfig.isles_like,
                "clinical": PhantomConfig.clinical}[self.preset]()
        known = {f.name for f in fields(PhantomConfig)}
        unknown = sorted(set(self.phantom) - known)
        if unknown:
            raise ConfigError(f"phantom: unknown field {unknown[0]!r}")
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in self.phantom.items()}
        try:
            return base.with_(**changes)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"phantom: {' '.join(str(exc).split())[:150]}") from exc

    @model_validator(mode="after")
    def _check(self) -> DataSource:
        if self.kind == "dataset" and not self.path:
            raise ValueError("a dataset source needs a path")
        if self.kind != "dataset" and self.n is None:
            raise ValueError(f"a {self.kind} source needs n (number of phantoms)")
        if self.kind == "synth_background" and not self.backgrounds:
            raise ValueError("a synth_background source needs backgrounds (real DWI files)")
        if self.background_masks and len(self.background_masks) != len(self.backgrounds):
            raise ValueError("background_masks needs one entry (or an empty string) per background")
        if self.phantom:
            if self.kind == "dataset":
                raise ValueError("phantom changes apply to synth sources only")
            try:
                self.phantom_config()
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self


class AugmentConfig(_Strict):
    """DWI augmentation applied to each volume before preprocessing (probabilities and ranges)."""

    p: float = Field(0.8, ge=0.0, le=1.0)
    intensity_scale: tuple[float, float] = (0.5, 2.0)
    gamma: tuple[float, float] = (0.75, 1.35)
    bias_amplitude: float = Field(0.25, ge=0.0, le=0.9)
    rician_snr: tuple[float, float] = (12.0, 60.0)
    p_noise: float = 0.5
    p_flip: float = 0.5
    rotation_deg: float = Field(10.0, ge=0.0, le=45.0)
    scale: tuple[float, float] = (0.9, 1.1)
    p_affine: float = 0.5
    p_thick_slices: float = 0.3
    thick_factor: tuple[int, int] = (2, 3)


class StageConfig(_Strict):
    """One training stage.

    Attributes
    ----------
    steps : int
        Optimiser steps (0 skips the stage).
    batch_size : int
        Slices (stage 1) or clips of consecutive slices (stage 2) per step.
    lr : float
        Peak learning rate (AdamW, linear warm-up then cosine decay).
    weight_decay : float
        AdamW weight decay.
    warmup : int
        Warm-up steps.
    clip_length : int
        Stage 2: consecutive slices per clip.
    lesion_fraction : float
        Stage 1: fraction of sampled slices that hold lesion (balanced sampling).
    train_neck : bool
        Stage 1: also train the encoder's neck (the last encoder block) on cached trunk features.
    lesion_loss : float
        Weight of the lesion-wise recall term (each lesion component counts once, whatever its size; 0 = off).
    """

    steps: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup: int = Field(50, ge=0)
    clip_length: int = Field(4, ge=2)
    lesion_fraction: float = Field(0.6, ge=0.0, le=1.0)
    train_neck: bool = True
    lesion_loss: float = Field(0.0, ge=0.0)


class TrainConfig(_Strict):
    """A complete training run (what ``infarctsam train CONFIG`` reads).

    Attributes
    ----------
    name : str
        Name of the exported model.
    output : str
        Run folder (checkpoints, cache, logs, exported weights); relative paths are relative to the config file.
    seed : int
        Seeds data splits, phantoms, augmentation, sampling and initialisation.
    model : ModelConfig
        Architecture.
    start : str
        ``litemedsam`` (offline default), ``random`` (no pretrained weights; tests), a SAM 2.1 / MedSAM2 ``.pt``,
        or one of our ``.safetensors``.
    data : list of DataSource
        Where cases come from.
    val_fraction : float
        Fraction of patients held out for validation (split by patient, per source).
    stage1, stage2 : StageConfig
        The two stages.
    augment : AugmentConfig
        Augmentation.
    margin_slices : int
        Slices kept around each lesion's slice range when caching (lesion-free cases keep one random block).
    case_cache : str, optional
        Folder of cached cases shared between runs (relative to the config file): leave-one-out folds and the final
        network that name the same folder make and encode each common case once. Default: inside the run folder.
    cache_workers : int
        Processes making cases (phantoms, augmentation, preprocessing) while the main one encodes them.
    precision : str
        Arithmetic of the training steps: ``fp32``; ``bf16`` (bfloat16 autocast: about 1.3-1.5x faster where the CPU
        has native bfloat16, AVX-512 BF16 or AMX; slower elsewhere); ``auto``: ``bf16`` on such a CPU (or a CUDA
        GPU with bfloat16), else ``fp32``. Validation and the exported network run in float32.
    checkpoint_every, log_every, val_every : int
        Steps between checkpoints, log lines and validations.
    device : str
        ``cpu`` or ``cuda``.
    threads : int
        torch intra-op threads (0: leave torch's default).
    """

    name: str = "infarctsam-model"
    output: str = "runs/train"
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    start: str = "litemedsam"
    data: list[DataSource]
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    stage1: StageConfig = Field(default_factory=lambda: StageConfig(steps=600))
    stage2: StageConfig = Field(default_factory=lambda: StageConfig(steps=300, batch_size=2, lr=1e-4))
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    margin_slices: int = Field(3, ge=0)
    case_cache: str | None = None
    cache_workers: int = Field(1, ge=1, le=64)
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    val_every: int = Field(200, ge=1)
    device: str = "cpu"
    threads: int = Field(0, ge=0)

    def data_hash(self) -> str:
        """Hash of everything that determines the cached training slices."""
        keys = {"data": [d.model_dump() for d in self.data], "seed": self.seed, "augment": self.augment.model_dump(),
                "image_size": self.model.image_size, "val_fraction": self.val_fraction,
                "margin": self.margin_slices, "start": self.start, "train_neck": self.stage1.train_neck}
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML or JSON training configuration; relative paths become relative to the file's folder.

    Raises
    ------
    ConfigError
        Unreadable file or invalid content (the first problem, in one line).
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except FileNotFoundError as exc:
        raise ConfigError(f"config not found: {path}") from exc
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path.name}: not readable ({' '.join(str(exc).split())[:150]})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top level")
    raw = {**raw, **(overrides or {})}
    try:
        cfg = TrainConfig(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path.name}: {where}: {err['msg']}") from exc
    base = path.resolve().parent

    def resolve(p: str | None) -> str | None:
        return None if p is None else str(p if Path(p).is_absolute() else (base / p).resolve())

    data = [d.model_copy(update={"path": resolve(d.path), "backgrounds": [resolve(b) for b in d.backgrounds],
                                 "background_masks": [resolve(m) if m else "" for m in d.background_masks]})
            for d in cfg.data]
    start = cfg.start if cfg.start in ("litemedsam", "random") else resolve(cfg.start)
    return cfg.model_copy(update={"data": data, "output": resolve(cfg.output), "start": start,
                                  "case_cache": resolve(cfg.case_cache)})
