"""Hiera image trunk (hierarchical ViT with windowed attention and query pooling), as used by SAM 2.1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import HieraConfig
from .layers import MLP


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """Split ``x [B, H, W, C]`` into ``[B * nW, window, window, C]`` windows, zero-padding bottom and right.

    Parameters
    ----------
    x : Tensor
        Channels-last feature map.
    window : int
        Window side.

    Returns
    -------
    windows : Tensor
        Windows in row-major window order per image.
    padded_hw : tuple of int
        Padded size ``(Hp, Wp)``.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.reshape(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: reassemble windows and crop the padding; returns ``[B, H, W, C]``."""
    hp, wp = padded_hw
    nh, nw = hp // window, wp // window
    b = windows.shape[0] // (nh * nw)
    x = windows.reshape(b, nh, nw, window, window, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, : hw[0], : hw[1], :]


def _pool_channels_last(x: Tensor, pool: nn.Module) -> Tensor:
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: 7x7 convolution with stride 4, returned channels-last."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, 3, H, W]`` images to ``[B, H/4, W/4, C]`` tokens."""
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention whose queries may be max-pooled (stage transition), reducing the output resolution."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """Attend within ``x [B, H, W, C]``; returns ``[B, H', W', C_out]`` (``H' = H / stride`` if pooled)."""
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)
        if self.q_pool is not None:
            q = _pool_channels_last(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (identity in eval or with rate 0)."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        """Drop whole samples of ``x`` with probability ``rate`` during training."""
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MultiScaleBlock(nn.Module):
    """Hiera block: (windowed) attention with optional query pooling and width change, then an MLP.

    Parameters
    ----------
    dim, dim_out : int
        Input and output width.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP hidden width relative to ``dim_out``.
    drop_path : float
        Stochastic depth rate.
    q_stride : tuple of int, optional
        Query pooling stride (stage transition) or ``None``.
    window_size : int
        Attention window side; 0 means global attention.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 q_stride: tuple[int, int] | None = None, window_size: int = 0) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_pool=self.pool)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x [B, H, W, C]``."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = _pool_channels_last(shortcut, self.pool)
        window = self.window_size
        hw = (x.shape[1], x.shape[2])
        padded_hw = hw
        if window > 0:
            x, padded_hw = window_partition(x, window)
        x = self.attn(x)
        if self.q_stride:
            window = self.window_size // self.q_stride[0]
            hw = (shortcut.shape[1], shortcut.shape[2])
            if window > 0:
                padded_hw = (hw[0] + (-hw[0]) % window, hw[1] + (-hw[1]) % window)
        if self.window_size > 0:
            x = window_unpartition(x, window, padded_hw, hw)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Hiera(nn.Module):
    """Hiera trunk returning the output of every stage.

    Parameters
    ----------
    config : HieraConfig
        Trunk hyper-parameters.
    """

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.config = config
        depth = sum(config.stages)
        self.stage_ends = [sum(config.stages[: i + 1]) - 1 for i in range(len(config.stages))]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][: config.q_pool]
        self.patch_embed = PatchEmbed(embed_dim=config.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.embed_dim, *config.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, config.embed_dim, config.window_spec[0], config.window_spec[0]))
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]

        self.blocks = nn.ModuleList()
        dim, heads, stage = config.embed_dim, config.num_heads, 0
        for i in range(depth):
            # The first block of a stage still uses the previous stage's window (before its query pooling).
            window = 0 if i in config.global_att_blocks else config.window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * config.dim_mul)
                heads = int(heads * config.head_mul)
                stage += 1
            self.blocks.append(MultiScaleBlock(
                dim, dim_out, heads, mlp_ratio=config.mlp_ratio, drop_path=rates[i],
                q_stride=config.q_stride if i in q_pool_blocks else None, window_size=window))
            dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]

    def position_embedding(self, hw: tuple[int, int]) -> Tensor:
        """Background embedding interpolated (bicubic) to ``hw`` plus the tiled window embedding, channels-last."""
        pos = F.interpolate(self.pos_embed, size=hw, mode="bicubic", align_corners=False)
        win = self.pos_embed_window
        reps = (hw[0] // win.shape[-2], hw[1] // win.shape[-1])
        if reps[0] * win.shape[-2] != hw[0] or reps[1] * win.shape[-1] != hw[1]:
            raise ValueError(f"Hiera: patch grid {hw} is not a multiple of the window {tuple(win.shape[-2:])}")
        pos = pos + win.tile(1, 1, *reps)
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encode ``[B, 3, H, W]`` images into one ``[B, C_i, H_i, W_i]`` map per stage (finest first)."""
        x = self.patch_embed(x)
        x = x + self.position_embedding((x.shape[1], x.shape[2]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
