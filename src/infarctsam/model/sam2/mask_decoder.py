"""SAM 2 mask decoder: two-way transformer, mask hypernetworks, IoU head and object-score head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer


@dataclass
class DecoderOutput:
    """Raw output of :class:`MaskDecoder`.

    Attributes
    ----------
    masks : Tensor
        ``[B, M, 4h, 4w]`` mask logits (``M`` = number of multimask outputs, or 1).
    iou_pred : Tensor
        ``[B, M]`` predicted IoU.
    sam_tokens : Tensor
        ``[B, M or 1, C]`` output tokens the object pointer is taken from.
    object_score_logits : Tensor
        ``[B, 1]`` object presence logit (10 when object scores are not predicted).
    """

    masks: Tensor
    iou_pred: Tensor
    sam_tokens: Tensor
    object_score_logits: Tensor


class MaskDecoder(nn.Module):
    """Predict masks from an image embedding and prompt embeddings.

    Parameters
    ----------
    transformer_dim : int
        Token and image width.
    transformer : TwoWayTransformer
        The two-way transformer.
    num_multimask_outputs : int
        Number of alternative masks (a single-mask token is added).
    iou_head_depth, iou_head_hidden_dim : int
        Depth and width of the IoU head.
    use_high_res_features : bool
        Fuse stride-4/stride-8 features (projected by ``conv_s0``/``conv_s1``) while upscaling.
    iou_prediction_use_sigmoid : bool
        Sigmoid on the IoU predictions.
    dynamic_multimask_via_stability : bool
        In eval single-mask mode, fall back to the best multimask output when the single mask is unstable.
    dynamic_multimask_stability_delta, dynamic_multimask_stability_thresh : float
        Logit margin and threshold of the stability score.
    pred_obj_scores, pred_obj_scores_mlp : bool
        Predict an object-presence logit from a dedicated token, with a 3-layer MLP.
    use_multimask_token_for_obj_ptr : bool
        Return the multimask tokens (instead of the single-mask token) in multimask mode.
    high_res_projection : bool
        Own the ``conv_s0``/``conv_s1`` projections (SAM 2); ``False`` when high-resolution features are supplied
        already projected to ``C/8`` and ``C/4`` channels by another module.
    obj_score_token : bool
        The object score has its own token in the transformer (SAM 2). ``False`` reads it from the IoU token's
        output instead, which leaves a SAM 1 decoder's token set (and so its outputs) unchanged.
    """

    def __init__(self, transformer_dim: int, transformer: TwoWayTransformer, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256, use_high_res_features: bool = False,
                 iou_prediction_use_sigmoid: bool = False, dynamic_multimask_via_stability: bool = False,
                 dynamic_multimask_stability_delta: float = 0.05, dynamic_multimask_stability_thresh: float = 0.98,
                 pred_obj_scores: bool = False, pred_obj_scores_mlp: bool = False,
                 use_multimask_token_for_obj_ptr: bool = False, high_res_projection: bool = True,
                 obj_score_token: bool = True) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.pred_obj_scores = pred_obj_scores
        self.has_obj_score_token = pred_obj_scores and obj_score_token
        if self.has_obj_score_token:
            self.obj_score_token = nn.Embedding(1, c)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features and high_res_projection:
            self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(c, c, c // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(c, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth,
                                       sigmoid_output=iou_prediction_use_sigmoid)
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(c, c, 1, 3) if pred_obj_scores_mlp else nn.Linear(c, 1)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.stability_delta = dynamic_multimask_stability_delta
        self.stability_thresh = dynamic_multimask_stability_thresh

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool,
                high_res_features: Sequence[Tensor] | None = None) -> DecoderOutput:
        """Decode masks.

        Parameters
        ----------
        image_embeddings : Tensor
            ``[B, C, h, w]`` (or ``[1, C, h, w]``, repeated over the prompt batch).
        image_pe : Tensor
            ``[1, C, h, w]`` dense position encoding.
        sparse_prompt_embeddings : Tensor
            ``[B, N, C]`` prompt tokens (``N`` may be 0).
        dense_prompt_embeddings : Tensor
            ``[B, C, h, w]`` dense prompt embedding.
        multimask_output : bool
            Return the multimask outputs instead of the single mask.
        high_res_features : sequence of Tensor, optional
            ``(s0 [B, C/8, 4h, 4w], s1 [B, C/4, 2h, 2w])``, already projected by ``conv_s0``/``conv_s1``.

        Returns
        -------
        DecoderOutput
            Selected masks, IoU predictions, pointer tokens and object score logits.
        """
        masks, iou_pred, mask_tokens_out, obj_logits = self.predict_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, high_res_features)
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = mask_tokens_out[:, 1:]
        else:
            sam_tokens = mask_tokens_out[:, 0:1]
        return DecoderOutput(masks, iou_pred, sam_tokens, obj_logits)

    def predict_masks(self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                      high_res_features: Sequence[Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Predict all mask outputs; returns ``(masks, iou_pred, mask_tokens_out, object_score_logits)``."""
        fixed = [self.iou_token.weight, self.mask_tokens.weight]
        if self.has_obj_score_token:
            fixed.insert(0, self.obj_score_token.weight)
        first = 1 if self.has_obj_score_token else 0
        batch = sparse.shape[0]
        tokens = torch.cat([torch.cat(fixed, dim=0)[None].expand(batch, -1, -1), sparse], dim=1)

        src = image_embeddings
        if src.shape[0] != batch:
            if src.shape[0] != 1:
                raise ValueError("image and prompt batch sizes differ")
            src = src.expand(batch, -1, -1, -1)
        src = src + dense
        pos = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src_tokens = self.transformer(src, pos, tokens)
        iou_token_out = hs[:, first]
        mask_tokens_out = hs[:, first + 1: first + 1 + self.num_mask_tokens]

        src = src_tokens.transpose(1, 2).reshape(b, c, h, w)
        if self.use_high_res_features:
            if high_res_features is None:
                raise ValueError("this mask decoder needs high-resolution features")
            deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
            feat_s0, feat_s1 = high_res_features
            up = act1(norm1(deconv1(src) + feat_s1))
            up = act2(deconv2(up) + feat_s0)
        else:
            up = self.output_upscaling(src)

        hyper = torch.stack([mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
                            dim=1)
        b, c_up, h_up, w_up = up.shape
        masks = (hyper @ up.reshape(b, c_up, h_up * w_up)).reshape(b, -1, h_up, w_up)
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            obj_logits = self.pred_obj_score_head(hs[:, 0] if self.has_obj_score_token else iou_token_out)
        else:
            obj_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, obj_logits

    def stability_scores(self, mask_logits: Tensor) -> Tensor:
        """IoU between the masks thresholded at ``+delta`` and ``-delta`` (1 for empty masks)."""
        flat = mask_logits.flatten(-2)
        inter = (flat > self.stability_delta).sum(dim=-1).float()
        union = (flat > -self.stability_delta).sum(dim=-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))

    def _dynamic_multimask(self, masks: Tensor, iou_pred: Tensor) -> tuple[Tensor, Tensor]:
        """Keep the single mask where stable, else the multimask output with the highest predicted IoU."""
        multi_iou = iou_pred[:, 1:]
        best = multi_iou.argmax(dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = multi_iou[rows, best].unsqueeze(1)
        single_masks, single_iou = masks[:, 0:1], iou_pred[:, 0:1]
        stable = self.stability_scores(single_masks) >= self.stability_thresh  # [B, 1]
        out_masks = torch.where(stable[..., None, None], single_masks, best_masks)
        out_iou = torch.where(stable, single_iou, best_iou)
        return out_masks, out_iou
