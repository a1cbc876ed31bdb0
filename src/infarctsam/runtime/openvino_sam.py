"""The prompt-free litemedsam model run by OpenVINO: encoder and memory decoder, with bf16 where the CPU has it.

Three parts of :class:`~infarctsam.model.promptfree.PromptFreeSam` are exported to ONNX once per batch size (kept
in the export cache, :mod:`infarctsam.runtime.export_cache`) and compiled by OpenVINO's CPU plugin for that static
batch (faster than a dynamic one; short batches are padded with empty rows):

* ``encoder``: TinyViT trunk + neck, ``images -> embedding`` (a slice a call: as fast per slice as 4, no padding);
* ``single``: a slice decoded on its own (no memory): high-resolution stem, mask decoder with the learned prompt
  tokens, object score and pointer (8 slices a batch);
* ``step``: a memory-conditioned step (2 slices: the forward and backward passes together): memory attention over a
  **fixed memory layout** (``num_maskmem - 1`` spatial memories and ``max_obj_ptrs - 1`` object pointers; missing
  memories are zero-padded and hidden from the attention by a ``-1e9`` logit bias, so the result is that of the
  unpadded memory: their softmax weight is exactly 0), memory gate, stem, heads and the slice's new memory.

The stem runs in the decoding parts, on the slice images, instead of in the encoder: recomputing it costs less
than keeping its full-resolution features for every slice, and the process stays smaller.

The memory bank logic (which memories a slice sees, their temporal encodings) stays in Python and is shared with
the PyTorch path (:func:`~infarctsam.model.sam2.memory_bank_assembly.assemble_memory`), so both runtimes decode
the same way; :meth:`OpenVinoSam.step` has the signature of :meth:`PromptFreeSam.step`.

Precision: ``fp32`` equals PyTorch to float32 rounding. ``bf16`` (OpenVINO's default on CPUs with AMX or AVX-512
BF16) runs matrix products in bfloat16 with float32 accumulation; ``auto`` takes OpenVINO's default for the CPU. The
accuracy of bf16 against fp32 is measured in ``benchmarks/speed_accuracy.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from infarctsam.model.sam2 import FrameFeatures, MemoryEntry
from infarctsam.model.sam2.memory_bank_assembly import assemble_memory
from infarctsam.runtime.export_cache import export_onnx, resolve_cache, weights_key
from infarctsam.runtime.openvino_parts import (
    GRAPHS_VERSION,
    PARTS,
    PRECISIONS,
    MemoryConstants,
    OpenVinoParts,
    default_precision,
)


# ---------------------------------------------------------------------------------------------- export graphs
class EncoderGraph(nn.Module):
    """``images [B, 3, S, S] -> embedding``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.trunk = model.sam.image_encoder.trunk

    def forward(self, images: Tensor) -> Tensor:
        """Image embedding."""
        return self.trunk(images)


