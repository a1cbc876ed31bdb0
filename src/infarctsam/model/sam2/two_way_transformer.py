"""Two-way transformer of the SAM mask decoder (tokens attend to the image and the image to the tokens)."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import Attention
from .layers import MLP


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token-to-image attention, token MLP, then image-to-token attention.

    Parameters
    ----------
    embedding_dim : int
        Width of tokens and image embedding.
    num_heads : int
        Attention heads.
    mlp_dim : int
        Hidden width of the token MLP.
    attention_downsample_rate : int
        Internal width reduction of the cross-attentions.
    skip_first_layer_pe : bool
        The first block applies self-attention without position encoding and without residual.
    """

    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int = 2048, attention_downsample_rate: int = 2,
                 skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor]:
        """Update tokens ``queries [B, N, C]`` and image tokens ``keys [B, HW, C]``."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Stack of :class:`TwoWayAttentionBlock` followed by a final token-to-image attention.

    Parameters
    ----------
    depth : int
        Number of blocks.
    embedding_dim : int
        Token and image width.
    num_heads : int
        Attention heads.
    mlp_dim : int
        Hidden width of the token MLPs.
    attention_downsample_rate : int
        Internal width reduction of the cross-attentions.
    """

    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 attention_downsample_rate: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate,
                                 skip_first_layer_pe=(i == 0))
            for i in range(depth))
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor) -> tuple[Tensor, Tensor]:
        """Run the transformer.

        Parameters
        ----------
        image_embedding, image_pe : Tensor
            ``[B, C, h, w]`` image embedding and its position encoding.
        point_embedding : Tensor
            ``[B, N, C]`` tokens (also used as their own position encoding).

        Returns
        -------
        tokens : Tensor
            ``[B, N, C]`` processed tokens.
        image_tokens : Tensor
            ``[B, h*w, C]`` processed image embedding.
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
