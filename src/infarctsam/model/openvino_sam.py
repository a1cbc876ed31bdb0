"""The prompt-free litemedsam model run by OpenVINO: encoder and memory decoder, with bf16 where the CPU has it.

Three parts of :class:`~infarctsam.model.promptfree.PromptFreeSam` are exported to ONNX once per batch size (kept
in the export cache, :mod:`infarctsam.model.export_cache`) and compiled by OpenVINO's CPU plugin for that static
batch (faster than a dynamic one; short batches are padded with empty rows):

* ``encoder``: TinyViT trunk + neck, ``images -> embedding`` (4 slices a batch);
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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from infarctsam.model.export_cache import cached_export, export_onnx, resolve_cache, weights_key
from infarctsam.model.sam2 import FrameFeatures, MemoryEntry
from infarctsam.model.sam2.memory_bank_assembly import assemble_memory

PRECISIONS = ("auto", "fp32", "bf16")
GRAPHS_VERSION = 4  # part of the export cache key: raise it whenever a graph below changes
HIDDEN = -1.0e9  # logit bias of padded memory tokens: exp(HIDDEN - max) is exactly 0 in float32 and bfloat16


def openvino_available() -> bool:
    """True when ``openvino`` and the ONNX exporter's dependency ``onnx`` can be imported."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None and find_spec("onnx") is not None


def default_precision() -> str:
    """``bf16`` when OpenVINO runs bfloat16 natively on this CPU (AMX / AVX-512 BF16), else ``fp32``."""
    import openvino as ov

    hint = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))
    return "bf16" if "bf" in hint.lower() else "fp32"


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


@dataclass
class SliceFeatures(FrameFeatures):
    """:class:`FrameFeatures` that also carry the slice images (the decoder recomputes the stem from them)."""

    images: Tensor | None = None

    def select(self, index: int | slice | Tensor) -> SliceFeatures:
        """Features and images of one slice (kept as a batch of 1), a slice of the batch, or index rows."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        return SliceFeatures(self.image_embed[sl], self.image_pos[sl], None, self.images[sl])


@dataclass
class OpenVinoStep:
    """What the decoding loops read of a step (a subset of :class:`~infarctsam.model.sam2.state.StepOutput`)."""

    high_res_masks: Tensor
    object_score_logits: Tensor
    obj_ptr: Tensor
    memory: MemoryEntry | None


def _padded_rows(array: np.ndarray, batch: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``batch`` rows (a part compiled for a fixed batch)."""
    if len(array) == batch:
        return np.ascontiguousarray(array, dtype=np.float32)
    out = np.zeros((batch, *array.shape[1:]), np.float32)
    out[: len(array)] = array
    return out


