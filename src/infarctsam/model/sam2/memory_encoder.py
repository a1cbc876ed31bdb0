"""Memory encoder: fuse a frame's image features with its predicted mask into a compact memory."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import LayerNorm2d, SinePositionEncoding


class MaskDownSampler(nn.Module):
    """Downsample a mask by ``total_stride`` with strided convolutions, channel LayerNorm and GELU.

    Each step multiplies the channels by ``stride ** 2``; a final 1x1 convolution maps to ``embed_dim``.

    Parameters
    ----------
    embed_dim : int
        Output channels.
    kernel_size, stride, padding : int
        Convolution geometry of each step.
    total_stride : int
        Overall downsampling (a power of ``stride``).
    """

    def __init__(self, embed_dim: int = 256, kernel_size: int = 3, stride: int = 2, padding: int = 1,
                 total_stride: int = 16) -> None:
        super().__init__()
        steps = round(math.log(total_stride, stride))
        if stride**steps != total_stride:
            raise ValueError("total_stride must be a power of stride")
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(steps):
            out = channels * stride**2
            layers += [nn.Conv2d(channels, out, kernel_size, stride=stride, padding=padding), LayerNorm2d(out),
                       nn.GELU()]
            channels = out
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, 1, H, W]`` to ``[B, embed_dim, H / total_stride, W / total_stride]``."""
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 convolution, LayerNorm, pointwise MLP (x4, GELU), layer scale, residual.

    Parameters
    ----------
    dim : int
        Channels.
    kernel_size, padding : int
        Depthwise convolution geometry.
    layer_scale_init_value : float
        Initial value of the per-channel residual scale ``gamma``.
    """

    def __init__(self, dim: int, kernel_size: int = 7, padding: int = 3, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``[B, C, H, W]``."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of :class:`CXBlock`."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the blocks in order."""
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Encode ``(image features, mask)`` of a frame into a memory with a sine position encoding.

    Parameters
    ----------
    in_dim : int
        Channels of the image features.
    out_dim : int
        Channels of the memory.
    fuser_layers : int
        Number of ConvNeXt blocks.
    mask_total_stride : int
        Ratio between the mask and the feature map resolutions.
    """

    def __init__(self, in_dim: int = 256, out_dim: int = 64, fuser_layers: int = 2,
                 mask_total_stride: int = 16) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(in_dim, kernel_size=3, stride=2, padding=1,
                                                total_stride=mask_total_stride)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, fuser_layers)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()
        self.position_encoding = SinePositionEncoding(out_dim)

    def forward(self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False) -> tuple[Tensor, Tensor]:
        """Encode a memory.

        Parameters
        ----------
        pix_feat : Tensor
            ``[B, in_dim, h, w]`` image features.
        masks : Tensor
            ``[B, 1, h * stride, w * stride]`` mask logits (or already squashed values with ``skip_mask_sigmoid``).
        skip_mask_sigmoid : bool
            Do not apply a sigmoid to ``masks``.

        Returns
        -------
        features : Tensor
            ``[B, out_dim, h, w]`` memory features.
        pos_enc : Tensor
            ``[B, out_dim, h, w]`` their position encoding.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + self.mask_downsampler(masks)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)
