"""Unit tests of the SAM 2.1 building blocks (independent of the reference implementation)."""

from __future__ import annotations

import math

import pytest
import torch

from infarctsam.model.sam2.attention import RoPEAttention, apply_rope, axial_rope_angles
from infarctsam.model.sam2.config import HieraConfig
from infarctsam.model.sam2.hiera import Hiera, window_partition, window_unpartition
from infarctsam.model.sam2.layers import (
    LayerNorm2d,
    RandomFourierPositionEncoding,
    sine_position_1d,
    sine_position_grid,
)
from infarctsam.model.sam2.mask_decoder import MaskDecoder
from infarctsam.model.sam2.memory_encoder import MemoryEncoder
from infarctsam.model.sam2.prompt_encoder import PromptEncoder
from infarctsam.model.sam2.two_way_transformer import TwoWayTransformer


@pytest.mark.parametrize("hw", [(8, 8), (9, 13), (16, 7)])
def test_window_partition_roundtrip_with_padding(hw):
    x = torch.randn(2, *hw, 5)
    windows, padded = window_partition(x, 4)
    assert padded == (math.ceil(hw[0] / 4) * 4, math.ceil(hw[1] / 4) * 4)
    assert windows.shape == (2 * padded[0] * padded[1] // 16, 4, 4, 5)
    assert torch.equal(windows[0], x[0, :4, :4])
    assert torch.equal(window_unpartition(windows, 4, padded, hw), x)


def test_sine_grid_values():
    pe = sine_position_grid(4, 6, 8)
    assert pe.shape == (8, 4, 6)
    row_angle = 2 * math.pi * 2 / (4 + 1e-6)  # row index 1 -> position 2
    col_angle = 2 * math.pi * 3 / (6 + 1e-6)  # column index 2 -> position 3
    assert pe[0, 1, 2].item() == pytest.approx(math.sin(row_angle), abs=1e-6)
    assert pe[1, 1, 2].item() == pytest.approx(math.cos(row_angle), abs=1e-6)
    assert pe[3, 1, 2].item() == pytest.approx(math.cos(row_angle / 100.0), abs=1e-6)  # 10000 ** (2 * 1 / 4)
    assert pe[4, 1, 2].item() == pytest.approx(math.sin(col_angle), abs=1e-6)
    assert torch.equal(pe[:4, :, 0], pe[:4, :, 5])  # row half does not depend on the column


def test_sine_1d_layout():
    pe = sine_position_1d(torch.tensor([0.0, 0.5]), 8)
    assert pe.shape == (2, 8)
    assert torch.allclose(pe[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert pe[1, 0].item() == pytest.approx(math.sin(0.5), abs=1e-6)
    assert pe[1, 4].item() == pytest.approx(math.cos(0.5), abs=1e-6)


def test_rope_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    angles = axial_rope_angles(16, 4, 4)
    cos, sin = angles.cos(), angles.sin()
    x = torch.randn(1, 1, 16, 16)
    rot = apply_rope(x, cos, sin)
    assert torch.allclose(rot.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    # Same vectors at two positions: the dot product depends only on the offset between positions.
    q, k = torch.randn(16), torch.randn(16)
    qs, ks = apply_rope(q.expand(16, 16), cos, sin), apply_rope(k.expand(16, 16), cos, sin)
    dots = qs @ ks.T
    assert dots[0, 1].item() == pytest.approx(dots[5, 6].item(), abs=1e-4)  # both one column apart
    assert dots[0, 4].item() == pytest.approx(dots[6, 10].item(), abs=1e-4)  # both one row apart
    assert abs(dots[0, 1].item() - dots[0, 4].item()) > 1e-3


def test_rope_equals_the_rotation_of_each_channel_pair_bit_for_bit():
    torch.manual_seed(1)
    angles = axial_rope_angles(8, 4, 4)
    cos, sin = angles.cos(), angles.sin()
    x = torch.randn(2, 3, 16, 8)
    even, odd = x[..., 0::2], x[..., 1::2]
    expected = torch.empty_like(x)
    expected[..., 0::2] = even * cos - odd * sin
    expected[..., 1::2] = even * sin + odd * cos
    assert torch.equal(apply_rope(x, cos, sin), expected)
    # angle 0 leaves a vector exactly as it is (how the attention skips its trailing pointer keys)
    assert torch.equal(apply_rope(x, torch.ones_like(cos), torch.zeros_like(sin)), x)


def test_rope_attention_excludes_trailing_keys_and_repeats_frames():
    torch.manual_seed(0)
    attn = RoPEAttention(32, 1, kv_in_dim=8, rope_k_repeat=True).eval()
    q = torch.randn(1, 16, 32)
    mem = torch.randn(1, 2 * 16 + 3, 8)
    out = attn(q, mem, mem, feat_hw=(4, 4), num_k_exclude_rope=3)
    assert out.shape == (1, 16, 32)
    # the trailing keys are not rotated: by hand, with the frames rotated and the last 3 keys as they are
    cos, sin = attn._cos_sin((4, 4), q.device)
    qh = apply_rope(attn._split(attn.q_proj(q)), cos, sin)
    kh = attn._split(attn.k_proj(mem))
    kh = torch.cat([apply_rope(kh[:, :, :32], cos.repeat(2, 1), sin.repeat(2, 1)), kh[:, :, 32:]], dim=2)
    by_hand = attn.out_proj(torch.softmax(qh @ kh.transpose(-1, -2) / 32 ** 0.5, -1) @ attn._split(attn.v_proj(mem)))
    assert torch.allclose(out, by_hand.reshape(1, 16, 32), atol=1e-5)
    # a hidden key (bias -1e9) weighs nothing: the result equals attending without it
    bias = torch.zeros(1, 36)
    bias[0, 35] = -1e9
    padded = torch.cat([mem, torch.randn(1, 1, 8)], dim=1)
    hidden = attn(q, padded, padded, feat_hw=(4, 4), num_k_exclude_rope=4, key_bias=bias)
    assert torch.allclose(hidden, out, atol=1e-6)
    with pytest.raises(ValueError):
        attn(q, mem, mem, feat_hw=(4, 4), num_k_exclude_rope=0)  # 35 keys are not whole frames


def test_layernorm2d_normalises_channels():
    ln = LayerNorm2d(6)
    y = ln(torch.randn(2, 6, 3, 3) * 5 + 2)
    assert torch.allclose(y.mean(1), torch.zeros(2, 3, 3), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 3, 3), atol=1e-3)


def test_random_fourier_grid_equals_points_at_pixel_centres():
    torch.manual_seed(0)
    pe = RandomFourierPositionEncoding(8)
    grid = pe.grid(4, 5)
    pts = pe.points(torch.tensor([[[2.5, 1.5]]]), (4, 5))  # pixel (x=2, y=1) centre in a 4x5 image
    assert grid.shape == (16, 4, 5)
    assert torch.allclose(grid[:, 1, 2], pts[0, 0], atol=1e-5)


def test_hiera_stage_shapes_and_pos_embed_interpolation():
    torch.manual_seed(0)
    cfg = HieraConfig(embed_dim=8, num_heads=1, stages=(1, 2, 3, 1), global_att_blocks=(4,),
                      window_pos_embed_bkg_spatial_size=(3, 3))
    trunk = Hiera(cfg).eval()
    assert trunk.channel_list == [64, 32, 16, 8]
    with torch.no_grad():
        outs = trunk(torch.randn(1, 3, 128, 128))
        pos = trunk.position_embedding((32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 32, 32), (1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4)]
    assert pos.shape == (1, 32, 32, 8)
    with torch.no_grad():
        trunk.pos_embed.zero_()
        trunk.pos_embed_window.copy_(torch.arange(64.0).reshape(1, 1, 8, 8).expand(1, 8, 8, 8))
        tiled = trunk.position_embedding((32, 32))
    assert torch.equal(tiled[0, :8, :8, 0], tiled[0, 8:16, 24:32, 0])  # window embedding repeats every 8 tokens


def _prompt_encoder() -> PromptEncoder:
    torch.manual_seed(0)
    return PromptEncoder(32, (8, 8), (128, 128), mask_in_chans=16)


def test_prompt_encoder_padding_box_and_mask():
    enc = _prompt_encoder()
    pts = torch.tensor([[[10.0, 20.0]]])
    sparse, dense = enc((pts, torch.tensor([[1]])), None, None)
    assert sparse.shape == (1, 2, 32)  # click + padding point
    assert torch.equal(sparse[0, 1], enc.not_a_point_embed.weight[0])
    assert torch.equal(dense, enc.no_mask_embed.weight.reshape(1, 32, 1, 1).expand(1, 32, 8, 8))
    pos_only = enc.pe_layer.points(pts + 0.5, (128, 128))
    assert torch.allclose(sparse[0, 0], pos_only[0, 0] + enc.point_embeddings[1].weight[0])

    box = torch.tensor([[10.0, 20.0, 60.0, 90.0]])
    box_sparse, _ = enc(None, box, None)
    as_points, _ = enc.forward((box.reshape(1, 2, 2), torch.tensor([[2, 3]])), box, None)
    corners = enc.embed_points(box.reshape(1, 2, 2), torch.tensor([[2, 3]]), pad=False)
    assert torch.allclose(box_sparse, corners, atol=1e-6)
    assert as_points.shape == (1, 4, 32)  # points are not padded when a box is given

    _, mask_dense = enc(None, None, torch.randn(2, 1, 32, 32))
    assert mask_dense.shape == (2, 32, 8, 8)


def _decoder(**kw) -> MaskDecoder:
    torch.manual_seed(0)
    return MaskDecoder(32, TwoWayTransformer(2, 32, 2, 64), num_multimask_outputs=3, iou_head_hidden_dim=32,
                       pred_obj_scores=True, pred_obj_scores_mlp=True, **kw).eval()


def test_mask_decoder_multimask_selection_and_tokens():
    dec = _decoder(use_high_res_features=True, use_multimask_token_for_obj_ptr=True)
    img, pe = torch.randn(2, 32, 8, 8), torch.randn(1, 32, 8, 8)
    sparse, dense = torch.randn(2, 3, 32), torch.randn(2, 32, 8, 8)
    high = (torch.randn(2, 4, 32, 32), torch.randn(2, 8, 16, 16))
    with torch.no_grad():
        full = dec.predict_masks(img, pe, sparse, dense, high)
        multi = dec(img, pe, sparse, dense, True, high)
        single = dec(img, pe, sparse, dense, False, high)
    masks, iou, tokens, obj = full
    assert masks.shape == (2, 4, 32, 32) and iou.shape == (2, 4) and obj.shape == (2, 1)
    assert torch.equal(multi.masks, masks[:, 1:]) and torch.equal(multi.sam_tokens, tokens[:, 1:])
    assert torch.equal(single.masks, masks[:, :1]) and torch.equal(single.sam_tokens, tokens[:, :1])
    with pytest.raises(ValueError):
        dec(img, pe, sparse, dense, True, None)


def test_dynamic_multimask_falls_back_to_best_unstable_single_mask():
    dec = _decoder(dynamic_multimask_via_stability=True)
    stable = torch.full((1, 1, 4, 4), 5.0)
    unstable = torch.zeros(1, 1, 4, 4)  # every logit within +-delta: stability 0
    others = torch.randn(1, 3, 4, 4)
    iou = torch.tensor([[0.1, 0.2, 0.9, 0.3]])
    m, i = dec._dynamic_multimask(torch.cat([stable, others], 1), iou)
    assert torch.equal(m, stable) and i.item() == pytest.approx(0.1)
    m, i = dec._dynamic_multimask(torch.cat([unstable, others], 1), iou)
    assert torch.equal(m, others[:, 1:2]) and i.item() == pytest.approx(0.9)


def test_memory_encoder_shapes_and_mask_dependence():
    torch.manual_seed(0)
    enc = MemoryEncoder(32, 8, fuser_layers=1, mask_total_stride=16).eval()
    pix = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        feat_a, pos = enc(pix, torch.zeros(1, 1, 64, 64))
        feat_b, _ = enc(pix, torch.ones(1, 1, 64, 64) * 4)
    assert feat_a.shape == (1, 8, 4, 4) and pos.shape == (1, 8, 4, 4)
    assert not torch.allclose(feat_a, feat_b)
    assert torch.equal(pos[0], sine_position_grid(4, 4, 8))
