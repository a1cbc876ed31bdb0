"""Numerical parity with the reference SAM 2.1 implementation (a test-only dependency; infarctsam never imports it).

Install the reference into the venv (CPU only, does not change torch; check `pip list | grep torch` afterwards):

    SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps sam2==1.1.0
    pip install hydra-core iopath

The reference Hiera-Tiny is built from its SAM 2.1 hydra config at 256 px, its (randomised) weights are copied into
our model with ``strict=True``, and the outputs must agree within 1e-4 relative error
(``max |ours - reference| / max |reference|``). Without the reference package every test here is skipped.
"""

from __future__ import annotations

import copy

import pytest
import torch
from model_sam2_support import randomize_, set_object_bias

from infarctsam.model.sam2 import build_sam2, hiera_base_plus, hiera_small, hiera_tiny

try:
    from sam2.build_sam import build_sam2 as build_reference
except ImportError as exc:  # the reference is optional
    pytest.skip(f"reference SAM 2 (sam2==1.1.0 + hydra-core + iopath) is not installed: {exc}",
                allow_module_level=True)

SIZE = 256
TOL = 1e-4
HEAD_FIELDS = ("low_res_multimasks", "high_res_multimasks", "ious", "low_res_masks", "high_res_masks", "obj_ptr",
               "object_score_logits")
FIGURES: dict[str, float] = {}


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Maximum absolute difference relative to the reference's maximum magnitude."""
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    return float((ours.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12))


