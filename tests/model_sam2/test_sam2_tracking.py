"""Functional API of Sam2Model: image features, per-frame step, memory selection and object gating."""

from __future__ import annotations

import copy

import pytest
import torch
from model_sam2_support import IMAGE_SIZE, set_object_bias

from infarctsam.model.sam2 import NO_OBJ_SCORE, FrameFeatures, MemoryBank, MemoryEntry, build_sam2, hiera_tiny
from infarctsam.model.sam2.memory_bank_assembly import assemble_memory, select_pointers, select_spatial

H = IMAGE_SIZE // 16


def test_forward_image_levels_and_projection(tiny):
    images = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = tiny.forward_image(images)
        raw = tiny.image_encoder(images)
    shapes = [tuple(x.shape) for x in out["backbone_fpn"]]
    assert shapes == [(1, 32, 4 * H, 4 * H), (1, 64, 2 * H, 2 * H), (1, 256, H, H)]
    assert [tuple(x.shape) for x in out["vision_pos_enc"]] == [(1, 256, 4 * H, 4 * H), (1, 256, 2 * H, 2 * H),
                                                                (1, 256, H, H)]
    assert torch.equal(out["vision_features"], out["backbone_fpn"][2])
    with torch.no_grad():
        assert torch.allclose(out["backbone_fpn"][0], tiny.sam_mask_decoder.conv_s0(raw["backbone_fpn"][0]))
        assert torch.allclose(out["backbone_fpn"][1], tiny.sam_mask_decoder.conv_s1(raw["backbone_fpn"][1]))


def test_forward_image_at_512():
    model = build_sam2(hiera_tiny(512))
    with torch.no_grad():
        feats = model.encode_frames(torch.zeros(1, 3, 512, 512))
        out = model.track_step(feats)
    assert feats.image_embed.shape == (1, 256, 32, 32)
    assert out.high_res_masks.shape == (1, 1, 512, 512) and out.low_res_masks.shape == (1, 1, 128, 128)


def test_initial_frame_adds_no_mem_embed(tiny, frames):
    f0 = frames.select(0)
    with torch.no_grad():
        out = tiny.track_step(f0, [], num_frames=3)
    assert torch.equal(out.pix_feat_with_mem, f0.image_embed + tiny.no_mem_embed.reshape(1, 256, 1, 1))
    assert out.low_res_multimasks.shape == (1, 3, 4 * H, 4 * H)  # no clicks on an initial frame: 3 masks
    assert out.high_res_masks.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert out.ious.shape == (1, 3) and out.obj_ptr.shape == (1, 256)
    best = out.ious.argmax(dim=1).item()
    assert torch.equal(out.low_res_masks[0, 0], out.low_res_multimasks[0, best])
    assert out.memory.features.shape == (1, 64, H, H) and out.memory.offset == 0
    assert torch.equal(out.memory.obj_ptr, out.obj_ptr)


def test_memory_conditions_the_next_frame(tiny, frames):
    with torch.no_grad():
        m0 = tiny.track_step(frames.select(0), []).memory
        m2 = tiny.track_step(frames.select(2), []).memory
        alone = tiny.track_step(frames.select(1), [])
        with_m0 = tiny.track_step(frames.select(1), [m0.at_offset(1, True)])
        with_m2 = tiny.track_step(frames.select(1), [m2.at_offset(1, True)])
        farther = tiny.track_step(frames.select(1), [m0.at_offset(3, True)])
    assert not torch.allclose(with_m0.pix_feat_with_mem, alone.pix_feat_with_mem, atol=1e-3)
    assert not torch.allclose(with_m0.pix_feat_with_mem, with_m2.pix_feat_with_mem, atol=1e-3)
    # Only the temporal encodings differ (slot 6 for a conditioning memory; pointer position 1 vs 3).
    assert (with_m0.pix_feat_with_mem - farther.pix_feat_with_mem).abs().max() > 1e-6


def test_batch_matches_single_frames(tiny, frames):
    with torch.no_grad():
        first = tiny.track_step(frames.select(slice(0, 2)), [])
        prev = first.memory
        both = tiny.track_step(frames.select(slice(1, 3)), [prev.at_offset(1, True)])
        for i in range(2):
            mem_i = MemoryEntry(prev.features[i:i + 1], prev.pos_enc[i:i + 1], prev.obj_ptr[i:i + 1], 1, True)
            single = tiny.track_step(frames.select(i + 1), [mem_i])
            assert torch.allclose(both.high_res_masks[i], single.high_res_masks[0], atol=1e-4)
            assert torch.allclose(both.obj_ptr[i], single.obj_ptr[0], atol=1e-5)


def _entry(value: float, offset: int, cond: bool) -> MemoryEntry:
    return MemoryEntry(torch.full((1, 64, 2, 2), value), torch.zeros(1, 64, 2, 2), torch.full((1, 256), value),
                       offset=offset, is_conditioning=cond)


