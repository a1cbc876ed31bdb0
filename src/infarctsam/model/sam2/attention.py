"""Multi-head attention with optional channel downsampling and axial rotary position encoding (RoPE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention whose queries, keys and values are projected to ``embedding_dim // downsample_rate``.

    Parameters
    ----------
    embedding_dim : int
        Width of the queries and of the output.
    num_heads : int
        Number of heads (must divide the internal width).
    downsample_rate : int
        Reduction of the internal width.
    dropout : float
        Attention dropout (training only).
    kv_in_dim : int, optional
        Width of the keys and values if different from ``embedding_dim``.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1, dropout: float = 0.0,
                 kv_in_dim: int | None = None) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError("num_heads must divide the internal attention width")
        kv_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _split(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, key_bias: Tensor | None = None) -> Tensor:
        mask = None if key_bias is None else key_bias[:, None, None, :].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout_p if self.training else 0.0)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attend ``q [B, Nq, C]`` to ``k, v [B, Nk, Ckv]``; returns ``[B, Nq, C]``."""
        return self._attend(self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v)))


def axial_rope_angles(head_dim: int, height: int, width: int, theta: float = 10000.0,
                      device: torch.device | None = None) -> Tensor:
    """Rotation angles of the axial 2D RoPE for a row-major ``height x width`` token grid.

    The first half of the rotated channel pairs encodes the column, the second half the row, each with
    ``head_dim // 4`` frequencies ``theta ** (-4 i / head_dim)``.

    Parameters
    ----------
    head_dim : int
        Channels per head (multiple of 4).
    height, width : int
        Token grid size.
    theta : float
        Frequency base.
    device : torch.device, optional
        Device of the result.

    Returns
    -------
    Tensor
        ``[height * width, head_dim // 2]`` angles.
    """
    n_freq = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4, device=device)[:n_freq].float() / head_dim))
    idx = torch.arange(height * width, device=device)
    cols = (idx % width).float()
    rows = torch.div(idx, width, rounding_mode="floor").float()
    return torch.cat([torch.outer(cols, freqs), torch.outer(rows, freqs)], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive channel pairs of ``x [..., N, D]`` by angles given as ``cos, sin [N, D // 2]``.

    Written as ``x * cos + swap(x) * sin`` (``swap`` turns each pair ``(a, b)`` into ``(-b, a)``: a gather and a
    sign) rather than by stacking the two rotated halves: the same float32 result, bit for bit, without the
    interleaving concatenation or reversed slice that compiled runtimes (OpenVINO) execute slowly.
    """
    xf = x.float()
    dim = x.shape[-1]
    swap = torch.arange(dim, device=x.device).reshape(-1, 2).flip(-1).flatten()
    sign = torch.tensor([-1.0, 1.0], device=x.device).repeat(dim // 2)
    swapped = xf.index_select(-1, swap) * sign
    return (xf * cos.repeat_interleave(2, dim=-1) + swapped * sin.repeat_interleave(2, dim=-1)).type_as(x)


class RoPEAttention(Attention):
    """Attention with axial rotary position encoding on queries and keys.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`Attention`.
    rope_theta : float
        RoPE frequency base.
    rope_k_repeat : bool
        Keys hold several frames of the query grid (memories); the query angles are tiled over them.
    """

    def __init__(self, *args, rope_theta: float = 10000.0, rope_k_repeat: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self._angle_cache: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}
        self._key_angle_cache: dict[tuple[int, int, int], tuple[Tensor, Tensor]] = {}

    def _cos_sin(self, feat_hw: tuple[int, int], device: torch.device) -> tuple[Tensor, Tensor]:
        key = (int(feat_hw[0]), int(feat_hw[1]), str(device))
        if key not in self._angle_cache:
            head_dim = self.internal_dim // self.num_heads
            angles = axial_rope_angles(head_dim, key[0], key[1], self.rope_theta, device)
            self._angle_cache[key] = (angles.cos(), angles.sin())
        return self._angle_cache[key]

    def _key_angles(self, cos: Tensor, sin: Tensor, repeats: int, n_plain: int) -> tuple[Tensor, Tensor]:
        """Key angles: the query grid's ``repeats`` times, then ``n_plain`` keys left unrotated (angle 0)."""
        key = (repeats, n_plain, cos.data_ptr())
        if key not in self._key_angle_cache:
            plain = cos.new_zeros(n_plain, cos.shape[1])
            self._key_angle_cache = {key: (torch.cat([cos.repeat(repeats, 1), plain + 1.0]),
                                           torch.cat([sin.repeat(repeats, 1), plain]))}
        return self._key_angle_cache[key]

    def forward(self, q: Tensor, k: Tensor, v: Tensor, feat_hw: tuple[int, int],
                num_k_exclude_rope: int = 0, key_bias: Tensor | None = None) -> Tensor:
        """Attend with RoPE.

        Parameters
        ----------
        q : Tensor
            ``[B, H*W, C]`` queries on the ``feat_hw`` grid.
        k, v : Tensor
            ``[B, Nk, Ckv]`` keys and values; the first ``Nk - num_k_exclude_rope`` keys lie on the same grid
            (repeated frames when ``rope_k_repeat``).
        feat_hw : tuple of int
            Query grid ``(H, W)``.
        num_k_exclude_rope : int
            Number of trailing keys left unrotated (object pointer tokens).
        key_bias : Tensor, optional
            ``[B, Nk]`` added to the attention logits of each key (``-inf`` hides a key: padded memory slots).

        Returns
        -------
        Tensor
            ``[B, H*W, C]``.
        """
        q = self._split(self.q_proj(q))
        k = self._split(self.k_proj(k))
        v = self._split(self.v_proj(v))
        cos, sin = self._cos_sin(feat_hw, q.device)
        if q.shape[-2] != cos.shape[0]:
            raise ValueError(f"RoPE attention: {q.shape[-2]} queries do not match the grid {tuple(feat_hw)}")
        q = apply_rope(q, cos, sin)
        n_rope = int(k.shape[-2]) - num_k_exclude_rope
        if n_rope > 0:
            if n_rope != q.shape[-2] and not self.rope_k_repeat:
                raise ValueError("RoPE attention: keys and queries differ in length without rope_k_repeat")
            repeats, rest = divmod(n_rope, int(cos.shape[0]))
            if rest:
                raise ValueError("RoPE attention: rotated keys are not a whole number of query grids")
            # the trailing keys are "rotated" by angle 0 (cos 1, sin 0), which leaves them exactly as they are
            cos_k, sin_k = self._key_angles(cos, sin, repeats, num_k_exclude_rope)
            k = apply_rope(k, cos_k, sin_k)
        return self._attend(q, k, v, key_bias)
