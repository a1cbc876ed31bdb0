"""Small building blocks shared by the SAM 2.1 modules: MLP, channel LayerNorm and position encodings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """Stack of linear layers with an activation between them (none after the last).

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int
        Widths of the input, hidden layers and output.
    num_layers : int
        Number of linear layers.
    activation : type of nn.Module
        Activation class applied after every layer but the last.
    sigmoid_output : bool
        Apply a sigmoid to the output.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 activation: type[nn.Module] = nn.ReLU, sigmoid_output: bool = False) -> None:
        super().__init__()
        widths_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        widths_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths_in, widths_out, strict=True))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP to the last dimension of ``x``."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel dimension of a ``[B, C, H, W]`` tensor.

    Parameters
    ----------
    num_channels : int
        Number of channels ``C``.
    eps : float
        Variance floor.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector, then scale and shift it."""
        centred = x - x.mean(dim=1, keepdim=True)
        var = centred.square().mean(dim=1, keepdim=True)
        return centred / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def _interleaved_sin_cos(values: Tensor, num_feats: int, temperature: float) -> Tensor:
    """Encode ``values [N]`` as ``[N, num_feats]`` alternating sin and cos of geometrically spaced frequencies."""
    k = torch.arange(num_feats, dtype=torch.float32, device=values.device)
    denom = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / num_feats)
    angles = values[:, None] / denom
    out = torch.empty_like(angles)
    out[:, 0::2] = torch.sin(angles[:, 0::2])
    out[:, 1::2] = torch.cos(angles[:, 1::2])
    return out


def sine_position_grid(height: int, width: int, channels: int, temperature: float = 10000.0,
                       device: torch.device | None = None) -> Tensor:
    """Normalised 2D sine position encoding of a ``height x width`` grid (DETR style, as used by SAM 2).

    Row and column indices ``1..n`` are divided by ``n`` and multiplied by ``2 pi``; the first half of the channels
    encodes the row, the second half the column.

    Parameters
    ----------
    height, width : int
        Grid size.
    channels : int
        Number of output channels (even).
    temperature : float
        Frequency base.
    device : torch.device, optional
        Device of the result.

    Returns
    -------
    Tensor
        ``[channels, height, width]`` float32 encoding.
    """
    half = channels // 2
    eps = 1e-6
    rows = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * (2 * math.pi)
    cols = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * (2 * math.pi)
    pe_rows = _interleaved_sin_cos(rows, half, temperature)  # [H, half]
    pe_cols = _interleaved_sin_cos(cols, half, temperature)  # [W, half]
    grid = torch.cat([pe_rows[:, None, :].expand(height, width, half), pe_cols[None, :, :].expand(height, width, half)],
                     dim=-1)
    return grid.permute(2, 0, 1).contiguous()


class SinePositionEncoding(nn.Module):
    """Module returning the 2D sine encoding for the spatial size of its input (no parameters).

    Parameters
    ----------
    num_pos_feats : int
        Output channels.
    temperature : float
        Frequency base.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError("num_pos_feats must be even")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self._cache: dict[tuple[int, int, str], Tensor] = {}

    def forward(self, x: Tensor) -> Tensor:
        """Return the ``[B, num_pos_feats, H, W]`` encoding matching ``x [B, *, H, W]`` (dtype of ``x``, a copy)."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        key = (h, w, str(x.device))
        pe = self._cache.get(key)
        if pe is None:
            with torch.no_grad():
                pe = sine_position_grid(h, w, self.num_pos_feats, self.temperature, x.device)
            self._cache[key] = pe
        return pe.to(x.dtype)[None].repeat(x.shape[0], 1, 1, 1)


def sine_position_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """1D sine encoding (sin block then cos block), used for the temporal position of object pointers.

    Parameters
    ----------
    positions : Tensor
        ``[N]`` positions (any float scale).
    dim : int
        Output width (even).
    temperature : float
        Frequency base.

    Returns
    -------
    Tensor
        ``[N, dim]`` encoding.
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=positions.device)
    denom = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)
    angles = positions[..., None].float() / denom
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RandomFourierPositionEncoding(nn.Module):
    """Position encoding with random spatial frequencies (SAM prompt encoder).

    Coordinates normalised to ``[0, 1]`` are mapped to ``[-1, 1]``, projected by a fixed Gaussian matrix
    ``[2, num_pos_feats]`` and encoded as ``[sin, cos]`` of ``2 pi`` times the projection.

    Parameters
    ----------
    num_pos_feats : int
        Number of frequencies (output width is twice this).
    scale : float
        Standard deviation of the random frequencies.
    """

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode(self, coords: Tensor) -> Tensor:
        """Encode ``[..., 2]`` (x, y) coordinates in ``[0, 1]`` as ``[..., 2 * num_pos_feats]``."""
        proj = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        proj = 2 * math.pi * proj
        return torch.cat([proj.sin(), proj.cos()], dim=-1)

    def grid(self, height: int, width: int) -> Tensor:
        """Encode the pixel centres of a ``height x width`` grid as ``[2 * num_pos_feats, height, width]``."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        coords = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)
        return self.encode(coords).permute(2, 0, 1)

    def points(self, coords: Tensor, image_hw: tuple[int, int]) -> Tensor:
        """Encode ``[B, N, 2]`` pixel (x, y) coordinates of an image of size ``image_hw`` as ``[B, N, C]``."""
        scale = torch.tensor([1.0 / image_hw[1], 1.0 / image_hw[0]], device=coords.device)
        return self.encode(coords.float() * scale)


def resize_mask_logits(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``[B, 1, H, W]`` masks bilinearly with anti-aliasing (as SAM 2 does for mask prompts)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