def test_memory_selection_rules(tiny):
    entries = [_entry(1, 3, True), _entry(2, -2, True), _entry(3, 1, False), _entry(4, 2, False),
               _entry(5, 6, False), _entry(6, 7, False), _entry(7, 20, False)]
    spatial = select_spatial(entries, 7)
    assert [(slot, int(m.features[0, 0, 0, 0])) for slot, m in spatial] == [(6, 1), (6, 2), (5, 5), (1, 4), (0, 3)]
    ptrs = select_pointers(entries, 16, signed=True, past_only=True)
    assert [(t, int(p[0, 0])) for t, p in ptrs] == [(3, 1), (1, 3), (2, 4), (6, 5), (7, 6)]
    assert [t for t, _ in select_pointers(entries, 5, signed=False, past_only=False)] == [3, 2, 1, 2]

    assembled = assemble_memory(tiny, tiny.config, entries, num_frames=None)
    assert assembled.num_obj_ptr_tokens == 5 * 4  # each 256-d pointer is split into four 64-d tokens
    assert assembled.tokens.shape == (1, 5 * 4 + 5 * 4, 64)
    assert torch.allclose(assembled.pos[0, 0], tiny.maskmem_tpos_enc[6].reshape(64))
    assert torch.allclose(assembled.pos[0, 16], tiny.maskmem_tpos_enc[0].reshape(64))
    assert torch.equal(assembled.tokens[0, 20:24].reshape(256), torch.full((256,), 1.0))
    assert assemble_memory(tiny, tiny.config, [_entry(1, 30, False)], None) is None


def test_memory_bank_bounds_and_offsets():
    bank = MemoryBank(num_maskmem=7, max_obj_ptrs=16)
    bank.add(0, _entry(0, 99, False), conditioning=True)
    for i in range(1, 31):
        bank.add(i, _entry(i, 99, False))
    assert len(bank) == 1 + 15
    entries = bank.entries_for(31)
    assert entries[0].is_conditioning and entries[0].offset == 31
    assert sorted(e.offset for e in entries[1:]) == list(range(1, 16))

    back = MemoryBank(reverse=True)
    back.add(10, _entry(10, 0, False), conditioning=True)
    back.add(9, _entry(9, 0, False))
    offsets = {int(e.features[0, 0, 0, 0]): e.offset for e in back.entries_for(8)}
    assert offsets == {10: 2, 9: 1}


def test_object_absence_gating(tiny, frames):
    absent = copy.deepcopy(tiny)
    set_object_bias(absent, -50.0)
    f0 = frames.select(0)
    with torch.no_grad():
        out = absent.track_step(f0, [])
        logits = torch.tensor([[1.0]])
        present_mem = absent.encode_memory(f0, out.high_res_masks, logits, out.obj_ptr)
        absent_mem = absent.encode_memory(f0, out.high_res_masks, -logits, out.obj_ptr)
    assert out.object_score_logits.item() < 0
    assert torch.all(out.low_res_multimasks == NO_OBJ_SCORE)
    assert torch.equal(out.obj_ptr, absent.no_obj_ptr)  # fixed_no_obj_ptr
    diff = absent_mem.features - present_mem.features
    assert torch.allclose(diff, absent.no_obj_embed_spatial.reshape(1, 64, 1, 1).expand_as(diff), atol=1e-6)


def test_injected_prompt_embeddings(tiny, frames):
    f0 = frames.select(0)
    sparse, dense = tiny.embed_prompts(batch_size=1)
    # SAM 2 feeds an empty click (label -1) and the encoder pads once more: two "not a point" tokens.
    assert sparse.shape == (1, 2, 256)
    assert torch.equal(sparse[0], tiny.sam_prompt_encoder.not_a_point_embed.weight.expand(2, 256))
    with torch.no_grad():
        default = tiny.track_step(f0, [])
        explicit = tiny.track_step(f0, [], sparse=sparse, dense=dense)
        learned = tiny.track_step(f0, [], sparse=torch.randn(1, 4, 256), dense=dense)
        dense_only = tiny.track_step(f0, [], dense=torch.randn(1, 256, H, H))
    assert torch.equal(default.high_res_masks, explicit.high_res_masks)
    assert not torch.allclose(default.low_res_multimasks, learned.low_res_multimasks, atol=1e-4)
    assert not torch.allclose(default.low_res_multimasks, dense_only.low_res_multimasks, atol=1e-4)

    tokens = torch.randn(1, 2, 256, requires_grad=True)
    tiny.track_step(f0, [], sparse=tokens, run_memory_encoder=False).low_res_masks.square().mean().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0


def test_prompt_helpers_and_multimask_rule(tiny):
    pts, labels = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]]), torch.tensor([[1, 0]])
    assert tiny.embed_prompts(pts, labels)[0].shape == (1, 3, 256)
    assert tiny.embed_prompts(boxes=torch.tensor([[1.0, 2.0, 30.0, 40.0]]))[0].shape == (1, 2, 256)
    _, dense = tiny.embed_prompts(mask_logits=torch.randn(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    assert dense.shape == (1, 256, H, H)
    assert tiny.use_multimask(True, 1) and tiny.use_multimask(False, 0)
    assert not tiny.use_multimask(True, 2)
    with pytest.raises(ValueError):
        tiny.embed_prompts(pts)


def test_mask_as_output_step(tiny, frames):
    f0 = frames.select(0)
    mask = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)
    mask[..., 64:128, 80:160] = 1.0
    with torch.no_grad():
        full = tiny.mask_as_output_step(f0, mask)
        empty = tiny.mask_as_output_step(f0, torch.zeros_like(mask))
    assert torch.equal(full.high_res_masks, mask * 20 - 10)
    assert full.low_res_masks.shape == (1, 1, IMAGE_SIZE // 4, IMAGE_SIZE // 4)
    assert full.object_score_logits.item() == 10.0 and empty.object_score_logits.item() == -10.0
    assert torch.equal(empty.obj_ptr, tiny.no_obj_ptr)
    assert not torch.allclose(full.obj_ptr, tiny.no_obj_ptr)
    assert full.memory is not None and not torch.allclose(full.memory.features, empty.memory.features)


def test_frame_features_select(frames):
    one = frames.select(1)
    assert isinstance(one, FrameFeatures) and one.batch_size == 1
    assert torch.equal(one.high_res[0], frames.high_res[0][1:2])
