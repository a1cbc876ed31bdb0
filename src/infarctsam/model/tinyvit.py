"""TinyViT image encoder as used by LiteMedSAM, written for infarctsam (no timm dependency).

Architecture (LiteMedSAM preset, 256 x 256 input)
------------------------------------------------
* ``patch_embed``: two 1x1 conv+BN layers with a GELU between them (3 -> 32 -> 64 channels). With the LiteMedSAM
  preset it does not downsample: stage 0 runs at full input resolution.
* ``layers.0``: two inverted-residual (MBConv) blocks, then a patch merging (conv1x1, depthwise conv3x3 stride 2,
  conv1x1) to 128 channels at 1/2 resolution.
* ``layers.1..3``: TinyViT blocks (window attention with a learned relative-position bias, depthwise 3x3
  "local conv", MLP). Patch merging between them: stride 2 after stage 1, stride 1 after stage 2 (the 320-channel
  stage keeps the 1/4 resolution), none after stage 3.
* ``neck``: conv1x1 -> LayerNorm2d -> conv3x3 -> LayerNorm2d, 256 channels.

The state-dict keys and shapes equal the ``image_encoder.*`` entries of LiteMedSAM's ``lite_medsam.pth`` (with that
prefix removed), so the published weights load with ``strict=True``.

Input sizes
-----------
Nothing in the weights depends on the input size (attention-bias tables depend only on the window size), and every
spatial size is taken from the tensor at run time. Any ``H x W`` works: the output is ``256 x ceil(H/4) x ceil(W/4)``
for the LiteMedSAM preset (256 -> 64 x 64, 512 -> 128 x 128). Feature maps whose size is not a multiple of the window
are zero-padded to whole windows before attention and cropped after it, exactly as the reference implementation does
for its 64 x 64 stages. The published weights were trained at 256 x 256 only: at 512 each attention window covers a
quarter of the anatomy it saw in training and LiteMedSAM's prompt encoder / mask decoder expect a 64 x 64 embedding,
so larger inputs need fine-tuning (and a dense positional encoding of the matching size) before their output means
anything.

Memory layout
-------------
Between the attention stages the features are kept as ``(B, H, W, C)`` (channels-last) tensors; convolutions receive
``permute``-d views of them, which PyTorch treats as ``channels_last`` NCHW tensors, so no layout copies are made.
The encoder also accepts ``torch.channels_last`` inputs. The output is a contiguous NCHW tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TinyViT", "TinyViTConfig", "build_tinyvit"]


@dataclass(frozen=True)
class TinyViTConfig:
    """Architecture of a TinyViT encoder with a SAM-style neck.

    The defaults are the LiteMedSAM preset (``TinyViTConfig.litemedsam()``).

    Attributes
    ----------
    img_size : int
        Image size the weights were trained at (informative: the encoder accepts any size).
    in_chans : int
        Input channels.
    embed_dims, depths : tuple of int
        Channels and number of blocks of each stage. Stage 0 is convolutional (MBConv), the others are attention stages.
    num_heads, window_sizes : tuple of int
        Attention heads and window size of each stage (the entries of stage 0 are unused).
    merge_strides : tuple of int
        Stride of the patch merging after stage ``i`` (one entry per stage but the last).
    mlp_ratio, mbconv_expand_ratio : float
        Hidden-width ratio of the MLPs and of the MBConv blocks.
    local_conv_size : int
        Kernel size of the depthwise convolution between attention and MLP.
    patch_embed_kernel, patch_embed_stride : int
        Kernel and stride of each of the two patch-embedding convolutions (LiteMedSAM: 1 and 1; MobileSAM: 3 and 2).
    neck_dim : int
        Output channels of the neck.
    drop_path_rate : float
        Maximum stochastic-depth rate (linearly increasing over blocks); 0 for inference.
    """

    img_size: int = 256
    in_chans: int = 3
    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    merge_strides: tuple[int, ...] = (2, 2, 1)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    local_conv_size: int = 3
    patch_embed_kernel: int = 1
    patch_embed_stride: int = 1
    neck_dim: int = 256
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.embed_dims)
        for name in ("depths", "num_heads", "window_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
            if len(getattr(self, name)) != n:
                raise ValueError(f"TinyViTConfig.{name} must have {n} entries (one per stage)")
        object.__setattr__(self, "embed_dims", tuple(int(v) for v in self.embed_dims))
        object.__setattr__(self, "merge_strides", tuple(int(v) for v in self.merge_strides))
        if len(self.merge_strides) != n - 1:
            raise ValueError(f"TinyViTConfig.merge_strides must have {n - 1} entries")
        for dim, heads in zip(self.embed_dims[1:], self.num_heads[1:], strict=True):
            if dim % heads:
                raise ValueError(f"stage width {dim} is not divisible by its {heads} attention heads")

    @classmethod
    def litemedsam(cls) -> TinyViTConfig:
        """Return the configuration of LiteMedSAM's image encoder (256 x 256 input, 64 x 64 x 256 output)."""
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-serialisable dict (for model cards)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TinyViTConfig:
        """Build a configuration from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TinyViT configuration keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the spatial size of the embedding produced for a ``height x width`` input."""

        def conv_out(n: int, k: int, s: int) -> int:
            return (n + 2 * (k // 2) - k) // s + 1

        for _ in range(2):
            height = conv_out(height, self.patch_embed_kernel, self.patch_embed_stride)
            width = conv_out(width, self.patch_embed_kernel, self.patch_embed_stride)
        for s in self.merge_strides:
            height, width = conv_out(height, 3, s), conv_out(width, 3, s)
        return height, width


class ConvBN(nn.Module):
    """Bias-free convolution followed by batch normalisation (keys ``c.*`` and ``bn.*``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.c(x))


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p`` while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Two conv+BN layers with a GELU between them (``seq.0`` and ``seq.2``)."""

    def __init__(self, cin: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        half = dim // 2
        self.seq = nn.Sequential(ConvBN(cin, half, kernel, stride), nn.GELU(), ConvBN(half, dim, kernel, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise 3x3, project 1x1, add, GELU (NCHW in and out)."""

    def __init__(self, dim: int, expand_ratio: float, drop_path: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(x + self.drop_path(self.conv3(y)))


class PatchMerging(nn.Module):
    """Conv1x1 -> GELU -> depthwise conv3x3 (stride ``stride``) -> GELU -> conv1x1; NCHW in, (B, H, W, C) out."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return self.conv3(x).permute(0, 2, 3, 1)


def relative_offset_index(window: int) -> torch.Tensor:
    """Index into the ``window**2`` attention-bias table for every (query, key) pair of a window.

    The table holds one bias per absolute offset ``(|dy|, |dx|)``, stored at ``|dy| * window + |dx|`` (the order in
    which a row-major sweep of the window first meets each offset).
    """
    coords = torch.arange(window)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    return (yy[:, None] - yy[None, :]).abs() * window + (xx[:, None] - xx[None, :]).abs()


class WindowAttention(nn.Module):
    """Pre-norm multi-head attention inside one window, with a learned bias per head and absolute offset."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self.register_buffer("bias_index", relative_offset_index(window), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend within each window; ``x`` is ``(B_windows, N, C)``."""
        return self.proj(self.attend(self.project(x)))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Queries, keys and values of tokens ``(..., C)``: ``(..., 3C)``, laid out head by head
        (``[q_h0 k_h0 v_h0 q_h1 k_h1 v_h1 ...]``)."""
        return self.qkv(self.norm(x))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """Attention of windows of projected tokens ``(B_windows, N, 3C)``, before the output projection:
        ``(B_windows, N, C)``."""
        b, n, _ = qkv.shape
        q, k, v = qkv.view(b, n, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4).unbind(0)
        # Windows hold at most window**2 tokens, so the (windows, heads, N, N) scores are small; the explicit form
        # is as fast as fused attention on the CPU and matches the reference implementation's rounding closely.
        scores = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.bias_index]
        out = scores.softmax(dim=-1) @ v
        return out.transpose(1, 2).reshape(b, n, -1)


class Mlp(nn.Module):
    """Pre-norm two-layer MLP with GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Window attention, depthwise local conv and MLP on a ``(B, H, W, C)`` feature map."""

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, local_conv: int, drop_path: float):
        super().__init__()
        self.window = window
        self.attn = WindowAttention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, local_conv, groups=dim)
        self.drop_path = DropPath(drop_path)

    def _windowed_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Window attention over a map zero-padded to whole windows (the reference implementation's padding).

        The padded tokens are zeros, so their normalised projection is one vector (the projection of the
        LayerNorm's bias): it is computed once and the map's queries, keys and values are padded with it, and the
        output projection runs on the map's own tokens only. The result is the reference's (the padded tokens still
        take part in their windows' attention) for fewer FLOPs: about 7% of the encoder at 128 px."""
        b, h, w, c = x.shape
        ws = self.window
        pad_h, pad_w = (-h) % ws, (-w) % ws
        qkv = self.attn.project(x)
        if pad_h or pad_w:
            fill = self.attn.project(x.new_zeros(1, 1, 1, c))
            qkv = torch.cat([qkv, fill.expand(b, h, pad_w, 3 * c)], dim=2)
            qkv = torch.cat([qkv, fill.expand(b, pad_h, w + pad_w, 3 * c)], dim=1)
        nh, nw = (h + pad_h) // ws, (w + pad_w) // ws
        windows = qkv.reshape(b, nh, ws, nw, ws, 3 * c).transpose(2, 3).reshape(b * nh * nw, ws * ws, 3 * c)
        out = self.attn.attend(windows).view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, nh * ws, nw * ws, c)
        return self.attn.proj(out[:, :h, :w] if pad_h or pad_w else out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._windowed_attention(x))
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(self.mlp(x))


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks on an NCHW map, then patch merging."""

    def __init__(self, dim: int, out_dim: int, depth: int, expand: float, stride: int, drop_path: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand, drop_path[i]) for i in range(depth))
        self.downsample = PatchMerging(dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class AttentionStage(nn.Module):
    """An attention stage on a ``(B, H, W, C)`` map, optionally followed by patch merging."""

    def __init__(self, cfg: TinyViTConfig, i: int, drop_path: list[float]) -> None:
        super().__init__()
        dim = cfg.embed_dims[i]
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, cfg.num_heads[i], cfg.window_sizes[i], cfg.mlp_ratio, cfg.local_conv_size, p)
            for p in drop_path
        )
        last = i == len(cfg.embed_dims) - 1
        self.downsample = None if last else PatchMerging(dim, cfg.embed_dims[i + 1], cfg.merge_strides[i])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2))
        return x


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of an NCHW map (eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class TinyViT(nn.Module):
    """TinyViT image encoder with a SAM neck: ``(B, in_chans, H, W)`` -> ``(B, neck_dim, H', W')``.

    See the module docstring for the architecture and the supported input sizes.
    """

    def __init__(self, config: TinyViTConfig | None = None) -> None:
        super().__init__()
        cfg = config or TinyViTConfig.litemedsam()
        self.config = cfg
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed(cfg.in_chans, cfg.embed_dims[0], cfg.patch_embed_kernel, cfg.patch_embed_stride)
        total = sum(cfg.depths)
        rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(cfg.depths[:i]) for i in range(len(cfg.depths))]
        stages: list[nn.Module] = [
            ConvStage(
                cfg.embed_dims[0], cfg.embed_dims[1], cfg.depths[0], cfg.mbconv_expand_ratio, cfg.merge_strides[0],
                rates[: cfg.depths[0]],
            )
        ]
        for i in range(1, len(cfg.depths)):
            stages.append(AttentionStage(cfg, i, rates[starts[i] : starts[i] + cfg.depths[i]]))
        self.layers = nn.ModuleList(stages)
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.embed_dims[-1], cfg.neck_dim, 1, bias=False),
            LayerNorm2d(cfg.neck_dim),
            nn.Conv2d(cfg.neck_dim, cfg.neck_dim, 3, padding=1, bias=False),
            LayerNorm2d(cfg.neck_dim),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, MBConv):
                nn.init.zeros_(m.conv3.bn.weight)  # each MBConv starts as identity + GELU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, C, H, W)`` images into ``(B, neck_dim, H', W')`` embeddings (LiteMedSAM: ``H' = ceil(H/4)``)."""
        return self.neck(self.forward_features(x)).contiguous()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk without the neck: ``(B, embed_dims[-1], H', W')`` (what training caches when the neck is
        trained)."""
        if x.ndim != 4 or x.shape[1] != self.config.in_chans:
            raise ValueError(f"expected input (B, {self.config.in_chans}, H, W), got {tuple(x.shape)}")
        x = self.patch_embed(x)
        for stage in self.layers:
            if self.grad_checkpointing and self.training:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return x.permute(0, 3, 1, 2).contiguous()


def build_tinyvit(config: TinyViTConfig | None = None) -> TinyViT:
    """Build a randomly initialised TinyViT encoder (LiteMedSAM preset when ``config`` is None).

    Parameters
    ----------
    config : TinyViTConfig, optional
        Architecture; ``TinyViTConfig.litemedsam()`` by default.

    Returns
    -------
    TinyViT
        The encoder in training mode; call ``load_state_dict`` and ``eval()`` before inference.
    """
    return TinyViT(config)
