"""The SAM 2.1 model: image encoder, SAM heads and memory, with a per-frame functional API.

The module and parameter names reproduce the published ``SAM2Base`` state dict, so that ``checkpoint["model"]`` of
the official SAM 2.1 and of MedSAM2 checkpoints loads with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Sam2Config
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .layers import MLP, resize_mask_logits
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_bank_assembly import assemble_memory
from .memory_encoder import MemoryEncoder
from .prompt_encoder import PromptEncoder
from .state import FrameFeatures, HeadOutput, MemoryEntry, StepOutput
from .two_way_transformer import TwoWayTransformer

#: Logit given to every pixel of a frame predicted to contain no object.
NO_OBJ_SCORE = -1024.0


class Sam2Model(nn.Module):
    """SAM 2.1 network.

    Parameters
    ----------
    config : Sam2Config
        Architecture and inference settings.
    image_encoder : nn.Module, optional
        Replaces the Hiera + FPN encoder (``config.trunk`` must then be ``None``). Its forward returns the same
        dict as :class:`~.image_encoder.ImageEncoder` (``backbone_fpn``, ``vision_pos_enc``, ``vision_features``).
    """

    def __init__(self, config: Sam2Config, image_encoder: nn.Module | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c, mem = config.d_model, config.mem_dim
        if image_encoder is None:
            if config.trunk is None:
                raise ValueError("a config without trunk needs an image_encoder")
            trunk = Hiera(config.trunk)
            neck = FpnNeck(c, trunk.channel_list, config.fpn_top_down_levels, config.fpn_interp_mode)
            image_encoder = ImageEncoder(trunk, neck, scalp=config.scalp)
        self.image_encoder = image_encoder
        if config.use_obj_ptrs_in_encoder:
            # Maps a full-resolution mask to the stride-4 logit scale of the decoder's mask prompt.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = MemoryAttention(
            c, config.memory_attention_layers, kv_in_dim=mem, num_heads=config.memory_attention_heads,
            dim_feedforward=config.memory_attention_ffn, dropout=config.memory_attention_dropout,
            rope_theta=config.rope_theta)
        self.memory_encoder = MemoryEncoder(c, mem, config.memory_fuser_layers, config.backbone_stride)

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c))
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(p, std=0.02)
        if config.pred_obj_scores and config.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, c))
            nn.init.trunc_normal_(self.no_obj_ptr, std=0.02)
        if config.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem))
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

        side = config.image_embedding_size
        self.sam_prompt_encoder = PromptEncoder(c, (side, side), (config.image_size, config.image_size), 16)
        self.sam_mask_decoder = MaskDecoder(
            c, TwoWayTransformer(config.decoder_depth, c, config.decoder_heads, config.decoder_mlp_dim),
            num_multimask_outputs=config.num_multimask_outputs, iou_head_depth=3, iou_head_hidden_dim=256,
            use_high_res_features=config.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=config.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=config.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=config.dynamic_multimask_stability_thresh,
            pred_obj_scores=config.pred_obj_scores, pred_obj_scores_mlp=config.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=config.use_multimask_token_for_obj_ptr,
            high_res_projection=config.high_res_projection, obj_score_token=config.obj_score_token)
        if not config.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj: nn.Module = nn.Identity()
        elif config.use_mlp_for_obj_ptr_proj:
            self.obj_ptr_proj = MLP(c, c, c, 3)
        else:
            self.obj_ptr_proj = nn.Linear(c, c)
        self.obj_ptr_tpos_proj = nn.Linear(c, mem) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()

    # ------------------------------------------------------------------ image
    def forward_image(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Encode ``[B, 3, S, S]`` normalised images (``S = config.image_size``).

        Returns
        -------
        dict
            ``backbone_fpn`` (finest first; levels 0 and 1 already projected by ``conv_s0``/``conv_s1`` when
            high-resolution features are used), ``vision_pos_enc`` and ``vision_features`` (the stride-16 level).
        """
        out = self.image_encoder(images)
        if self.config.use_high_res_features_in_sam and self.config.high_res_projection:
            fpn = list(out["backbone_fpn"])
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
            out["backbone_fpn"] = fpn
        return out

    def forward(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Same as :meth:`forward_image`; the per-frame steps are separate methods (:meth:`track_step`)."""
        return self.forward_image(images)

    def frame_features(self, backbone_out: dict) -> FrameFeatures:
        """Wrap the output of :meth:`forward_image` as :class:`FrameFeatures`."""
        return FrameFeatures.from_backbone(backbone_out, self.config.num_feature_levels)

    def encode_frames(self, images: Tensor) -> FrameFeatures:
        """Shortcut for ``frame_features(forward_image(images))``."""
        return self.frame_features(self.forward_image(images))

    # ---------------------------------------------------------------- prompts
    def embed_prompts(self, points: Tensor | None = None, labels: Tensor | None = None, boxes: Tensor | None = None,
                      mask_logits: Tensor | None = None, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Embed prompts the way SAM 2 does on a video frame.

        Without points or boxes an empty click (label -1) is used as SAM 2 does on a frame without clicks; with the
        encoder's own padding point this gives two "not a point" tokens.

        Parameters
        ----------
        points, labels : Tensor, optional
            ``[B, N, 2]`` pixel (x, y) coordinates in the network input and ``[B, N]`` labels
            (1 positive, 0 negative, 2/3 box corners, -1 padding).
        boxes : Tensor, optional
            ``[B, 4]`` boxes ``(x0, y0, x1, y1)`` in pixels (encoded with SAM's box path).
        mask_logits : Tensor, optional
            ``[B, 1, H, W]`` mask prompt, resized to ``4h x 4w`` if needed.
        batch_size : int, optional
            Batch size when no prompt is given (default 1).

        Returns
        -------
        sparse : Tensor
            ``[B, N, C]`` sparse prompt embeddings.
        dense : Tensor
            ``[B, C, h, w]`` dense prompt embeddings.
        """
        enc = self.sam_prompt_encoder
        if mask_logits is not None:
            mask_logits = resize_mask_logits(mask_logits, enc.mask_input_size)
        pts = None
        if points is not None:
            if labels is None:
                raise ValueError("point prompts need labels")
            pts = (points, labels)
        elif boxes is None:
            b = batch_size if batch_size is not None else (mask_logits.shape[0] if mask_logits is not None else 1)
            device = enc.no_mask_embed.weight.device
            pts = (torch.zeros(b, 1, 2, device=device), -torch.ones(b, 1, dtype=torch.int32, device=device))
        return enc(points=pts, boxes=boxes, masks=mask_logits)

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """SAM 2 rule for producing several candidate masks on a frame with ``num_points`` prompt points."""
        cfg = self.config
        return bool(cfg.multimask_output_in_sam and (is_init_cond_frame or cfg.multimask_output_for_tracking)
                    and cfg.multimask_min_pt_num <= num_points <= cfg.multimask_max_pt_num)

    # ------------------------------------------------------------------ heads
    def forward_sam_heads(self, pix_feat: Tensor, sparse: Tensor, dense: Tensor, multimask_output: bool,
                          high_res: Sequence[Tensor] | None = None) -> HeadOutput:
        """Run the mask decoder on (memory-conditioned) features with given prompt embeddings.

        Parameters
        ----------
        pix_feat : Tensor
            ``[B, C, h, w]`` image embedding.
        sparse, dense : Tensor
            ``[B, N, C]`` and ``[B, C, h, w]`` prompt embeddings (from :meth:`embed_prompts` or learned).
        multimask_output : bool
            Produce the multimask outputs and select the one with the highest predicted IoU.
        high_res : sequence of Tensor, optional
            Projected stride-4/8 features (``FrameFeatures.high_res``).

        Returns
        -------
        HeadOutput
            Masks (frames without object are filled with ``NO_OBJ_SCORE``), IoU, object pointer and score.
        """
        cfg = self.config
        b = pix_feat.shape[0]
        side = cfg.image_embedding_size
        if tuple(pix_feat.shape[1:]) != (cfg.d_model, side, side):
            raise ValueError(f"expected features [B, {cfg.d_model}, {side}, {side}], got {tuple(pix_feat.shape)}")
        dec = self.sam_mask_decoder(pix_feat, self.sam_prompt_encoder.get_dense_pe(), sparse, dense,
                                    multimask_output=multimask_output, high_res_features=high_res)
        low_multi, ious, obj_logits = dec.masks, dec.iou_pred, dec.object_score_logits
        present = obj_logits > 0
        if cfg.pred_obj_scores:
            low_multi = torch.where(present[:, None, None], low_multi, NO_OBJ_SCORE)
        low_multi = low_multi.float()
        high_multi = F.interpolate(low_multi, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                                   align_corners=False)
        token = dec.sam_tokens[:, 0]
        if multimask_output:
            best = ious.argmax(dim=-1)
            rows = torch.arange(b, device=pix_feat.device)
            low, high = low_multi[rows, best].unsqueeze(1), high_multi[rows, best].unsqueeze(1)
            if dec.sam_tokens.shape[1] > 1:
                token = dec.sam_tokens[rows, best]
        else:
            low, high = low_multi, high_multi
        obj_ptr = self._gate_pointer(self.obj_ptr_proj(token), obj_logits, present)
        return HeadOutput(low_multi, high_multi, ious, low, high, obj_ptr, obj_logits)

    def _gate_pointer(self, obj_ptr: Tensor, obj_logits: Tensor, present: Tensor) -> Tensor:
        """Replace (or mix) the pointer by ``no_obj_ptr`` where no object is predicted."""
        cfg = self.config
        if not cfg.pred_obj_scores or not hasattr(self, "no_obj_ptr"):
            return obj_ptr
        weight = torch.sigmoid(obj_logits) if cfg.soft_no_obj_ptr else present.float()
        if cfg.fixed_no_obj_ptr:
            obj_ptr = weight * obj_ptr
        return obj_ptr + (1 - weight) * self.no_obj_ptr

    # ----------------------------------------------------------------- memory
    def condition_on_memory(self, features: FrameFeatures, memories: Sequence[MemoryEntry],
                            num_frames: int | None = None) -> Tensor:
        """Fuse a frame's features with its memories (SAM 2 ``_prepare_memory_conditioned_features``).

        Parameters
        ----------
        features : FrameFeatures
            Features of the current frame.
        memories : sequence of MemoryEntry
            Memories with offsets relative to this frame; empty for an initial frame. When none of them is
            within reach (see :mod:`.memory_bank_assembly`), the frame is treated as an initial frame.
        num_frames : int, optional
            Sequence length (bounds the object pointer window as in SAM 2).

        Returns
        -------
        Tensor
            ``[B, C, h, w]`` memory-conditioned features.
        """
        cfg = self.config
        feat = features.image_embed
        b, c, h, w = feat.shape
        if cfg.num_maskmem == 0:
            return feat
        assembled = assemble_memory(self, cfg, memories, num_frames) if memories else None
        if assembled is None:
            if cfg.directly_add_no_mem_embed:
                return feat + self.no_mem_embed.reshape(1, c, 1, 1)
            tokens = self.no_mem_embed.expand(b, 1, cfg.mem_dim)
            pos, n_ptr = self.no_mem_pos_enc.expand(b, 1, cfg.mem_dim), 0
        else:
            tokens, pos, n_ptr = assembled.tokens, assembled.pos, assembled.num_obj_ptr_tokens
        curr = feat.flatten(2).transpose(1, 2)
        curr_pos = features.image_pos.flatten(2).transpose(1, 2)
        out = self.memory_attention(curr, curr_pos, tokens, pos, (h, w), num_obj_ptr_tokens=n_ptr)
        return out.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(self, features: FrameFeatures, high_res_masks: Tensor, object_score_logits: Tensor,
                      obj_ptr: Tensor, mask_from_points: bool = False) -> MemoryEntry:
        """Encode the current frame and its predicted mask into a memory (SAM 2 ``_encode_new_memory``).

        Parameters
        ----------
        features : FrameFeatures
            Features of the frame (the raw, not memory-conditioned, image embedding is encoded).
        high_res_masks : Tensor
            ``[B, 1, S, S]`` mask logits at the image size.
        object_score_logits : Tensor
            ``[B, 1]`` object presence logits.
        obj_ptr : Tensor
            ``[B, C]`` object pointer stored with the memory.
        mask_from_points : bool
            The mask was produced from point prompts (binarised in eval if so configured).

        Returns
        -------
        MemoryEntry
            Memory with ``offset=0``.
        """
        cfg = self.config
        if cfg.binarize_mask_from_pts_for_mem_enc and mask_from_points and not self.training:
            mask = (high_res_masks > 0).float()
        else:
            mask = torch.sigmoid(high_res_masks)
        if cfg.sigmoid_scale_for_mem_enc != 1.0:
            mask = mask * cfg.sigmoid_scale_for_mem_enc
        if cfg.sigmoid_bias_for_mem_enc != 0.0:
            mask = mask + cfg.sigmoid_bias_for_mem_enc
        feats, pos = self.memory_encoder(features.image_embed, mask, skip_mask_sigmoid=True)
        if cfg.no_obj_embed_spatial:
            absent = 1.0 - (object_score_logits > 0).float()
            feats = feats + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return MemoryEntry(feats, pos, obj_ptr, offset=0, is_conditioning=False,
                           object_score_logits=object_score_logits)

    # ----------------------------------------------------------------- steps
    def track_step(self, features: FrameFeatures, memories: Sequence[MemoryEntry] = (), *,
                   sparse: Tensor | None = None, dense: Tensor | None = None, multimask_output: bool | None = None,
                   num_frames: int | None = None, run_memory_encoder: bool = True,
                   mask_from_points: bool = False) -> StepOutput:
        """Segment one frame given its memories and prompt embeddings (SAM 2 ``track_step``).

        Parameters
        ----------
        features : FrameFeatures
            Features of the current frame.
        memories : sequence of MemoryEntry
            Memories of other frames with offsets relative to this frame (see :class:`MemoryBank`); an empty
            sequence makes this an initial frame (``no_mem_embed`` is added).
        sparse, dense : Tensor, optional
            Prompt embeddings ``[B, N, C]`` and ``[B, C, h, w]``, injected directly (e.g. learned prompt tokens);
            missing ones default to SAM 2's no-prompt embeddings (padding point, ``no_mask_embed``).
        multimask_output : bool, optional
            Force single/multimask output; by default SAM 2's rule with zero prompt points.
        num_frames : int, optional
            Sequence length (bounds the pointer window as in SAM 2).
        run_memory_encoder : bool
            Encode this frame's memory.
        mask_from_points : bool
            The prompt came from clicks (only matters with ``binarize_mask_from_pts_for_mem_enc``).

        Returns
        -------
        StepOutput
            Masks, IoU predictions, object score, object pointer and the new memory (``offset=0``).
        """
        b = features.batch_size
        if sparse is None or dense is None:
            default_sparse, default_dense = self.embed_prompts(batch_size=b)
            sparse = default_sparse if sparse is None else sparse
            dense = default_dense if dense is None else dense
        if multimask_output is None:
            multimask_output = self.use_multimask(len(memories) == 0, 0)
        pix = self.condition_on_memory(features, memories, num_frames)
        heads = self.forward_sam_heads(pix, sparse, dense, multimask_output, features.high_res)
        memory = None
        if run_memory_encoder and self.config.num_maskmem > 0:
            memory = self.encode_memory(features, heads.high_res_masks, heads.object_score_logits, heads.obj_ptr,
                                        mask_from_points)
        return StepOutput(**vars(heads), memory=memory, pix_feat_with_mem=pix)

    def mask_as_output_step(self, features: FrameFeatures, mask: Tensor, run_memory_encoder: bool = True) -> StepOutput:
        """Use a given mask as the frame's output (SAM 2 ``_use_mask_as_output``), e.g. a reference annotation.

        Parameters
        ----------
        features : FrameFeatures
            Features of the frame.
        mask : Tensor
            ``[B, 1, S, S]`` binary (or [0, 1]) mask at the image size.
        run_memory_encoder : bool
            Encode this frame's memory.

        Returns
        -------
        StepOutput
            Logits ``+-10`` from the mask, IoU 1, object score ``+-10`` from mask emptiness, the pointer obtained by
            the decoder from the downsampled mask, and the memory.
        """
        mask_f = mask.float()
        high = mask_f * 20.0 - 10.0
        low = F.interpolate(high, size=(high.shape[-2] // 4, high.shape[-1] // 4), mode="bilinear",
                            align_corners=False, antialias=True)
        ious = mask_f.new_ones(mask_f.shape[0], 1)
        present = (mask_f.flatten(1) > 0).any(dim=1, keepdim=True)
        obj_logits = 20.0 * present.float() - 10.0
        if self.config.use_obj_ptrs_in_encoder:
            sparse, dense = self.embed_prompts(mask_logits=self.mask_downsample(mask_f))
            obj_ptr = self.forward_sam_heads(features.image_embed, sparse, dense, False, features.high_res).obj_ptr
            obj_ptr = self._gate_pointer(obj_ptr, obj_logits, present)
        else:
            obj_ptr = mask_f.new_zeros(mask_f.shape[0], self.config.d_model)
        heads = HeadOutput(low, high, ious, low, high, obj_ptr, obj_logits)
        memory = None
        if run_memory_encoder and self.config.num_maskmem > 0:
            memory = self.encode_memory(features, high, obj_logits, obj_ptr)
        return StepOutput(**vars(heads), memory=memory, pix_feat_with_mem=features.image_embed)
