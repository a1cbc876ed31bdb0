"""Typed configuration of the SAM 2.1 network.

The presets reproduce the published SAM 2.1 Hiera configurations (tiny, small, base+). Only the image size is meant
to vary between uses (1024 for the official checkpoints, 512 for MedSAM2); it changes no parameter shape, because the
Hiera background position embedding is interpolated to the patch grid and the rotary and sine encodings have no
parameters.

This module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from infarctsam.errors import ConfigError


@dataclass(frozen=True)
class HieraConfig:
    """Hyper-parameters of the Hiera image trunk.

    Attributes
    ----------
    embed_dim : int
        Channels of the first stage; each later stage multiplies them by ``dim_mul``.
    num_heads : int
        Attention heads of the first stage; each later stage multiplies them by ``head_mul``.
    stages : tuple of int
        Number of blocks per stage.
    global_att_blocks : tuple of int
        Indices of the blocks that attend globally instead of inside windows.
    window_spec : tuple of int
        Attention window size per stage (in tokens of that stage).
    window_pos_embed_bkg_spatial_size : tuple of int
        Spatial size of the learned background position embedding, interpolated to the patch grid.
    q_pool : int
        Number of stage transitions that pool the queries.
    q_stride : tuple of int
        Pooling stride at a stage transition.
    dim_mul, head_mul : float
        Channel and head multipliers at a stage transition.
    mlp_ratio : float
        Hidden size of the block MLP relative to the block width.
    drop_path_rate : float
        Maximum stochastic depth rate (linearly increasing over blocks); only used in training.
    """

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each stage, highest resolution first."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class Sam2Config:
    """Full configuration of a SAM 2.1 model (image encoder, prompt encoder, mask decoder and memory).

    Attributes
    ----------
    trunk : HieraConfig or None
        Image trunk hyper-parameters; ``None`` when the caller supplies its own image encoder (see
        :class:`~.model.Sam2Model`), whose stride-``backbone_stride`` features have ``d_model`` channels.
    image_size : int
        Side of the square network input in pixels (a multiple of 32 and of 4x the first Hiera window).
    d_model : int
        Width of the neck, prompt encoder, mask decoder and memory attention.
    mem_dim : int
        Channels of the encoded memories (memory encoder output).
    backbone_stride : int
        Stride of the lowest-resolution feature map fed to the mask decoder.
    fpn_top_down_levels : tuple of int
        Neck levels that receive the upsampled coarser level (0 is the finest).
    fpn_interp_mode : str
        Interpolation used for the top-down path of the neck.
    scalp : int
        Number of coarsest neck levels discarded.
    num_maskmem : int
        Size of the spatial memory bank: one slot for conditioning frames plus ``num_maskmem - 1`` recent frames.
    max_obj_ptrs_in_encoder : int
        Maximum number of object pointers (current frame excluded) the memory attention sees.
    memory_attention_layers, memory_attention_ffn, memory_attention_heads : int
        Depth, feed-forward width and heads of the memory attention.
    memory_attention_dropout : float
        Dropout of the memory attention (training only).
    rope_theta : float
        Base of the rotary position encoding.
    memory_fuser_layers : int
        Number of ConvNeXt blocks fusing image features and mask in the memory encoder.
    decoder_depth, decoder_heads, decoder_mlp_dim : int
        Two-way transformer depth, heads and MLP width of the mask decoder.
    num_multimask_outputs : int
        Number of alternative masks of the decoder (plus one single-mask output).
    sigmoid_scale_for_mem_enc, sigmoid_bias_for_mem_enc : float
        Affine map applied to the sigmoid of the mask before it is encoded as memory.
    binarize_mask_from_pts_for_mem_enc : bool
        In eval, binarise the mask before memory encoding when it came from point prompts.
    use_mask_input_as_output_without_sam : bool
        A given input mask is used directly as the output on that frame.
    directly_add_no_mem_embed : bool
        Without memory, add ``no_mem_embed`` to the features instead of running the memory attention.
    no_obj_embed_spatial : bool
        Add a learned embedding to the spatial memory of frames without object.
    use_high_res_features_in_sam : bool
        Feed stride-4 and stride-8 features to the mask decoder.
    high_res_projection : bool
        The decoder owns ``conv_s0``/``conv_s1`` projecting ``d_model``-channel backbone levels (SAM 2); ``False``
        when the caller supplies high-resolution features that already have ``d_model/8`` and ``d_model/4``
        channels.
    obj_score_token : bool
        The object score has its own decoder token (SAM 2); ``False`` reads it from the IoU token's output, keeping
        a SAM 1 decoder's token set (used to start from LiteMedSAM).
    multimask_output_in_sam, multimask_output_for_tracking : bool
        Produce several candidate masks on initial frames, and also while tracking.
    multimask_min_pt_num, multimask_max_pt_num : int
        Range of the number of prompt points for which several masks are produced.
    use_multimask_token_for_obj_ptr : bool
        Take the object pointer from the selected multimask token.
    iou_prediction_use_sigmoid : bool
        Squash the IoU predictions with a sigmoid.
    dynamic_multimask_via_stability : bool
        In eval with single-mask output, fall back to the best multimask output when the single mask is unstable.
    dynamic_multimask_stability_delta, dynamic_multimask_stability_thresh : float
        Logit margin and stability threshold of that fallback.
    use_obj_ptrs_in_encoder : bool
        Cross-attend to the object pointers of other frames.
    add_tpos_enc_to_obj_ptrs, proj_tpos_enc_in_obj_ptrs, use_signed_tpos_enc_to_obj_ptrs : bool
        Temporal encoding of object pointers: present, projected by a linear layer, signed.
    only_obj_ptrs_in_the_past_for_eval : bool
        In eval, ignore pointers of conditioning frames that lie ahead in the tracking direction.
    pred_obj_scores, pred_obj_scores_mlp : bool
        Predict an object-presence logit, with a 3-layer MLP head.
    fixed_no_obj_ptr, soft_no_obj_ptr : bool
        Replace the pointer by ``no_obj_ptr`` when no object is present; mix it softly by the presence probability.
    use_mlp_for_obj_ptr_proj : bool
        Project decoder tokens to object pointers with a 3-layer MLP instead of a linear layer.
    """

    trunk: HieraConfig | None = field(default_factory=HieraConfig)
    image_size: int = 1024
    d_model: int = 256
    mem_dim: int = 64
    backbone_stride: int = 16
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_mode: str = "nearest"
    scalp: int = 1
    num_maskmem: int = 7
    max_obj_ptrs_in_encoder: int = 16
    memory_attention_layers: int = 4
    memory_attention_ffn: int = 2048
    memory_attention_heads: int = 1
    memory_attention_dropout: float = 0.1
    rope_theta: float = 10000.0
    memory_fuser_layers: int = 2
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = False
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    no_obj_embed_spatial: bool = True
    use_high_res_features_in_sam: bool = True
    high_res_projection: bool = True
    obj_score_token: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    use_obj_ptrs_in_encoder: bool = True
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True

    def __post_init__(self) -> None:
        self.validate()

    @property
    def image_embedding_size(self) -> int:
        """Side of the feature map the mask decoder works on (``image_size // backbone_stride``)."""
        return self.image_size // self.backbone_stride

    @property
    def num_feature_levels(self) -> int:
        """Number of neck levels used by the SAM heads (3 with high-resolution features, else 1)."""
        return 3 if self.use_high_res_features_in_sam else 1

    def with_image_size(self, image_size: int) -> Sam2Config:
        """Return a copy of this configuration for another input size.

        Parameters
        ----------
        image_size : int
            New input side in pixels.

        Returns
        -------
        Sam2Config
            The same architecture (identical parameter shapes) at ``image_size``.
        """
        return replace(self, image_size=int(image_size))

    def validate(self) -> None:
        """Check the consistency of the configuration.

        Raises
        ------
        ConfigError
            If a value cannot give a working network.
        """
        self._validate_memory()
        t = self.trunk
        if t is None:
            if self.image_size <= 0 or self.image_size % self.backbone_stride:
                raise ConfigError(f"SAM2 config: image_size must be a positive multiple of {self.backbone_stride}.")
            return
        if len(t.stages) != len(t.window_spec) or any(s < 1 for s in t.stages):
            raise ConfigError("SAM2 config: trunk.stages and trunk.window_spec must have one positive entry per stage.")
        if not 0 <= t.q_pool <= len(t.stages) - 1:
            raise ConfigError(f"SAM2 config: trunk.q_pool must be in 0..{len(t.stages) - 1}, got {t.q_pool}.")
        n_levels = len(t.stages)
        if not 0 <= self.scalp < n_levels:
            raise ConfigError(f"SAM2 config: scalp must be in 0..{n_levels - 1}, got {self.scalp}.")
        finest_stride = 4
        coarsest_stride = finest_stride * t.q_stride[0] ** t.q_pool
        top_level = n_levels - 1 - self.scalp
        if self.backbone_stride != finest_stride * t.q_stride[0] ** min(top_level, t.q_pool):
            raise ConfigError("SAM2 config: backbone_stride does not match the trunk strides and scalp.")
        multiple = max(coarsest_stride, finest_stride * t.window_spec[0])
        if self.image_size <= 0 or self.image_size % multiple:
            raise ConfigError(
                f"SAM2 config: image_size must be a positive multiple of {multiple}, got {self.image_size}.")

    def _validate_memory(self) -> None:
        if self.num_maskmem < 0 or self.max_obj_ptrs_in_encoder < 1:
            raise ConfigError("SAM2 config: num_maskmem must be >= 0 and max_obj_ptrs_in_encoder >= 1.")
        if self.d_model % self.mem_dim:
            raise ConfigError("SAM2 config: d_model must be a multiple of mem_dim.")
        if not self.directly_add_no_mem_embed and self.mem_dim != self.d_model:
            raise ConfigError("SAM2 config: directly_add_no_mem_embed=False needs mem_dim == d_model.")
        if self.fixed_no_obj_ptr and not (self.pred_obj_scores and self.use_obj_ptrs_in_encoder):
            raise ConfigError("SAM2 config: fixed_no_obj_ptr needs pred_obj_scores and use_obj_ptrs_in_encoder.")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ConfigError("SAM2 config: proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs.")
        if self.fpn_interp_mode not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"SAM2 config: unknown fpn_interp_mode {self.fpn_interp_mode!r}.")


