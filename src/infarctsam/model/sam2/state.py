"""Typed containers passed between the per-frame steps of :class:`~.model.Sam2Model`, and a memory bank."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor


@dataclass
class FrameFeatures:
    """Image features of one or more frames (batch dimension first).

    Attributes
    ----------
    image_embed : Tensor
        ``[B, C, h, w]`` coarsest kept neck level (stride 16), the input of the memory attention and decoder.
    image_pos : Tensor
        ``[B, C, h, w]`` its sine position encoding.
    high_res : tuple of Tensor, optional
        ``(s0 [B, C/8, 4h, 4w], s1 [B, C/4, 2h, 2w])`` stride-4/8 features already projected by the decoder's
        ``conv_s0``/``conv_s1``; ``None`` when the model does not use them.
    """

    image_embed: Tensor
    image_pos: Tensor
    high_res: tuple[Tensor, Tensor] | None = None

    @classmethod
    def from_backbone(cls, backbone_out: dict, num_feature_levels: int = 3) -> FrameFeatures:
        """Build from the dict returned by ``Sam2Model.forward_image``.

        Parameters
        ----------
        backbone_out : dict
            With ``backbone_fpn`` and ``vision_pos_enc`` lists (finest first).
        num_feature_levels : int
            3 when the decoder uses high-resolution features, else 1.

        Returns
        -------
        FrameFeatures
            The features.
        """
        fpn, pos = backbone_out["backbone_fpn"], backbone_out["vision_pos_enc"]
        high_res = (fpn[-3], fpn[-2]) if num_feature_levels == 3 else None
        return cls(image_embed=fpn[-1], image_pos=pos[-1], high_res=high_res)

    @property
    def batch_size(self) -> int:
        """Number of frames/objects in the batch."""
        return int(self.image_embed.shape[0])

    def select(self, index: int | slice | Tensor) -> FrameFeatures:
        """Features of one frame (kept as a batch of 1), a slice of the batch, or the rows of an index tensor."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        high = None if self.high_res is None else (self.high_res[0][sl], self.high_res[1][sl])
        return FrameFeatures(self.image_embed[sl], self.image_pos[sl], high)


@dataclass
class MemoryEntry:
    """Encoded memory of one frame, as used by later frames.

    Attributes
    ----------
    features : Tensor
        ``[B, mem_dim, h, w]`` memory features (memory encoder output, with the no-object embedding if any).
    pos_enc : Tensor
        ``[B, mem_dim, h, w]`` spatial position encoding of the memory.
    obj_ptr : Tensor
        ``[B, C]`` object pointer of the frame.
    offset : int
        Temporal offset of this memory relative to the frame being processed, counted in the tracking direction:
        ``offset = (current_index - memory_index) * (+1 forward, -1 backward)``. Frames already tracked have
        ``offset >= 1``; a conditioning frame ahead of the current frame has a negative offset.
    is_conditioning : bool
        Memory of a conditioning (prompted) frame: always attended, with the conditioning temporal encoding.
    object_score_logits : Tensor, optional
        ``[B, 1]`` object presence logit of the frame (informative only).
    """

    features: Tensor
    pos_enc: Tensor
    obj_ptr: Tensor
    offset: int = 0
    is_conditioning: bool = False
    object_score_logits: Tensor | None = None

    def at_offset(self, offset: int, is_conditioning: bool | None = None) -> MemoryEntry:
        """Copy of this entry with another offset (and optionally another conditioning flag); tensors are shared."""
        cond = self.is_conditioning if is_conditioning is None else is_conditioning
        return replace(self, offset=int(offset), is_conditioning=cond)


@dataclass
class HeadOutput:
    """Output of the SAM heads on one frame.

    Attributes
    ----------
    low_res_multimasks, high_res_multimasks : Tensor
        ``[B, M, 4h, 4w]`` and ``[B, M, S, S]`` logits of all returned masks (``S`` = image size).
    ious : Tensor
        ``[B, M]`` predicted IoU.
    low_res_masks, high_res_masks : Tensor
        ``[B, 1, ...]`` the selected mask (highest predicted IoU when several).
    obj_ptr : Tensor
        ``[B, C]`` object pointer.
    object_score_logits : Tensor
        ``[B, 1]`` object presence logit.
    """

    low_res_multimasks: Tensor
    high_res_multimasks: Tensor
    ious: Tensor
    low_res_masks: Tensor
    high_res_masks: Tensor
    obj_ptr: Tensor
    object_score_logits: Tensor


@dataclass
class StepOutput(HeadOutput):
    """Output of one tracking step: the SAM head outputs plus the new memory.

    Attributes
    ----------
    memory : MemoryEntry, optional
        Memory of this frame (``offset=0``), ``None`` when the memory encoder was not run.
    pix_feat_with_mem : Tensor, optional
        ``[B, C, h, w]`` memory-conditioned features the heads were applied to.
    """

    memory: MemoryEntry | None = None
    pix_feat_with_mem: Tensor | None = None


class MemoryBank:
    """Bounded store of frame memories for slice-by-slice (frame-by-frame) tracking.

    Conditioning memories are kept for the whole pass; non-conditioning memories are dropped once they are farther
    than the model can use (``num_maskmem - 1`` frames for spatial memories, ``max_obj_ptrs - 1`` for pointers).

    Parameters
    ----------
    num_maskmem : int
        Spatial memory size of the model (conditioning slot + recent frames).
    max_obj_ptrs : int
        Maximum number of object pointers of the model.
    reverse : bool
        Track towards decreasing frame indices.
    """

    def __init__(self, num_maskmem: int = 7, max_obj_ptrs: int = 16, reverse: bool = False) -> None:
        self.window = max(num_maskmem - 1, max_obj_ptrs - 1, 1)
        self.direction = -1 if reverse else 1
        self._cond: dict[int, MemoryEntry] = {}
        self._recent: dict[int, MemoryEntry] = {}

    def __len__(self) -> int:
        return len(self._cond) + len(self._recent)

    def add(self, frame_index: int, entry: MemoryEntry, conditioning: bool = False) -> None:
        """Store the memory of ``frame_index`` and forget recent memories that can no longer be used.

        Parameters
        ----------
        frame_index : int
            Absolute index of the frame (slice).
        entry : MemoryEntry
            Its memory (the offset stored in it is ignored).
        conditioning : bool
            Store it as a conditioning memory.
        """
        store, other = (self._cond, self._recent) if conditioning else (self._recent, self._cond)
        other.pop(frame_index, None)
        store[frame_index] = entry.at_offset(0, is_conditioning=conditioning)
        if not conditioning:
            newest = frame_index
            stale = [i for i in self._recent if (newest - i) * self.direction >= self.window]
            for i in stale:
                del self._recent[i]

    def entries_for(self, frame_index: int) -> list[MemoryEntry]:
        """Memories visible from ``frame_index``, with their offsets set (conditioning ones first).

        Parameters
        ----------
        frame_index : int
            Absolute index of the frame about to be processed.

        Returns
        -------
        list of MemoryEntry
            Entries to pass to ``Sam2Model.track_step``.
        """
        out = [e.at_offset((frame_index - i) * self.direction) for i, e in sorted(self._cond.items())]
        for i, e in sorted(self._recent.items()):
            offset = (frame_index - i) * self.direction
            if 1 <= offset <= self.window:
                out.append(e.at_offset(offset))
        return out
