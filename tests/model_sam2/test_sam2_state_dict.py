"""Key/shape contract with the published SAM 2.1 Hiera-Tiny checkpoints (official and MedSAM2)."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import infarctsam.model.sam2 as sam2_pkg
from infarctsam.errors import ConfigError
from infarctsam.model.sam2 import Sam2Config, build_sam2, hiera_base_plus, hiera_small, hiera_tiny

TINY_KEYS = 471
TINY_VALUES = 38_962_754


def test_spec_file_is_the_expected_contract(spec):
    assert len(spec) == TINY_KEYS
    assert sum(int(torch.Size(s).numel()) for s in spec.values()) == TINY_VALUES


@pytest.mark.parametrize("image_size", [256, 512, 1024])
def test_tiny_state_dict_matches_spec_exactly(spec, image_size):
    with torch.device("meta"):
        model = build_sam2(hiera_tiny(image_size))
    sd = model.state_dict()
    assert set(sd) == set(spec), (sorted(set(sd) - set(spec)), sorted(set(spec) - set(sd)))
    wrong = {k: (list(sd[k].shape), spec[k]) for k in spec if list(sd[k].shape) != spec[k]}
    assert not wrong
    assert sum(t.numel() for t in sd.values()) == TINY_VALUES


def test_checkpoint_roundtrip_strict(tmp_path: Path, spec):
    torch.manual_seed(3)
    src = build_sam2(hiera_tiny(512))
    path = tmp_path / "ckpt.pt"
    torch.save({"model": src.state_dict()}, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    dst = build_sam2(hiera_tiny(512))
    result = dst.load_state_dict(loaded["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key in ("image_encoder.trunk.pos_embed", "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                "maskmem_tpos_enc", "obj_ptr_proj.layers.2.weight"):
        assert torch.equal(dst.state_dict()[key], src.state_dict()[key])


def test_strict_load_rejects_a_foreign_key(spec):
    torch.manual_seed(4)
    model = build_sam2(hiera_tiny(256))
    sd = dict(model.state_dict())
    sd["unexpected.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="unexpected"):
        model.load_state_dict(sd, strict=True)


def test_other_presets_have_their_trunk_layout():
    with torch.device("meta"):
        small = build_sam2(hiera_small(512)).state_dict()
        base = build_sam2(hiera_base_plus(512)).state_dict()
    assert max(int(k.split(".")[3]) for k in small if k.startswith("image_encoder.trunk.blocks.")) == 15
    assert max(int(k.split(".")[3]) for k in base if k.startswith("image_encoder.trunk.blocks.")) == 23
    assert list(base["image_encoder.trunk.pos_embed"].shape) == [1, 112, 14, 14]
    assert list(base["image_encoder.neck.convs.0.conv.weight"].shape) == [256, 896, 1, 1]
    assert list(small["image_encoder.trunk.blocks.14.proj.weight"].shape) == [768, 384]


def test_disabling_options_removes_their_parameters():
    cfg = hiera_tiny(256)
    bare = replace(cfg, no_obj_embed_spatial=False, use_mlp_for_obj_ptr_proj=False, proj_tpos_enc_in_obj_ptrs=False,
                   pred_obj_scores_mlp=False)
    with torch.device("meta"):
        sd = build_sam2(bare).state_dict()
    assert "no_obj_embed_spatial" not in sd
    assert "obj_ptr_tpos_proj.weight" not in sd
    assert list(sd["obj_ptr_proj.weight"].shape) == [256, 256]
    assert list(sd["sam_mask_decoder.pred_obj_score_head.weight"].shape) == [1, 256]


@pytest.mark.parametrize("bad", [{"image_size": 300}, {"image_size": 0}, {"mem_dim": 100},
                                 {"fixed_no_obj_ptr": True, "pred_obj_scores": False}])
def test_invalid_config_raises_config_error(bad):
    with pytest.raises(ConfigError):
        Sam2Config(**bad)


def test_with_image_size_keeps_architecture():
    cfg = hiera_tiny().with_image_size(512)
    assert cfg.image_size == 512 and cfg.image_embedding_size == 32
    assert cfg.trunk == hiera_tiny().trunk


def test_package_never_imports_reference_sam2():
    root = Path(sam2_pkg.__file__).resolve().parent
    offenders = []
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "sam2"]
    assert not offenders
