"""TinyViT encoder: state-dict contract, attention-bias indexing, input sizes, layout, config and training helpers."""

from __future__ import annotations

import itertools

import pytest
import torch

from infarctsam.model.inspect import load_shape_spec
from infarctsam.model.tinyvit import DropPath, TinyViTConfig, build_tinyvit, relative_offset_index

TINY = TinyViTConfig(embed_dims=(8, 16, 16, 24), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 3), neck_dim=16)


def randomised(cfg: TinyViTConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_tinyvit(cfg)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model.eval()


def test_state_dict_equals_litemedsam_image_encoder_spec():
    expected = {k[len("image_encoder.") :]: v for k, v in load_shape_spec("litemedsam_state_dict_shapes.json").items()
                if k.startswith("image_encoder.")}
    got = {k: tuple(v.shape) for k, v in build_tinyvit().state_dict().items()}
    assert len(expected) == 298
    assert got == expected
    # the attention-bias tables are parameters (trained), their index tables are not saved
    names = dict(build_tinyvit(TINY).named_parameters())
    assert "layers.1.blocks.0.attn.attention_biases" in names
    assert not any("bias_index" in k for k in build_tinyvit(TINY).state_dict())


@pytest.mark.parametrize("window", [1, 3, 7])
def test_relative_offset_index_follows_first_seen_offset_order(window):
    points = list(itertools.product(range(window), range(window)))
    table: dict[tuple[int, int], int] = {}
    brute = []
    for p in points:
        for q in points:
            offset = (abs(p[0] - q[0]), abs(p[1] - q[1]))
            brute.append(table.setdefault(offset, len(table)))
    idx = relative_offset_index(window)
    assert idx.shape == (window * window, window * window)
    assert idx.reshape(-1).tolist() == brute
    assert int(idx.max()) == window * window - 1


@pytest.mark.parametrize(("h", "w"), [(256, 256), (512, 512), (250, 130), (33, 47)])
def test_output_size_formula(h, w):
    assert TinyViTConfig.litemedsam().output_size(h, w) == (-(-h // 4), -(-w // 4))


def test_arbitrary_input_sizes_including_512():
    model = randomised(TINY)
    with torch.no_grad():
        for h, w in [(512, 512), (224, 224), (45, 30)]:  # 224: every stage a whole number of windows
            out = model(torch.rand(1, 3, h, w))
            assert out.shape == (1, 16, *TINY.output_size(h, w))
            assert torch.isfinite(out).all()


def test_batch_items_are_independent_and_channels_last_is_equivalent():
    model = randomised(TINY, seed=1)
    x = torch.rand(3, 3, 100, 72)
    with torch.no_grad():
        batch = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
        cl = model(x.contiguous(memory_format=torch.channels_last))
    scale = float(batch.abs().max())
    assert float((batch - single).abs().max()) < 1e-5 * scale
    assert float((cl - batch).abs().max()) < 1e-5 * scale
    assert cl.is_contiguous()
    assert not torch.allclose(batch[0], batch[1])


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match=r"expected input \(B, 3, H, W\)"):
        build_tinyvit(TINY)(torch.rand(1, 1, 32, 32))


def test_gradient_checkpointing_gives_same_gradients():
    model = randomised(TINY, seed=2).train()
    x = torch.rand(2, 3, 24, 24)
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.grad_checkpointing = flag
        model(x).square().mean().backward()
        grads.append(model.layers[1].blocks[0].attn.attention_biases.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_drop_path_only_while_training():
    drop = DropPath(0.5)
    x = torch.ones(400, 2)
    torch.manual_seed(0)
    y = drop.train()(x)
    kept = y[:, 0] != 0
    assert 0.3 < kept.float().mean() < 0.7
    assert torch.all(y[kept] == 2.0)
    assert torch.equal(drop.eval()(x), x)


def test_config_round_trip_and_validation():
    cfg = TinyViTConfig.litemedsam()
    assert TinyViTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["embed_dims"] == [64, 128, 160, 320]
    with pytest.raises(ValueError, match="unknown TinyViT configuration keys: bogus"):
        TinyViTConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="depths must have 4 entries"):
        TinyViTConfig(depths=(2, 2, 6))
    with pytest.raises(ValueError, match="not divisible"):
        TinyViTConfig(num_heads=(2, 3, 5, 10))


@pytest.mark.parametrize("hw", [(7, 7), (9, 12), (32, 32)])
def test_window_attention_projects_the_padding_once_and_equals_zero_padding(hw):
    """The block's window attention pads the projected map with the projection of a zero token; that must be the
    reference's: zero-pad the map, attend in every window, crop."""
    import torch.nn.functional as F

    from infarctsam.model.tinyvit import TinyViTBlock

    torch.manual_seed(5)
    block = TinyViTBlock(dim=20, num_heads=2, window=7, mlp_ratio=2.0, local_conv=3, drop_path=0.0).eval()
    with torch.no_grad():
        block.attn.norm.bias.normal_()  # a zero token's projection is then not the qkv bias alone
        block.attn.attention_biases.normal_()
        x = torch.randn(2, *hw, 20)
        h, w = hw
        pad_h, pad_w = (-h) % 7, (-w) % 7
        padded = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (h + pad_h) // 7, (w + pad_w) // 7
        windows = padded.reshape(2, nh, 7, nw, 7, 20).transpose(2, 3).reshape(2 * nh * nw, 49, 20)
        reference = block.attn(windows).view(2, nh, nw, 7, 7, 20).transpose(2, 3).reshape(2, nh * 7, nw * 7, 20)
        got = block._windowed_attention(x)
    torch.testing.assert_close(got, reference[:, :h, :w], atol=1e-5, rtol=1e-5)