class OpenVinoSam:
    """A litemedsam :class:`~infarctsam.model.promptfree.PromptFreeSam` compiled by OpenVINO.

    Parameters
    ----------
    model : PromptFreeSam
        The network (litemedsam backbone with its high-resolution stem); kept for the memory bank logic, for the
        exports, and for memories the fixed layout cannot hold (conditioning memories), decoded by PyTorch.
    precision : str
        ``auto`` (OpenVINO's default for this CPU), ``fp32`` or ``bf16``.
    threads : int
        Inference threads.
    cache_dir : str or Path or None
        Export cache (``"default"``: ``~/.cache/infarctsam/onnx``; None: in memory only). OpenVINO's compiled
        blobs are kept beside the exports, in ``openvino/<precision>/``.
    """

    single_batch = 8

    def __init__(self, model: nn.Module, precision: str = "auto", threads: int = 2,
                 cache_dir: str | Path | None = "default") -> None:
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if getattr(model, "stem", None) is None:
            raise ValueError("the OpenVINO runtime needs the litemedsam backbone")
        self.model = model.eval()
        self.sam = model.sam
        cfg = self.sam.config
        if not cfg.directly_add_no_mem_embed:
            raise ValueError("the OpenVINO runtime needs directly_add_no_mem_embed")
        self.precision = default_precision() if precision == "auto" else precision
        self.side = cfg.image_embedding_size
        self.tokens = self.side * self.side
        self.spatial_slots = max(cfg.num_maskmem - 1, 1)
        split = cfg.d_model // cfg.mem_dim
        self.ptr_tokens = (cfg.max_obj_ptrs_in_encoder - 1) * split if cfg.use_obj_ptrs_in_encoder else 0
        self._cache = resolve_cache(cache_dir)
        self._core = ov.Core()
        self._config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                        "INFERENCE_NUM_THREADS": max(1, int(threads)), "PERFORMANCE_HINT": "LATENCY"}
        if self._cache is not None:
            # one folder per precision: OpenVINO's blob key does not tell them apart (a mixed folder crashes it)
            self._config["CACHE_DIR"] = str(self._cache / "openvino" / self.precision)
        self._key = weights_key(model, GRAPHS_VERSION, cfg.image_size, self.spatial_slots, self.ptr_tokens)
        self._requests: dict[tuple[str, int], object] = {}
        self._bound: dict[tuple[str, int], list[np.ndarray]] = {}
        with torch.no_grad():
            self.memory_pos = self.sam.memory_encoder.position_encoding(torch.zeros(1, cfg.mem_dim, self.side,
                                                                                    self.side))
        for name, batch in (("encoder", 4), ("single", self.single_batch), ("step", 2)):  # the usual ones, now
            self._request(name, batch)

    # ------------------------------------------------------------------ compile
    def _graph(self, name: str, batch: int) -> tuple[nn.Module, tuple[Tensor, ...], list[str], list[str]]:
        cfg = self.sam.config
        s, c, side = cfg.image_size, cfg.d_model, self.side
        m = self.spatial_slots * self.tokens + self.ptr_tokens
        feat, images = torch.zeros(batch, c, side, side), torch.zeros(batch, 3, s, s)
        if name == "encoder":
            return EncoderGraph(self.model), (images,), ["images"], ["embed"]
        if name == "single":
            return SingleGraph(self.model), (feat, images), ["feat", "images"], ["masks", "scores", "ptr"]
        memory = (torch.zeros(batch, m, cfg.mem_dim), torch.zeros(batch, m, cfg.mem_dim), torch.zeros(batch, m),
                  torch.ones(batch))
        return (StepGraph(self.model, self.ptr_tokens), (feat, feat, *memory, images),
                ["feat", "pos", "memory", "memory_pos", "memory_bias", "has_memory", "images"],
                ["masks", "scores", "ptr", "memory_features"])

    def _request(self, name: str, batch: int):
        """The inference request of part ``name`` for a fixed batch size (exported and compiled on first use;
        static shapes run faster than a dynamic batch)."""
        request = self._requests.get((name, batch))
        if request is None:
            graph, example, inputs, outputs = self._graph(name, batch)

            def export() -> bytes:
                return export_onnx(graph, example, inputs, outputs, dynamic_batch=False)

            stem = f"ov-{name}-b{batch}"
            data, path = cached_export(self._cache, stem, self._key, export)
            try:
                compiled = self._compile(data, path)
            except RuntimeError:
                if path is None:
                    raise
                path.unlink(missing_ok=True)  # a damaged cached export: export again
                data, path = cached_export(self._cache, stem, self._key, export)
                compiled = self._compile(data, path)
            request = compiled.create_infer_request()
            self._requests[(name, batch)] = request
        return request

    def _compile(self, data: bytes, path: Path | None):
        source = str(path) if path is not None else self._core.read_model(data, b"")
        return self._core.compile_model(source, "CPU", self._config)

    def _run(self, name: str, batch: int, *arrays: np.ndarray, out: list[np.ndarray] | None = None
             ) -> list[np.ndarray]:
        """Run part ``name`` compiled for ``batch`` rows; outputs are copied out of OpenVINO's buffers, or written
        straight into ``out`` (arrays of exactly ``batch`` rows)."""
        import openvino as ov

        request = self._request(name, batch)
        if out is not None:
            for i, array in enumerate(out):
                request.set_output_tensor(i, ov.Tensor(array, shared_memory=True))
            self._bound[(name, batch)] = out  # OpenVINO keeps writing there: keep the arrays alive
        result = request.infer([_padded_rows(a, batch) for a in arrays])
        if out is not None:
            return out
        return [np.array(result[i], dtype=np.float32, copy=True) for i in range(len(result))]

    # ------------------------------------------------------------------ model interface
    def encode(self, images: np.ndarray, batch: int = 4, progress=None) -> SliceFeatures:
        """Features of ``(n, 3, S, S)`` model input slices, ``batch`` at a time (``progress("encoding slices", done,
        n)`` after each batch); the images travel with them for the decoder's stem."""
        from infarctsam.model.promptfree import TinyViTImageEncoder

        images = np.ascontiguousarray(images, dtype=np.float32)
        n = len(images)
        rows = -(-n // batch) * batch  # whole batches: the last one is padded with empty slices
        embed = np.empty((rows, self.sam.config.d_model, self.side, self.side), np.float32)
        for i in range(0, n, batch):
            self._run("encoder", batch, images[i: i + batch], out=[embed[i: i + batch]])
            if progress is not None:
                progress("encoding slices", min(i + batch, n), n)
        out = TinyViTImageEncoder.from_embedding(torch.from_numpy(embed[:n]))
        return SliceFeatures(out["backbone_fpn"][0], out["vision_pos_enc"][0], None, torch.from_numpy(images))

    def _memory_inputs(self, memories, batch: int, num_frames: int | None):
        """Fixed-layout memory, position, bias and ``has_memory`` rows; None when the memories do not fit."""
        cfg = self.sam.config
        size = self.spatial_slots * self.tokens + self.ptr_tokens
        mem = np.zeros((batch, size, cfg.mem_dim), np.float32)
        pos = np.zeros_like(mem)
        bias = np.full((batch, size), HIDDEN, np.float32)
        assembled = assemble_memory(self.sam, cfg, memories, num_frames) if memories else None
        if assembled is None:
            return mem, pos, bias, np.zeros(batch, np.float32)
        n_ptr = assembled.num_obj_ptr_tokens
        n_spatial = assembled.tokens.shape[1] - n_ptr
        if n_spatial > self.spatial_slots * self.tokens or n_ptr > self.ptr_tokens:
            return None
        tokens, tpos = assembled.tokens.float().numpy(), assembled.pos.float().numpy()
        ptr0 = self.spatial_slots * self.tokens
        for lo, hi, dst in ((0, n_spatial, 0), (n_spatial, n_spatial + n_ptr, ptr0)):
            mem[:, dst: dst + hi - lo] = tokens[:, lo:hi]
            pos[:, dst: dst + hi - lo] = tpos[:, lo:hi]
            bias[:, dst: dst + hi - lo] = 0.0
        return mem, pos, bias, np.ones(batch, np.float32)

    def step(self, features: SliceFeatures, memories=(), num_frames: int | None = None,
             encode_memory: bool = True):
        """Segment slice(s) given the memories of neighbouring slices (as :meth:`PromptFreeSam.step`)."""
        cfg = self.sam.config
        n = features.batch_size
        feat, images = features.image_embed.numpy(), features.images.numpy()
        memories = list(memories)
        if not memories and (not encode_memory or cfg.num_maskmem == 0):
            outs = [self._run("single", self.single_batch, feat[i: i + self.single_batch],
                              images[i: i + self.single_batch]) for i in range(0, n, self.single_batch)]
            rows = [min(self.single_batch, n - i) for i in range(0, n, self.single_batch)]
            masks, scores, ptr = (torch.from_numpy(np.concatenate([o[k][:r] for o, r in zip(outs, rows)]))
                                  for k in range(3))
            return OpenVinoStep(masks, scores, ptr, None)
        inputs = self._memory_inputs(memories, n, num_frames)
        if inputs is None:  # conditioning memories: outside the fixed layout, decoded by PyTorch
            with torch.no_grad():
                full = FrameFeatures(features.image_embed, features.image_pos, self.model.stem(features.images))
                return self.model.step(full, memories, num_frames, encode_memory)
        masks, scores, ptr, mem = (torch.from_numpy(a) for a in self._run(
            "step", n, feat, features.image_pos.numpy(), *inputs, images))
        memory = None if not encode_memory or cfg.num_maskmem == 0 else MemoryEntry(
            mem, self.memory_pos.expand(n, -1, -1, -1), ptr, offset=0, is_conditioning=False,
            object_score_logits=scores)
        return OpenVinoStep(masks, scores, ptr, memory)
