"""The two training stages as modules computing a loss (so that DistributedDataParallel can wrap them).

Stage 1 (prompt-free adaptation on single slices): learned prompt tokens, mask decoder with its object-score head,
high-resolution stem and, optionally, the encoder's neck, on cached encoder features, without memory.

Stage 2 (volumetric): memory attention, memory encoder, object pointers and the memory gate, with the decoder, on
clips of consecutive slices decoded in a random direction, each slice conditioned on the memories of the slices
decoded before it in the clip.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from infarctsam.train.losses import LossWeights, segmentation_loss

STAGE1_MODULES = ("prompt_tokens", "stem", "sam.sam_mask_decoder", "sam.sam_prompt_encoder.no_mask_embed")
NECK = "sam.image_encoder.trunk.neck"
MEMORY_MODULES = ("sam.memory_attention", "sam.memory_encoder", "sam.maskmem_tpos_enc", "sam.no_mem_embed",
                  "sam.no_mem_pos_enc", "sam.no_obj_ptr", "sam.no_obj_embed_spatial", "sam.obj_ptr_proj",
                  "sam.obj_ptr_tpos_proj", "memory_gate")


def trainable_names(model: nn.Module, stage: int, train_neck: bool) -> list[str]:
    """Names of the parameters trained in ``stage``; everything else is frozen."""
    prefixes = STAGE1_MODULES + ((NECK,) if train_neck else ())
    if stage == 2:
        prefixes = prefixes + MEMORY_MODULES
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def set_trainable(model: nn.Module, names: list[str]) -> None:
    """Freeze every parameter except ``names``."""
    keep = set(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in keep)


def embed(model: nn.Module, feats: Tensor, pre_neck: bool) -> Tensor:
    """Encoder embedding from cached features (through the neck when the cache holds trunk features)."""
    return model.sam.image_encoder.trunk.neck(feats) if pre_neck else feats


class Stage1Net(nn.Module):
    """Single-slice, memory-free prompt-free segmentation loss."""

    def __init__(self, model: nn.Module, pre_neck: bool, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.model = model
        self.pre_neck = pre_neck
        self.weights = weights or LossWeights()

    def forward(self, feats: Tensor, images: Tensor, masks: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Loss for a batch of cached features ``[B, C, h, w]``, images ``[B, 3, S, S]`` and masks ``[B, S, S]``."""
        features = self.model.features_from_embedding(embed(self.model, feats, self.pre_neck), images)
        out = self.model.step(features, (), encode_memory=False)
        return segmentation_loss(out.high_res_masks, out.ious, out.object_score_logits, masks[:, None].float(),
                                 self.weights)


class Stage2Net(nn.Module):
    """Clip-wise loss with memory across consecutive slices."""

    def __init__(self, model: nn.Module, pre_neck: bool, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.model = model
        self.pre_neck = pre_neck
        self.weights = weights or LossWeights()

    def forward(self, feats: Tensor, images: Tensor, masks: Tensor, reverse: bool = False
                ) -> tuple[Tensor, dict[str, float]]:
        """Loss for clips: features ``[B, L, C, h, w]``, images ``[B, L, 3, S, S]``, masks ``[B, L, S, S]``."""
        from infarctsam.model.sam2 import MemoryBank

        b, length = feats.shape[:2]
        emb = embed(self.model, feats.flatten(0, 1), self.pre_neck)
        features = self.model.features_from_embedding(emb, images.flatten(0, 1))
        cfg = self.model.sam.config
        bank = MemoryBank(num_maskmem=cfg.num_maskmem, max_obj_ptrs=cfg.max_obj_ptrs_in_encoder, reverse=reverse)
        total: Tensor | None = None
        parts_sum: dict[str, float] = {}
        order = range(length - 1, -1, -1) if reverse else range(length)
        for i in order:
            rows = torch.arange(b, device=feats.device) * length + i
            frame = features.select(rows)
            out = self.model.step(frame, bank.entries_for(i), num_frames=length)
            loss, parts = segmentation_loss(out.high_res_masks, out.ious, out.object_score_logits,
                                            masks[:, i, None].float(), self.weights)
            total = loss if total is None else total + loss
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / length
            bank.add(i, out.memory)
        assert total is not None
        return total / length, parts_sum


@torch.no_grad()
def decode_cached_case(model: nn.Module, feats: np.ndarray, images: np.ndarray, pre_neck: bool, memory: bool,
                       bidirectional: bool = True, batch: int = 16) -> np.ndarray:
    """Probabilities ``(n, S, S)`` of one case's cached slices: independent slices, or the two memory passes."""
    device = next(model.parameters()).device
    f = torch.from_numpy(np.asarray(feats, dtype=np.float32)).to(device)
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).to(device)
    if not memory:
        out = []
        for i in range(0, len(f), batch):
            fe = model.features_from_embedding(embed(model, f[i: i + batch], pre_neck), x[i: i + batch])
            out.append(torch.sigmoid(model.step(fe, (), encode_memory=False).high_res_masks[:, 0].float()))
        return torch.cat(out).cpu().numpy()
    from infarctsam.runtime.predictor import decode_volume

    features = model.features_from_embedding(embed(model, f, pre_neck), x)
    return decode_volume(model, features, bidirectional).cpu().numpy()
