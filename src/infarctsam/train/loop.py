"""The training run: data, caches, both stages, validation, checkpoints with exact resume, logs and export."""

from __future__ import annotations

import csv
import json
import math
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infarctsam._version import __version__
from infarctsam.io.atomic import atomic_path, write_json
from infarctsam.train import distributed as dist
from infarctsam.train.config import StageConfig, TrainConfig


@dataclass
class RunState:
    """Where a run stands (saved in every checkpoint)."""

    stage: int = 1
    step: int = 0
    best_dice: float = -1.0
    best_stage: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _rng_state(sampler: np.random.Generator) -> dict[str, Any]:
    return {"numpy": sampler.bit_generator.state, "python": list(random.getstate()[1]),
            "torch": torch.get_rng_state()}


def _set_rng_state(sampler: np.random.Generator, state: dict[str, Any]) -> None:
    sampler.bit_generator.state = state["numpy"]
    py = random.getstate()
    random.setstate((py[0], tuple(state["python"]), py[2]))
    torch.set_rng_state(state["torch"])


def lr_lambda(stage: StageConfig):
    """Linear warm-up then cosine decay to 5% of the peak rate."""

    def f(step: int) -> float:
        if stage.warmup and step < stage.warmup:
            return (step + 1) / stage.warmup
        progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


