"""Helpers shared by the SAM 2.1 model tests (imported by a unique module name to avoid conftest clashes)."""

from __future__ import annotations

from pathlib import Path

import torch

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "sam2.1_hiera_tiny_state_dict_shapes.json"
IMAGE_SIZE = 256


def randomize_(module: torch.nn.Module, seed: int, max_numel: int = 65536) -> None:
    """Perturb the small floating parameters and buffers (norms, biases, embeddings, position tables).

    Zero- or one-initialised tensors then carry signal too; large weight matrices keep their (random) default
    initialisation, which keeps this cheap.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tensors = list(module.named_parameters()) + list(module.named_buffers())
        for _, t in sorted(tensors, key=lambda kv: kv[0]):
            if t.dtype.is_floating_point and t.numel() <= max_numel:
                scale = max(float(t.std()) if t.numel() > 1 else 0.0, 0.02)
                t.add_(torch.randn(t.shape, generator=gen) * scale * 0.5)


def set_object_bias(model: torch.nn.Module, value: float) -> None:
    """Set the bias of the object-score head's last layer (forces presence > 0 or absence < 0)."""
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(value)