def _heads(model: nn.Module, pix: Tensor, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Single-mask decoder output; the high-resolution stem runs here, on the slice images, rather than in the
    encoder: recomputing it costs less than keeping its full-resolution features (about 3 MB a slice)."""
    sparse, dense = model.prompts(pix.shape[0])
    heads = model.sam.forward_sam_heads(pix, sparse, dense, False, model.stem(images))
    return heads.high_res_masks, heads.object_score_logits, heads.obj_ptr


def _gated(model: nn.Module, feat: Tensor, conditioned: Tensor) -> Tensor:
    """The memory gate of :meth:`PromptFreeSam.step`."""
    if model.memory_gate is None:
        return conditioned
    return feat + torch.tanh(model.memory_gate) * (conditioned - feat)


class SingleGraph(nn.Module):
    """A slice without memory: ``(feat, images) -> (mask logits, object score logits, object pointer)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feat: Tensor, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder output of slices decoded on their own."""
        no_mem = self.model.sam.no_mem_embed.reshape(1, -1, 1, 1)
        return _heads(self.model, _gated(self.model, feat, feat + no_mem), images)


class StepGraph(nn.Module):
    """One decoding step with memory: memory attention over a fixed memory layout, memory gate, heads and the new
    memory. Rows whose ``has_memory`` is 0 are initial slices (no memory: SAM 2's ``no_mem_embed`` is added)."""

    def __init__(self, model: nn.Module, ptr_tokens: int) -> None:
        super().__init__()
        self.model = model
        self.ptr_tokens = ptr_tokens

    def forward(self, feat: Tensor, pos: Tensor, memory: Tensor, memory_pos: Tensor, memory_bias: Tensor,
                has_memory: Tensor, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Mask logits, object score logits, object pointer and memory features of the slice(s)."""
        sam = self.model.sam
        b, c, h, w = feat.shape
        out = sam.memory_attention(feat.flatten(2).transpose(1, 2), pos.flatten(2).transpose(1, 2), memory,
                                   memory_pos, (h, w), num_obj_ptr_tokens=self.ptr_tokens, memory_bias=memory_bias)
        attended = out.transpose(1, 2).reshape(b, c, h, w)
        use = has_memory.reshape(b, 1, 1, 1)
        conditioned = use * attended + (1 - use) * (feat + sam.no_mem_embed.reshape(1, -1, 1, 1))
        masks, scores, ptr = _heads(self.model, _gated(self.model, feat, conditioned), images)
        memory_features = sam.encode_memory(FrameFeatures(feat, pos), masks, scores, ptr).features
        return masks, scores, ptr, memory_features


def export_graph(model: nn.Module, name: str, batch: int) -> bytes:
    """ONNX bytes of part ``name`` (``encoder``, ``single`` or ``step``) of ``model`` for a fixed ``batch``."""
    sam = model.sam
    cfg = sam.config
    s, c, side = cfg.image_size, cfg.d_model, cfg.image_embedding_size
    feat, images = torch.zeros(batch, c, side, side), torch.zeros(batch, 3, s, s)
    if name == "encoder":
        return export_onnx(EncoderGraph(model), (images,), ["images"], ["embed"], dynamic_batch=False)
    if name == "single":
        return export_onnx(SingleGraph(model), (feat, images), ["feat", "images"], ["masks", "scores", "ptr"],
                           dynamic_batch=False)
    if name != "step":
        raise ValueError(f"unknown part {name!r}")
    ptr_tokens = pointer_tokens(cfg)
    m = max(cfg.num_maskmem - 1, 1) * side * side + ptr_tokens
    memory = (torch.zeros(batch, m, cfg.mem_dim), torch.zeros(batch, m, cfg.mem_dim), torch.zeros(batch, m),
              torch.ones(batch))
    return export_onnx(StepGraph(model, ptr_tokens), (feat, feat, *memory, images),
                       ["feat", "pos", "memory", "memory_pos", "memory_bias", "has_memory", "images"],
                       ["masks", "scores", "ptr", "memory_features"], dynamic_batch=False)


def pointer_tokens(cfg) -> int:
    """Object-pointer tokens of the fixed memory layout: ``max_obj_ptrs - 1`` pointers of ``C / Cm`` tokens."""
    return (cfg.max_obj_ptrs_in_encoder - 1) * (cfg.d_model // cfg.mem_dim) if cfg.use_obj_ptrs_in_encoder else 0


@torch.no_grad()
def memory_constants(model: nn.Module) -> dict[str, np.ndarray]:
    """The position encodings of the memory bank, produced by the PyTorch assembly itself
    (:func:`~infarctsam.model.sam2.memory_bank_assembly.assemble_memory`) so that the compiled decoding adds exactly
    what it adds (see :class:`~infarctsam.runtime.openvino_parts.MemoryConstants`)."""
    from infarctsam.model.promptfree import TinyViTImageEncoder

    sam = model.sam
    cfg = sam.config
    side, cm = cfg.image_embedding_size, cfg.mem_dim
    image_pos = TinyViTImageEncoder.from_embedding(torch.zeros(1, cfg.d_model, side, side))["vision_pos_enc"][0]
    zeros = torch.zeros(1, cm, side, side)
    mem_pos = sam.memory_encoder.position_encoding(zeros)
    split = cfg.d_model // cm
    p = cfg.max_obj_ptrs_in_encoder
    k = max(cfg.num_maskmem - 1, 1)
    spatial = np.zeros((k, side * side, cm), np.float32)
    pointers = np.zeros((p + 1, p, split, cm), np.float32)
    window = max(cfg.num_maskmem - 1, p - 1, 1)
    for frames in range(1, p + 1):
        entries = [MemoryEntry(zeros, mem_pos, torch.zeros(1, cfg.d_model), offset=o) for o in range(1, window + 1)]
        assembled = assemble_memory(sam, cfg, entries, frames)
        n_ptr = assembled.num_obj_ptr_tokens
        n_spatial = (assembled.tokens.shape[1] - n_ptr) // (side * side)
        pos = assembled.pos[0].numpy()
        for i in range(n_spatial):  # farthest first: slot of offset n_spatial - i
            spatial[n_spatial - i - 1] = pos[i * side * side: (i + 1) * side * side]
        ptr_pos = pos[n_spatial * side * side:].reshape(-1, split, cm)
        for i in range(len(ptr_pos)):  # nearest first: offset i + 1
            pointers[frames, i + 1] = ptr_pos[i]
    sizes = np.array([cfg.num_maskmem, p, pointer_tokens(cfg), int(cfg.use_obj_ptrs_in_encoder)])
    return {"image_pos": image_pos[0].numpy(), "spatial_pos": spatial, "pointer_pos": pointers, "sizes": sizes}


class OpenVinoSam:
    """A litemedsam :class:`~infarctsam.model.promptfree.PromptFreeSam` compiled by OpenVINO.

    Exports (on first use, into the cache) and compiles the parts, and writes the memory constants; the decoding
    itself runs without PyTorch (:func:`~infarctsam.runtime.openvino_parts.decode_compiled`).

    Parameters
    ----------
    model : PromptFreeSam
        The network (litemedsam backbone with its high-resolution stem).
    precision : str
        ``auto`` (OpenVINO's default for this CPU), ``fp32`` or ``bf16``.
    threads : int
        Inference threads.
    cache_dir : str or Path or None
        Export cache (``"default"``: ``~/.cache/infarctsam/onnx``; None: in memory only). OpenVINO's compiled
        blobs are kept beside the exports, in ``openvino/<precision>/``.
    key : str, optional
        The weights' key in the cache (the engine passes one derived from the weights file's checksum, so a later
        process finds the parts without building the network); default: a hash of the model's tensors.
    """

    def __init__(self, model: nn.Module, precision: str = "auto", threads: int = 2,
                 cache_dir: str | Path | None = "default", key: str | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if getattr(model, "stem", None) is None:
            raise ValueError("the OpenVINO runtime needs the litemedsam backbone")
        if not model.sam.config.directly_add_no_mem_embed:
            raise ValueError("the OpenVINO runtime needs directly_add_no_mem_embed")
        self.model = model.eval()
        self.precision = default_precision() if precision == "auto" else precision
        cache = resolve_cache(cache_dir)
        cfg = model.sam.config
        key = key or weights_key(model, cfg.image_size)
        self.key = f"v{GRAPHS_VERSION}-{key}"
        self.parts = OpenVinoParts(cache, self.key, self.precision, threads,
                                   exporter=lambda name, batch: export_graph(self.model, name, batch))
        arrays = memory_constants(self.model)
        self.constants = MemoryConstants(arrays)
        if cache is not None:
            self._store_constants(cache / f"ov-constants-{self.key}.npz", arrays)
        for name, batch in PARTS:  # the usual ones, now
            self.parts.request(name, batch)

    @staticmethod
    def _store_constants(path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Store the constants with their sha256 unless a verified copy is there (a damaged one is replaced, with
        one warning; a read-only cache only costs the network build next time)."""
        import io

        from infarctsam.runtime.cache_entries import check_entry, store_entry, warn_once

        found, state = check_entry(path, 2.0)
        if found is not None:
            return
        if state != "missing":
            warn_once(path, state)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        store_entry(path, buf.getvalue(), replace=state != "missing")
