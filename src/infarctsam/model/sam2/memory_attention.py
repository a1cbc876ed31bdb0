"""Memory attention: condition the current frame's features on encoded memories and object pointers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .attention import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to the memory, feed-forward network.

    Queries are used without position encoding; the memory keys get their position encoding added
    (SAM 2.1 settings ``pos_enc_at_attn=False``, ``pos_enc_at_cross_attn_queries=False``,
    ``pos_enc_at_cross_attn_keys=True``).

    Parameters
    ----------
    d_model : int
        Width of the frame tokens.
    kv_in_dim : int
        Width of the memory tokens.
    num_heads : int
        Attention heads.
    dim_feedforward : int
        Hidden width of the feed-forward network.
    dropout : float
        Dropout (training only).
    rope_theta : float
        RoPE frequency base.
    """

    def __init__(self, d_model: int = 256, kv_in_dim: int = 64, num_heads: int = 1, dim_feedforward: int = 2048,
                 dropout: float = 0.1, rope_theta: float = 10000.0) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, num_heads, dropout=dropout, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(d_model, num_heads, dropout=dropout, kv_in_dim=kv_in_dim,
                                              rope_theta=rope_theta, rope_k_repeat=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, memory_pos: Tensor, feat_hw: tuple[int, int],
                num_k_exclude_rope: int = 0, memory_bias: Tensor | None = None) -> Tensor:
        """Update frame tokens ``tgt [B, HW, C]`` with ``memory [B, M, Ckv]`` and its position ``memory_pos``
        (``memory_bias [B, M]``: ``-inf`` hides padded memory tokens)."""
        x = self.norm1(tgt)
        tgt = tgt + self.dropout1(self.self_attn(x, x, x, feat_hw=feat_hw))
        x = self.norm2(tgt)
        x = self.cross_attn_image(x, memory + memory_pos, memory, feat_hw=feat_hw,
                                  num_k_exclude_rope=num_k_exclude_rope, key_bias=memory_bias)
        tgt = tgt + self.dropout2(x)
        x = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(x)


class MemoryAttention(nn.Module):
    """Stack of :class:`MemoryAttentionLayer` with a final LayerNorm.

    Parameters
    ----------
    d_model : int
        Width of the frame tokens.
    num_layers : int
        Number of layers.
    kv_in_dim : int
        Width of the memory tokens.
    num_heads, dim_feedforward : int
        Per-layer heads and feed-forward width.
    dropout : float
        Dropout (training only).
    rope_theta : float
        RoPE frequency base.
    pos_enc_at_input : bool
        Add ``0.1 *`` the frame position encoding to the input tokens.
    """

    def __init__(self, d_model: int = 256, num_layers: int = 4, kv_in_dim: int = 64, num_heads: int = 1,
                 dim_feedforward: int = 2048, dropout: float = 0.1, rope_theta: float = 10000.0,
                 pos_enc_at_input: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, kv_in_dim, num_heads, dim_feedforward, dropout, rope_theta)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input

    def forward(self, curr: Tensor, curr_pos: Tensor, memory: Tensor, memory_pos: Tensor, feat_hw: tuple[int, int],
                num_obj_ptr_tokens: int = 0, memory_bias: Tensor | None = None) -> Tensor:
        """Condition the frame on the memory.

        Parameters
        ----------
        curr, curr_pos : Tensor
            ``[B, H*W, C]`` frame tokens (row-major ``feat_hw`` grid) and their position encoding.
        memory, memory_pos : Tensor
            ``[B, M, Ckv]`` memory tokens: spatial memories (whole frames on the same grid) followed by
            ``num_obj_ptr_tokens`` object-pointer tokens, and their position encodings.
        feat_hw : tuple of int
            Frame grid ``(H, W)``.
        num_obj_ptr_tokens : int
            Number of trailing pointer tokens (not rotated by RoPE).
        memory_bias : Tensor, optional
            ``[B, M]`` added to the cross-attention logits: 0 for real memory tokens, ``-inf`` for padding, so that a
            fixed-size memory layout (compiled runtimes) gives the result of the unpadded memory.

        Returns
        -------
        Tensor
            ``[B, H*W, C]`` conditioned tokens.
        """
        out = curr + 0.1 * curr_pos if self.pos_enc_at_input else curr
        for layer in self.layers:
            out = layer(out, memory, memory_pos, feat_hw, num_k_exclude_rope=num_obj_ptr_tokens,
                        memory_bias=memory_bias)
        return self.norm(out)
