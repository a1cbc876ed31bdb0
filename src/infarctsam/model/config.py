"""Typed configuration of the prompt-free segmentation model (saved in every model card)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Backbone = Literal["litemedsam", "sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus"]


class ModelConfig(BaseModel):
    """Architecture of a prompt-free model.

    Attributes
    ----------
    backbone : str
        ``litemedsam`` (TinyViT encoder with LiteMedSAM weights, SAM 2 memory on top, a small high-resolution stem)
        or a SAM 2.1 Hiera size (loads SAM 2.1 / MedSAM2 checkpoints with ``strict=True``).
    image_size : int
        Square network input in pixels (litemedsam: multiple of 32, e.g. 128 or 256; SAM 2.1: 512 or 1024).
    n_prompt_tokens : int
        Learned sparse prompt tokens replacing the user's points or box.
    num_maskmem : int
        Memory bank size (litemedsam only; SAM 2.1 keeps its own 7): one conditioning slot plus recent slices.
    memory_attention_layers, memory_attention_ffn : int
        Depth and feed-forward width of the memory attention (litemedsam only; SAM 2.1 keeps 4 and 2048).
    max_obj_ptrs : int
        Maximum object pointers attended (litemedsam only).
    threshold : float
        Probability above which a voxel is lesion.
    min_lesion_ml : float
        Components smaller than this are removed.
    bidirectional : bool
        Decode the slice stack forward and backward and average the two.
    memory_scope : str
        ``lesion``: the memory passes run over the slices around those whose single-slice object score says
        lesion and, with a fusion head, whose fused single-slice result reaches 0.2 (the others keep their
        single-slice result), ``all``: over the whole stack.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    backbone: Backbone = "litemedsam"
    image_size: int = Field(128, ge=32, le=2048)
    n_prompt_tokens: int = Field(2, ge=1, le=16)
    num_maskmem: int = Field(3, ge=1, le=7)
    memory_attention_layers: int = Field(2, ge=1, le=4)
    memory_attention_ffn: int = Field(1024, ge=64, le=4096)
    max_obj_ptrs: int = Field(8, ge=1, le=16)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    min_lesion_ml: float = Field(0.02, ge=0.0)
    bidirectional: bool = True
    memory_scope: Literal["lesion", "all"] = "lesion"

    @property
    def is_sam2(self) -> bool:
        """True for the SAM 2.1 Hiera backbones."""
        return self.backbone.startswith("sam2.1")