class Trainer:
    """Runs :class:`TrainConfig` end to end (see :func:`train`)."""

    def __init__(self, cfg: TrainConfig, progress: bool = True) -> None:
        from infarctsam.model.build import build_model

        self.cfg = cfg
        self.progress = progress
        self.rank, self.world = dist.init(cfg.device)
        self.device = torch.device(cfg.device if not cfg.device.startswith("cuda") else f"cuda:{dist.local_rank()}")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.run_dir = Path(cfg.output)
        self.ckpt = self.run_dir / "checkpoints" / "last.pt"
        self.model, self.start_info = build_model(cfg.model, None if cfg.start == "random" else cfg.start)
        self.pre_neck = cfg.stage1.train_neck
        from infarctsam.train.precision import resolve_precision

        self.precision = resolve_precision(cfg.precision, cfg.device)
        self.state = RunState()
        self.writer = None

    # ---------------------------------------------------------------- setup
    def prepare(self) -> None:
        """Collect and split cases, write the resolved config and manifest, build or open the caches."""
        from infarctsam.train.cache import TrunkRuntime, build_cache, case_store
        from infarctsam.train.data import CaseLoader, collect_cases, split_cases

        cfg = self.cfg
        specs = collect_cases(cfg)
        self.train_specs, self.val_specs = split_cases(specs, cfg.val_fraction, cfg.seed)
        cache_root = self.run_dir / "cache" / cfg.data_hash()
        if dist.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            resolved = {"software_version": __version__, "python": platform.python_version(),
                        "torch": torch.__version__, "world_size": self.world, **cfg.model_dump(),
                        "resolved_precision": self.precision}
            write_json(self.run_dir / "config.json", resolved)
            write_json(self.run_dir / "manifest.json", {
                "train": [vars(s) for s in self.train_specs], "val": [vars(s) for s in self.val_specs]})
            loader = CaseLoader(cfg, case_store(cfg))  # the lesion library is read once for every run
            trunk = TrunkRuntime(self.model, cfg, cfg.stage1.train_neck)  # exported once for both splits
            self.train_cache = build_cache(cache_root / "train", self.train_specs, cfg, self.model, True, False,
                                           loader, self.progress, trunk)
            self.val_cache = (build_cache(cache_root / "val", self.val_specs, cfg, self.model, False, True,
                                          loader, self.progress, trunk) if self.val_specs else None)
        dist.barrier()
        if not dist.is_main():
            from infarctsam.train.cache import SliceCache

            self.train_cache = SliceCache.open(cache_root / "train")
            self.val_cache = SliceCache.open(cache_root / "val") if self.val_specs else None

    # -------------------------------------------------------------- batches
    def stage1_batch(self, sampler: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        """Balanced batch: ``lesion_fraction`` of slices with lesion, the rest drawn from all slices."""
        cache = self.train_cache
        lesion = cache.lesion_rows
        n_les = int(round(self.cfg.stage1.lesion_fraction * batch)) if lesion.size else 0
        rows = np.concatenate([sampler.choice(lesion, n_les), sampler.integers(0, len(cache), batch - n_les)])
        rows = np.sort(rows)
        return tuple(torch.from_numpy(np.asarray(a[rows], dtype=np.float32)).to(self.device)
                     for a in (cache.feats, cache.images, cache.masks))

    def stage2_batch(self, sampler: np.random.Generator, batch: int) -> tuple[Any, ...]:
        """Clips of consecutive slices (more often those holding lesion) and a random direction."""
        cache = self.train_cache
        length = self.cfg.stage2.clip_length
        starts = cache.clip_starts(length)
        if starts.size == 0:
            raise RuntimeError(f"no run of {length} consecutive slices in the training cache")
        lesion = set(cache.lesion_rows.tolist())
        weights = np.array([1.0 + 3.0 * any((s + k) in lesion for k in range(length)) for s in starts])
        chosen = sampler.choice(starts, batch, p=weights / weights.sum())
        rows = (chosen[:, None] + np.arange(length)[None]).ravel()
        arrays = [torch.from_numpy(np.asarray(a[rows], dtype=np.float32)).to(self.device)
                  for a in (cache.feats, cache.images, cache.masks)]
        shaped = [t.reshape(batch, length, *t.shape[1:]) for t in arrays]
        return (*shaped, bool(sampler.random() < 0.5))

    # ------------------------------------------------------------ stages
    def run_stage(self, stage: int) -> None:
        """Train one stage from its current step (resumed or 0) to its configured number of steps."""
        from tqdm import tqdm

        from infarctsam.train.losses import LossWeights
        from infarctsam.train.steps import Stage1Net, Stage2Net, set_trainable, trainable_names

        scfg = self.cfg.stage1 if stage == 1 else self.cfg.stage2
        if scfg.steps == 0 or self.state.stage > stage:
            return
        names = trainable_names(self.model, stage, self.pre_neck)
        set_trainable(self.model, names)
        params = [p for n, p in self.model.named_parameters() if n in set(names)]
        optimiser = torch.optim.AdamW(params, lr=scfg.lr, weight_decay=scfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_lambda(scfg))
        weights = LossWeights(lesion=scfg.lesion_loss)
        net = (Stage1Net if stage == 1 else Stage2Net)(self.model, self.pre_neck, weights).to(self.device)
        net = dist.wrap(net)
        sampler = np.random.default_rng([self.cfg.seed, stage, self.rank])
        if self.state.stage == stage and self.state.step > 0:
            self._load_checkpoint(optimiser, scheduler, sampler)
        self.state.stage = stage
        bar = tqdm(total=scfg.steps, initial=self.state.step, desc=f"stage {stage}", unit="step",
                   disable=not (self.progress and dist.is_main()))
        t0 = time.perf_counter() - self.state.stage_seconds.get(str(stage), 0.0)
        self.model.train()
        while self.state.step < scfg.steps:
            batch = self.stage1_batch(sampler, scfg.batch_size) if stage == 1 else self.stage2_batch(
                sampler, scfg.batch_size)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                loss, parts = net(*batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            scheduler.step()
            self.state.step += 1
            self.state.stage_seconds[str(stage)] = time.perf_counter() - t0
            step = self.state.step
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", dice_loss=f"{parts['dice']:.3f}")
            if step % self.cfg.log_every == 0 or step == scfg.steps:
                self._log(stage, step, loss.item(), parts, scheduler.get_last_lr()[0])
            if self.val_cache is not None and (step % self.cfg.val_every == 0 or step == scfg.steps):
                self._validate(stage, step)
            if step % self.cfg.checkpoint_every == 0 or step == scfg.steps:
                self._save_checkpoint(optimiser, scheduler, sampler)
        bar.close()
        self.state.stage, self.state.step = stage + 1, 0
        self._save_checkpoint(None, None, None)

    # ------------------------------------------------------- bookkeeping
    def _log(self, stage: int, step: int, loss: float, parts: dict[str, float], lr: float) -> None:
        if not dist.is_main():
            return
        row = {"stage": stage, "step": step, "loss": round(loss, 5), **{k: round(v, 5) for k, v in parts.items()},
               "lr": lr, "seconds": round(self.state.stage_seconds.get(str(stage), 0.0), 1)}
        self.state.history.append(row)
        path = self.run_dir / "logs" / "train.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self._tensorboard(stage, step, {"loss": loss, **parts, "lr": lr})

    def _tensorboard(self, stage: int, step: int, scalars: dict[str, float]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "logs" / "tensorboard"))
        offset = 0 if stage == 1 else self.cfg.stage1.steps
        for k, v in scalars.items():
            self.writer.add_scalar(f"stage{stage}/{k}", v, offset + step)
        self.writer.flush()

    def _validate(self, stage: int, step: int) -> None:
        from infarctsam.train.validate import validate_cache

        if not dist.is_main():
            return
        self.model.eval()
        metrics = validate_cache(self.model, self.val_cache, self.pre_neck, memory=stage == 2,
                                 threshold=self.cfg.model.threshold)
        self.model.train()
        metrics.update({"stage": stage, "step": step})
        path = self.run_dir / "logs" / "val.csv"
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(metrics))
            if new:
                writer.writeheader()
            writer.writerow(metrics)
        self._tensorboard(stage, step, {"val_dice": metrics["dice"]})
        # Stage 2 adds memory: a stage-2 model is preferred once it is at least as good as the best stage-1 one.
        if metrics["dice"] > self.state.best_dice or (stage > self.state.best_stage and
                                                      metrics["dice"] >= self.state.best_dice - 1e-6):
            self.state.best_dice, self.state.best_stage = metrics["dice"], stage
            with atomic_path(self.run_dir / "checkpoints" / "best.pt") as tmp:
                torch.save({"model": self.model.state_dict(), "metrics": metrics}, tmp)

    def _save_checkpoint(self, optimiser, scheduler, sampler) -> None:
        if not dist.is_main():
            return
        payload = {"model": self.model.state_dict(), "run": vars(self.state), "config_hash": self.cfg.data_hash(),
                   "precision": self.precision}
        if optimiser is not None:
            payload.update(optimiser=optimiser.state_dict(), scheduler=scheduler.state_dict(),
                           rng=_rng_state(sampler))
        with atomic_path(self.ckpt) as tmp:
            torch.save(payload, tmp)

    def _load_checkpoint(self, optimiser, scheduler, sampler) -> None:
        payload = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        self.model.load_state_dict(payload["model"])
        if "optimiser" in payload:
            optimiser.load_state_dict(payload["optimiser"])
            scheduler.load_state_dict(payload["scheduler"])
            _set_rng_state(sampler, payload["rng"])

    def resume(self) -> bool:
        """Restore the run state from ``checkpoints/last.pt``; True when there was one."""
        if not self.ckpt.exists():
            return False
        payload = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        if payload.get("config_hash") != self.cfg.data_hash():
            from infarctsam.errors import ConfigError

            raise ConfigError(f"{self.ckpt} belongs to a run with another data configuration")
        self.model.load_state_dict(payload["model"])
        self.state = RunState(**payload["run"])
        self.precision = payload.get("precision", self.precision)  # the arithmetic it started with, on any machine
        return True


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run both stages and export the best model.

    Parameters
    ----------
    cfg : TrainConfig
        The run.
    resume : bool
        Continue from ``OUTPUT/checkpoints/last.pt`` (exactly: model, optimiser, scheduler and RNG states).
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        Paths of the exported weights and logs, validation metrics, seconds per stage.
    """
    from infarctsam.extras import require_extra
    from infarctsam.train.export import export_model

    require_extra("train", "infarctsam train")
    trainer = Trainer(cfg, progress=progress)
    if resume:
        trainer.resume()
    trainer.prepare()
    for stage in (1, 2):
        trainer.run_stage(stage)
    result: dict[str, Any] = {"run_dir": str(trainer.run_dir), "best_dice": trainer.state.best_dice,
                              "stage_seconds": trainer.state.stage_seconds}
    if dist.is_main():
        result["weights"] = str(export_model(trainer))
        write_json(trainer.run_dir / "result.json", result)
    dist.barrier()
    dist.shutdown()
    if trainer.writer is not None:
        trainer.writer.close()
    return result


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved configuration saved in a run folder."""
    return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