def hiera_tiny(image_size: int = 1024) -> Sam2Config:
    """SAM 2.1 Hiera-Tiny (38.96 M parameters; also the MedSAM2 architecture at ``image_size=512``).

    Parameters
    ----------
    image_size : int
        Input side in pixels.

    Returns
    -------
    Sam2Config
        The configuration.
    """
    trunk = HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                        window_pos_embed_bkg_spatial_size=(7, 7))
    return Sam2Config(trunk=trunk, image_size=image_size)


def hiera_small(image_size: int = 1024) -> Sam2Config:
    """SAM 2.1 Hiera-Small.

    Parameters
    ----------
    image_size : int
        Input side in pixels.

    Returns
    -------
    Sam2Config
        The configuration.
    """
    trunk = HieraConfig(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
                        window_pos_embed_bkg_spatial_size=(7, 7))
    return Sam2Config(trunk=trunk, image_size=image_size)


def hiera_base_plus(image_size: int = 1024) -> Sam2Config:
    """SAM 2.1 Hiera-Base+.

    Parameters
    ----------
    image_size : int
        Input side in pixels.

    Returns
    -------
    Sam2Config
        The configuration.
    """
    trunk = HieraConfig(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3), global_att_blocks=(12, 16, 20),
                        window_pos_embed_bkg_spatial_size=(14, 14))
    return Sam2Config(trunk=trunk, image_size=image_size)


PRESETS = {"hiera_tiny": hiera_tiny, "hiera_small": hiera_small, "hiera_base_plus": hiera_base_plus}