def check(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    err = rel_err(ours, ref)
    FIGURES[name] = max(err, FIGURES.get(name, 0.0))
    assert err < TOL, f"{name}: relative error {err:.3g}"


def _reference(config: str, size: int = 1024):
    overrides = [f"++model.image_size={size}"]
    return build_reference(config, None, device="cpu", mode="eval", hydra_overrides_extra=overrides)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = _reference("configs/sam2.1/sam2.1_hiera_t.yaml", SIZE)
    randomize_(ref, seed=11)
    set_object_bias(ref, 2.0)
    ours = build_sam2(hiera_tiny(SIZE))
    ours.load_state_dict(ref.state_dict(), strict=True)
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        ref_bb = ref.forward_image(images)
        our_bb = ours.forward_image(images)
    yield ref, ours, ref_bb, our_bb
    print("\nparity (max relative error):")
    for name, err in sorted(FIGURES.items()):
        print(f"  {name:40s} {err:.2e}")


def ref_frame(ref, backbone: dict, i: int):
    """Reference per-frame inputs of ``track_step`` for frame ``i`` of a batched backbone output."""
    one = {key: ([x[i:i + 1] for x in val] if isinstance(val, list) else val[i:i + 1]) for key, val in backbone.items()}
    _, feats, pos, sizes = ref._prepare_backbone_features(one)
    return feats, pos, sizes


def ref_pix_and_high_res(feats, sizes):
    pix = feats[-1].permute(1, 2, 0).reshape(1, 256, *sizes[-1])
    high = [x.permute(1, 2, 0).reshape(1, x.shape[2], *s) for x, s in zip(feats[:-1], sizes[:-1], strict=True)]
    return pix, high


def check_heads(tag: str, ours, ref_tuple) -> None:
    for field, ref_val in zip(HEAD_FIELDS, ref_tuple, strict=True):
        check(f"{tag}.{field}", getattr(ours, field), ref_val)


def check_step(tag: str, ours, ref_out: dict) -> None:
    check(f"{tag}.low_res_masks", ours.low_res_masks, ref_out["pred_masks"])
    check(f"{tag}.high_res_masks", ours.high_res_masks, ref_out["pred_masks_high_res"])
    check(f"{tag}.obj_ptr", ours.obj_ptr, ref_out["obj_ptr"])
    check(f"{tag}.object_score_logits", ours.object_score_logits, ref_out["object_score_logits"])
    check(f"{tag}.maskmem_features", ours.memory.features, ref_out["maskmem_features"])
    check(f"{tag}.maskmem_pos_enc", ours.memory.pos_enc, ref_out["maskmem_pos_enc"][-1])


def test_reference_checkpoint_layout_matches_spec(pair, spec):
    sd = pair[0].state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == spec


@pytest.mark.parametrize(("config", "preset"), [("configs/sam2.1/sam2.1_hiera_s.yaml", hiera_small),
                                                ("configs/sam2.1/sam2.1_hiera_b+.yaml", hiera_base_plus)])
def test_other_presets_match_reference_layout(config, preset):
    ref_sd = _reference(config).state_dict()
    with torch.device("meta"):
        ours_sd = build_sam2(preset()).state_dict()
    assert {k: tuple(v.shape) for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}


def test_image_encoder_parity(pair):
    _, _, ref_bb, our_bb = pair
    for level in range(3):
        check(f"image.backbone_fpn[{level}]", our_bb["backbone_fpn"][level], ref_bb["backbone_fpn"][level])
        check(f"image.vision_pos_enc[{level}]", our_bb["vision_pos_enc"][level], ref_bb["vision_pos_enc"][level])
    check("image.vision_features", our_bb["vision_features"], ref_bb["vision_features"])


def test_prompt_encoder_parity(pair):
    ref, ours, _, _ = pair
    box = torch.tensor([[40.0, 50.0, 180.0, 200.0]])
    pts, labels = torch.tensor([[[100.0, 80.0], [20.0, 30.0]]]), torch.tensor([[1, 0]], dtype=torch.int32)
    masks = torch.randn(1, 1, SIZE // 4, SIZE // 4, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        for tag, kwargs in {"box_mask": dict(points=None, boxes=box, masks=masks),
                            "points_box": dict(points=(pts, labels), boxes=box, masks=None),
                            "points": dict(points=(pts, labels), boxes=None, masks=None)}.items():
            ref_sparse, ref_dense = ref.sam_prompt_encoder(**kwargs)
            our_sparse, our_dense = ours.sam_prompt_encoder(**kwargs)
            check(f"prompt.{tag}.sparse", our_sparse, ref_sparse)
            check(f"prompt.{tag}.dense", our_dense, ref_dense)
        check("prompt.dense_pe", ours.sam_prompt_encoder.get_dense_pe(), ref.sam_prompt_encoder.get_dense_pe())


@pytest.mark.parametrize(("tag", "coords", "labels", "multimask"), [
    ("point", [[100.0, 80.0]], [1], True),
    ("box", [[40.0, 50.0], [180.0, 200.0]], [2, 3], False),  # single mask: dynamic multimask fallback path
])
def test_mask_decoder_parity_with_prompts(pair, tag, coords, labels, multimask):
    ref, ours, ref_bb, our_bb = pair
    pts, lab = torch.tensor([coords]), torch.tensor([labels], dtype=torch.int32)
    feats, _, sizes = ref_frame(ref, ref_bb, 0)
    pix, high = ref_pix_and_high_res(feats, sizes)
    f0 = ours.frame_features(our_bb).select(0)
    with torch.no_grad():
        ref_out = ref._forward_sam_heads(pix, point_inputs={"point_coords": pts, "point_labels": lab},
                                         high_res_features=high, multimask_output=multimask)
        sparse, dense = ours.embed_prompts(pts, lab)
        our_out = ours.forward_sam_heads(f0.image_embed, sparse, dense, multimask, f0.high_res)
    check_heads(f"heads.{tag}", our_out, ref_out)


def test_mask_decoder_parity_with_injected_embeddings(pair, monkeypatch):
    ref, ours, ref_bb, our_bb = pair
    gen = torch.Generator().manual_seed(14)
    sparse, dense = torch.randn(1, 3, 256, generator=gen), torch.randn(1, 256, SIZE // 16, SIZE // 16, generator=gen)
    monkeypatch.setattr(ref.sam_prompt_encoder, "forward", lambda points, boxes, masks: (sparse, dense))
    feats, _, sizes = ref_frame(ref, ref_bb, 1)
    pix, high = ref_pix_and_high_res(feats, sizes)
    f1 = ours.frame_features(our_bb).select(1)
    with torch.no_grad():
        for multimask in (True, False):
            ref_out = ref._forward_sam_heads(pix, high_res_features=high, multimask_output=multimask)
            our_out = ours.forward_sam_heads(f1.image_embed, sparse, dense, multimask, f1.high_res)
            check_heads(f"heads.injected.multimask={multimask}", our_out, ref_out)


def _empty_bank() -> dict:
    return {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}


def test_memory_conditioned_steps_parity(pair, monkeypatch):
    ref, ours, ref_bb, our_bb = pair
    frames = ours.frame_features(our_bb)
    pts, lab = torch.tensor([[[100.0, 80.0]]]), torch.tensor([[1]], dtype=torch.int32)
    clicks = {"point_coords": pts, "point_labels": lab}
    with torch.no_grad():
        # Frame 0: conditioning frame with one click (no memory: no_mem_embed is added).
        bank = _empty_bank()
        r0 = ref.track_step(0, True, *ref_frame(ref, ref_bb, 0), clicks, None, bank, 3)
        sparse, dense = ours.embed_prompts(pts, lab)
        o0 = ours.track_step(frames.select(0), [], sparse=sparse, dense=dense, mask_from_points=True,
                             multimask_output=ours.use_multimask(True, 1), num_frames=3)
        check_step("step0_cond", o0, r0)
        # Frame 1 conditioned on frame 0's memory and pointer.
        bank["cond_frame_outputs"][0] = r0
        r1 = ref.track_step(1, False, *ref_frame(ref, ref_bb, 1), None, None, bank, 3)
        o1 = ours.track_step(frames.select(1), [o0.memory.at_offset(1, True)], num_frames=3)
        check_step("step1_mem", o1, r1)
        # Frame 2: conditioning memory at offset 2 plus a recent memory at offset 1.
        bank["non_cond_frame_outputs"][1] = r1
        r2 = ref.track_step(2, False, *ref_frame(ref, ref_bb, 2), None, None, bank, 3)
        o2 = ours.track_step(frames.select(2), [o0.memory.at_offset(2, True), o1.memory.at_offset(1)], num_frames=3)
        check_step("step2_two_mem", o2, r2)
        # Reverse tracking to frame 0 from a conditioning frame 2 and a recent frame 1.
        back = {"cond_frame_outputs": {2: r2}, "non_cond_frame_outputs": {1: r1}}
        rb = ref.track_step(0, False, *ref_frame(ref, ref_bb, 0), None, None, back, 3, track_in_reverse=True)
        ob = ours.track_step(frames.select(0), [o2.memory.at_offset(2, True), o1.memory.at_offset(1)], num_frames=3)
        check_step("step_reverse", ob, rb)
        # Conditioning frames on both sides: the one ahead contributes its spatial memory but no pointer.
        both = {"cond_frame_outputs": {0: r0, 2: r2}, "non_cond_frame_outputs": {}}
        rs = ref.track_step(1, False, *ref_frame(ref, ref_bb, 1), None, None, both, 3)
        os_ = ours.track_step(frames.select(1), [o0.memory.at_offset(1, True), o2.memory.at_offset(-1, True)],
                              num_frames=3)
        check_step("step_cond_ahead", os_, rs)
        # Injected (learned) prompt embeddings on a memory-conditioned frame.
        gen = torch.Generator().manual_seed(15)
        inj_sparse, inj_dense = torch.randn(1, 2, 256, generator=gen), torch.randn(1, 256, 16, 16, generator=gen)
        monkeypatch.setattr(ref.sam_prompt_encoder, "forward", lambda points, boxes, masks: (inj_sparse, inj_dense))
        ri = ref.track_step(1, False, *ref_frame(ref, ref_bb, 1), None, None, bank, 3)
        oi = ours.track_step(frames.select(1), [o0.memory.at_offset(1, True)], sparse=inj_sparse, dense=inj_dense,
                             num_frames=3)
        check_step("step_injected", oi, ri)


def test_mask_input_step_parity(pair):
    ref, ours, ref_bb, our_bb = pair
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 60:140, 70:160] = 1.0
    with torch.no_grad():
        r = ref.track_step(0, True, *ref_frame(ref, ref_bb, 0), None, mask, _empty_bank(), 3)
        o = ours.mask_as_output_step(ours.frame_features(our_bb).select(0), mask)
    check_step("mask_input", o, r)


def test_object_absent_step_parity(pair):
    ref, ours, ref_bb, our_bb = pair
    ref, ours = copy.deepcopy(ref), copy.deepcopy(ours)
    set_object_bias(ref, -5.0)
    set_object_bias(ours, -5.0)
    frames = ours.frame_features(our_bb)
    with torch.no_grad():
        r0 = ref.track_step(0, True, *ref_frame(ref, ref_bb, 0), None, None, _empty_bank(), 2)
        o0 = ours.track_step(frames.select(0), [], num_frames=2)
        bank = {"cond_frame_outputs": {0: r0}, "non_cond_frame_outputs": {}}
        r1 = ref.track_step(1, False, *ref_frame(ref, ref_bb, 1), None, None, bank, 2)
        o1 = ours.track_step(frames.select(1), [o0.memory.at_offset(1, True)], num_frames=2)
    assert o1.object_score_logits.item() < 0
    check_step("absent_step0", o0, r0)
    check_step("absent_step1", o1, r1)
