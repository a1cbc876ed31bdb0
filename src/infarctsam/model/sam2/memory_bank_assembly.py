"""Assemble the memory tokens a frame attends to, following the SAM 2.1 selection rules (evaluation stride 1).

Spatial memories: every conditioning memory (temporal slot ``num_maskmem - 1``) and the non-conditioning memories
at offsets ``1 .. num_maskmem - 1`` (slot ``offset - 1``), the farthest first. Object pointers: conditioning
pointers (in eval only those not ahead of the frame when ``only_obj_ptrs_in_the_past_for_eval``) at their signed
offset, then non-conditioning pointers at offsets ``1 .. max_ptrs - 1``, nearest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import Sam2Config
from .layers import sine_position_1d
from .state import MemoryEntry


@dataclass
class AssembledMemory:
    """Memory tokens of one frame.

    Attributes
    ----------
    tokens : Tensor
        ``[B, M, mem_dim]`` spatial memory tokens followed by object pointer tokens.
    pos : Tensor
        ``[B, M, mem_dim]`` their position encodings (spatial + temporal).
    num_obj_ptr_tokens : int
        Number of trailing pointer tokens.
    """

    tokens: Tensor
    pos: Tensor
    num_obj_ptr_tokens: int


def select_spatial(memories: Sequence[MemoryEntry], num_maskmem: int) -> list[tuple[int, MemoryEntry]]:
    """Pick the spatial memories and their temporal slot index into ``maskmem_tpos_enc``.

    Parameters
    ----------
    memories : sequence of MemoryEntry
        Candidate memories with offsets relative to the current frame.
    num_maskmem : int
        Model memory size.

    Returns
    -------
    list of (int, MemoryEntry)
        ``(slot, entry)`` pairs, conditioning memories first, then recent ones from the farthest.
    """
    cond = [(num_maskmem - 1, m) for m in memories if m.is_conditioning]
    recent = [m for m in memories if not m.is_conditioning and 1 <= m.offset <= num_maskmem - 1]
    recent.sort(key=lambda m: -m.offset)
    return cond + [(m.offset - 1, m) for m in recent]


def select_pointers(memories: Sequence[MemoryEntry], max_ptrs: int, signed: bool,
                    past_only: bool) -> list[tuple[int, Tensor]]:
    """Pick the object pointers and their temporal positions.

    Parameters
    ----------
    memories : sequence of MemoryEntry
        Candidate memories with offsets relative to the current frame.
    max_ptrs : int
        ``min(num_frames, max_obj_ptrs_in_encoder)``; recent pointers at offsets ``1 .. max_ptrs - 1`` are used.
    signed : bool
        Keep the sign of conditioning offsets (else their absolute value).
    past_only : bool
        Drop conditioning pointers ahead of the current frame (negative offset).

    Returns
    -------
    list of (int, Tensor)
        ``(temporal position, pointer [B, C])`` pairs.
    """
    out = []
    for m in memories:
        if m.is_conditioning and not (past_only and m.offset < 0):
            out.append((m.offset if signed else abs(m.offset), m.obj_ptr))
    recent = sorted((m for m in memories if not m.is_conditioning and 1 <= m.offset <= max_ptrs - 1),
                    key=lambda m: m.offset)
    out += [(m.offset, m.obj_ptr) for m in recent]
    return out


def assemble_memory(model: torch.nn.Module, config: Sam2Config, memories: Sequence[MemoryEntry],
                    num_frames: int | None) -> AssembledMemory | None:
    """Build the memory tokens for :class:`~.memory_attention.MemoryAttention`.

    Parameters
    ----------
    model : Sam2Model
        Provides ``maskmem_tpos_enc`` and ``obj_ptr_tpos_proj``.
    config : Sam2Config
        Model configuration.
    memories : sequence of MemoryEntry
        Memories with offsets relative to the current frame.
    num_frames : int, optional
        Number of frames of the sequence (limits the pointer window as in SAM 2); ``None`` for no limit.

    Returns
    -------
    AssembledMemory or None
        ``None`` when no memory token is selected.
    """
    tokens: list[Tensor] = []
    pos: list[Tensor] = []
    for slot, m in select_spatial(memories, config.num_maskmem):
        tokens.append(m.features.flatten(2).transpose(1, 2))
        pos.append(m.pos_enc.flatten(2).transpose(1, 2) + model.maskmem_tpos_enc[slot].reshape(1, 1, -1))

    num_ptr_tokens = 0
    if config.use_obj_ptrs_in_encoder:
        max_ptrs = config.max_obj_ptrs_in_encoder if num_frames is None else min(num_frames,
                                                                                config.max_obj_ptrs_in_encoder)
        past_only = config.only_obj_ptrs_in_the_past_for_eval and not model.training
        ptrs = select_pointers(memories, max_ptrs, config.use_signed_tpos_enc_to_obj_ptrs, past_only)
        if ptrs:
            ptr = torch.stack([p for _, p in ptrs], dim=1)  # [B, P, C]
            b, n_ptr, c = ptr.shape
            if config.add_tpos_enc_to_obj_ptrs:
                t_max = max(max_ptrs - 1, 1)
                t = torch.tensor([float(t) for t, _ in ptrs], device=ptr.device) / t_max
                tpos_dim = c if config.proj_tpos_enc_in_obj_ptrs else config.mem_dim
                ptr_pos = model.obj_ptr_tpos_proj(sine_position_1d(t, tpos_dim))  # [P, mem_dim]
            else:
                ptr_pos = ptr.new_zeros(n_ptr, config.mem_dim)
            split = c // config.mem_dim
            # Each pointer becomes `split` tokens of width mem_dim sharing its temporal encoding.
            tokens.append(ptr.reshape(b, n_ptr * split, config.mem_dim))
            pos.append(ptr_pos.repeat_interleave(split, dim=0)[None].expand(b, -1, -1))
            num_ptr_tokens = n_ptr * split

    if not tokens:
        return None
    return AssembledMemory(torch.cat(tokens, dim=1), torch.cat(pos, dim=1), num_ptr_tokens)
