"""FPN neck and image encoder (Hiera trunk + neck) of SAM 2.1."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .hiera import Hiera
from .layers import SinePositionEncoding


class FpnNeck(nn.Module):
    """Feature pyramid neck without output convolutions.

    Each trunk level is projected to ``d_model`` by a 1x1 convolution; the levels listed in ``top_down_levels``
    additionally receive the upsampled (x2) result of the next coarser level. Every output level gets a 2D sine
    position encoding.

    Parameters
    ----------
    d_model : int
        Output width.
    backbone_channel_list : sequence of int
        Trunk widths, coarsest first.
    top_down_levels : sequence of int
        Output levels (0 = finest) with top-down fusion.
    interp_mode : str
        Upsampling mode of the top-down path.
    """

    def __init__(self, d_model: int, backbone_channel_list: Sequence[int], top_down_levels: Sequence[int],
                 interp_mode: str = "nearest") -> None:
        super().__init__()
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, d_model, kernel_size=1))) for c in backbone_channel_list)
        self.top_down_levels = set(top_down_levels)
        self.interp_mode = interp_mode
        self.position_encoding = SinePositionEncoding(d_model)

    def forward(self, xs: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Fuse trunk outputs ``xs`` (finest first) into features and position encodings (finest first)."""
        n = len(self.convs)
        if len(xs) != n:
            raise ValueError(f"FPN neck expects {n} levels, got {len(xs)}")
        feats: list[Tensor] = [xs[0]] * n
        prev: Tensor | None = None
        for level in range(n - 1, -1, -1):
            lateral = self.convs[n - 1 - level](xs[level])
            if level in self.top_down_levels and prev is not None:
                align = None if self.interp_mode == "nearest" else False
                up = F.interpolate(prev.float(), scale_factor=2.0, mode=self.interp_mode, align_corners=align)
                prev = lateral + up
            else:
                prev = lateral
            feats[level] = prev
        pos = [self.position_encoding(f) for f in feats]
        return feats, pos


class ImageEncoder(nn.Module):
    """Hiera trunk followed by the FPN neck, dropping the ``scalp`` coarsest levels.

    Parameters
    ----------
    trunk : Hiera
        Image trunk.
    neck : FpnNeck
        Feature pyramid.
    scalp : int
        Number of coarsest levels discarded.
    """

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if trunk.channel_list != neck.backbone_channel_list:
            raise ValueError("trunk and neck channel lists differ")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, images: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Encode ``[B, 3, H, W]`` images.

        Returns
        -------
        dict
            ``backbone_fpn``: list of neck features (finest first); ``vision_pos_enc``: their position
            encodings; ``vision_features``: the coarsest kept level.
        """
        feats, pos = self.neck(self.trunk(images))
        if self.scalp > 0:
            feats, pos = feats[: -self.scalp], pos[: -self.scalp]
        return {"vision_features": feats[-1], "vision_pos_enc": pos, "backbone_fpn": feats}
