"""SAM prompt encoder: points and boxes to sparse tokens, masks to a dense embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import LayerNorm2d, RandomFourierPositionEncoding

#: Point label meaning "padding / not a point".
LABEL_PADDING = -1
#: Point labels: 0 negative click, 1 positive click, 2 box top-left corner, 3 box bottom-right corner.
NUM_POINT_LABELS = 4


class PromptEncoder(nn.Module):
    """Encode point, box and mask prompts for the mask decoder.

    Parameters
    ----------
    embed_dim : int
        Width of the prompt embeddings.
    image_embedding_size : tuple of int
        ``(h, w)`` of the image embedding the decoder works on.
    input_image_size : tuple of int
        ``(H, W)`` of the network input, in which point and box coordinates are given (pixels, x then y).
    mask_in_chans : int
        Hidden channels of the mask downscaling network.
    """

    def __init__(self, embed_dim: int, image_embedding_size: tuple[int, int], input_image_size: tuple[int, int],
                 mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.pe_layer = RandomFourierPositionEncoding(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(NUM_POINT_LABELS))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """Position encoding of the image embedding grid, ``[1, embed_dim, h, w]``."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """Embed ``[B, N, 2]`` pixel coordinates with ``[B, N]`` labels; ``pad`` appends one padding point."""
        coords = coords.float() + 0.5  # pixel centres
        labels = labels.to(torch.long)
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), LABEL_PADDING)], dim=1)
        emb = self.pe_layer.points(coords, self.input_image_size)
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == LABEL_PADDING, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for value, table in enumerate(self.point_embeddings):
            emb = torch.where(lab == value, emb + table.weight, emb)
        return emb

    def embed_boxes(self, boxes: Tensor) -> Tensor:
        """Embed ``[B, 4]`` boxes ``(x0, y0, x1, y1)`` in pixels as two corner tokens ``[B, 2, C]``."""
        corners = boxes.float().reshape(-1, 2, 2) + 0.5
        emb = self.pe_layer.points(corners, self.input_image_size)
        corner_tables = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return emb + corner_tables[None]

    def embed_masks(self, masks: Tensor) -> Tensor:
        """Downscale ``[B, 1, 4h, 4w]`` mask logits to a dense ``[B, C, h, w]`` embedding."""
        return self.mask_downscaling(masks)

    def no_mask_dense(self, batch: int) -> Tensor:
        """Dense embedding used when no mask is given, ``[batch, C, h, w]``."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)

    def forward(self, points: tuple[Tensor, Tensor] | None, boxes: Tensor | None,
                masks: Tensor | None) -> tuple[Tensor, Tensor]:
        """Embed prompts.

        Parameters
        ----------
        points : tuple of Tensor, optional
            ``(coords [B, N, 2], labels [B, N])``; a padding point is appended when ``boxes`` is ``None``.
        boxes : Tensor, optional
            ``[B, 4]`` boxes.
        masks : Tensor, optional
            ``[B, 1, 4h, 4w]`` mask logits.

        Returns
        -------
        sparse : Tensor
            ``[B, N_tokens, C]`` (``N_tokens`` may be 0).
        dense : Tensor
            ``[B, C, h, w]``.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.point_embeddings[0].weight.device
        parts = [torch.empty(batch, 0, self.embed_dim, device=device)]
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)
        dense = self.embed_masks(masks) if masks is not None else self.no_mask_dense(batch)
        return sparse, dense
