"""Volumetric prediction: slices as frames, decoded forward and backward with a bounded memory bank.

1. The model's input channels (:mod:`infarctsam.preprocess.channels`) are resampled to square slices of the model's
   size (:class:`~infarctsam.preprocess.slices.SliceGrid`); slices without brain are skipped.
2. The image encoder runs batched over the slices.
3. The mask decoder runs through the stack forward, then backward; each slice is conditioned on the memories of the
   slices just decoded in that pass (at most ``num_maskmem - 1`` spatial memories and ``max_obj_ptrs`` object
   pointers are kept, so memory does not grow with the number of slices).
4. The two passes' probabilities are averaged and mapped back onto the canonical grid with the exact geometric
   inverse of step 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infarctsam.model.config import ModelConfig
from infarctsam.preprocess.pipeline import Preprocessed
from infarctsam.preprocess.slices import SliceGrid
from infarctsam.runtime.slices import (
    SliceSelect,
    memory_margin,
    memory_segments,
    model_input_slices,
    stack_select,
    stack_to_volume,
)

Progress = Callable[[str, int, int], None]


@dataclass
class PredictorOptions:
    """Run-time options of :class:`VolumePredictor`.

    Attributes
    ----------
    batch_size : int
        Slices per image-encoder batch of the PyTorch and ONNX Runtime encoders (the OpenVINO one takes a slice a
        call: :data:`~infarctsam.runtime.openvino_parts.ENCODER_BATCH`).
    device : str
        ``cpu`` or ``cuda``.
    bf16 : bool
        bfloat16 autocast for the PyTorch image encoder (CPU with AVX-512 BF16 / AMX, or CUDA).
    runtime : str
        ``torch``; ``onnx`` (image encoder in ONNX Runtime, the rest in PyTorch); ``openvino`` (encoder and decoder
        compiled by OpenVINO, :mod:`infarctsam.runtime.openvino_sam`); ``auto``: ``openvino`` when installed and
        applicable (litemedsam backbone on CPU), else ``onnx`` when installed and applicable, else ``torch``.
    precision : str
        OpenVINO runtime precision: ``fp32`` (also what ``auto`` means); ``mixed`` (float32 encoder, bfloat16
        decoder); ``bf16``.
    onnx_cache : str or Path or None
        Folder for the exported ONNX parts (``"default"``: ``~/.cache/infarctsam/onnx``; None: memory only).
    cache_key : str, optional
        Name of the weights in that cache (default: a hash of the network's tensors).
    """

    batch_size: int = 4
    device: str = "cpu"
    bf16: bool = False
    runtime: str = "auto"
    precision: str = "auto"
    onnx_cache: str | Path | None = "default"
    cache_key: str | None = None


class VolumePredictor:
    """Lesion probability volume from a :class:`~infarctsam.model.promptfree.PromptFreeSam`.

    Parameters
    ----------
    model : PromptFreeSam
        The network (any backbone).
    config : ModelConfig
        Its configuration (image size, bidirectional decoding).
    options : PredictorOptions, optional
        Batch size, device, precision.
    """

    def __init__(self, model, config: ModelConfig, options: PredictorOptions | None = None) -> None:
        import torch

        self.options = options or PredictorOptions()
        self.device = torch.device(self.options.device)
        self.model = model.to(self.device).eval()
        self.config = config
        self._onnx = None
        self._compiled = None
        self.runtime = self._choose_runtime()
        if self.options.precision not in ("auto", "fp32", "mixed", "bf16"):
            raise ValueError(f"unknown precision {self.options.precision!r}")
        if self.options.precision in ("mixed", "bf16") and self.runtime != "openvino":
            raise ValueError(f"{self.options.precision} precision needs the openvino runtime (pip install openvino) "
                             "on CPU")
        if self.runtime == "openvino":
            from infarctsam.runtime.openvino_parts import CompiledPredictor
            from infarctsam.runtime.openvino_sam import OpenVinoSam

            compiled = OpenVinoSam(self.model, self.options.precision, threads=torch.get_num_threads(),
                                   cache_dir=self.options.onnx_cache, key=self.options.cache_key)
            self._compiled = CompiledPredictor(config, compiled.parts, compiled.constants)
        elif self.runtime == "onnx":
            from infarctsam.runtime.onnx_trunk import OnnxTrunk

            self._onnx = OnnxTrunk(model.sam.image_encoder.trunk, config.image_size, threads=torch.get_num_threads(),
                                     cache_dir=self.options.onnx_cache)

    @property
    def precision(self) -> str:
        """Arithmetic of the network: ``fp32`` or ``bf16`` (OpenVINO), ``bf16-autocast`` (PyTorch encoder)."""
        if self._compiled is not None:
            return self._compiled.precision
        return "bf16-autocast" if self.options.bf16 and self.runtime == "torch" else "fp32"

    def _choose_runtime(self) -> str:
        from infarctsam.runtime.onnx_trunk import onnxruntime_available
        from infarctsam.runtime.openvino_parts import openvino_available

        runtime = self.options.runtime
        if runtime not in ("auto", "torch", "onnx", "openvino"):
            raise ValueError(f"unknown runtime {runtime!r}")
        applicable = not self.config.is_sam2 and self.device.type == "cpu" and not self.options.bf16
        for name, available in (("openvino", openvino_available), ("onnx", onnxruntime_available)):
            if runtime == name and not (applicable and available()):
                raise ValueError(f"the {name} runtime needs {'openvino' if name == 'openvino' else 'onnxruntime'} "
                                 "and the litemedsam backbone on CPU")
            if runtime in (name, "auto") and applicable and available():
                return name
        return "torch"

    def slice_images(self, case: Preprocessed) -> tuple[np.ndarray, SliceGrid, np.ndarray]:
        """Model input slices ``(n, 3, S, S)`` of the brain slices, the grid, and the slice indices used."""
        return model_input_slices(case, self.config.image_size)

    def predict(self, case: Preprocessed, progress: Progress | None = None,
                select_volume: SliceSelect | None = None) -> np.ndarray:
        """Lesion probability on the canonical grid of ``case`` (float32 in [0, 1]); ``progress(stage, done, total)``
        is told of each batch of slices encoded and of the decoding.

        ``select_volume(prob) -> bool per axial slice``, given the single-slice probabilities on the canonical grid,
        narrows the slices around which the memory passes run to those it keeps (the engine's fusion head keeps the
        slices where the fused probability could reach a lesion; :func:`~infarctsam.runtime.slices.memory_segments`).
        """
        if self._compiled is not None:
            return self._compiled.predict(case, progress, select_volume)
        images, grid, zs = self.slice_images(case)
        if zs.size == 0:
            return np.zeros(case.dwi.shape, dtype=np.float32)
        select = None if select_volume is None else stack_select(select_volume, grid, zs, case.dwi.shape)
        return stack_to_volume(self.predict_stack(images, progress, select), grid, zs, case.dwi.shape)

    def predict_stack(self, images: np.ndarray, progress: Progress | None = None,
                      select: SliceSelect | None = None) -> np.ndarray:
        """Probabilities ``(n, S, S)`` for a stack of consecutive model input slices ``(n, 3, S, S)`` (``select``:
        :func:`~infarctsam.runtime.slices.memory_segments`)."""
        import torch

        if self._compiled is not None:
            return self._compiled.predict_stack(images, progress, select)
        with torch.inference_mode():
            feats = self.encode(torch.from_numpy(np.ascontiguousarray(images)).to(self.device), progress)
            return decode_volume(self.model, feats, self.config.bidirectional, self.config.memory_scope == "all",
                                 progress, select).cpu().numpy()

    def encode(self, images, progress: Progress | None = None):
        """Encode all slices in batches; returns one :class:`FrameFeatures` for the whole stack."""
        import torch

        from infarctsam.model.sam2 import FrameFeatures

        n, step = images.shape[0], self.options.batch_size
        if self._onnx is not None:
            host = images.cpu().numpy()
            chunks = []
            for i in range(0, n, step):
                chunks.append(self._onnx(host[i: i + step], step))
                if progress is not None:
                    progress("encoding slices", min(i + step, n), n)
            return self.model.features_from_embedding(torch.from_numpy(np.concatenate(chunks)), images)
        parts = []
        use_bf16 = self.options.bf16
        for i in range(0, n, step):
            batch = images[i: i + step]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                f = self.model.encode(batch)
            parts.append(f)
            if progress is not None:
                progress("encoding slices", min(i + step, n), n)
        high = None
        if parts[0].high_res is not None:
            high = tuple(torch.cat([p.high_res[k].float() for p in parts]) for k in range(2))
        return FrameFeatures(torch.cat([p.image_embed.float() for p in parts]),
                             torch.cat([p.image_pos.float() for p in parts]), high)

    def decode(self, feats, reverse: bool):
        """Decode the stack in one direction with a bounded memory bank; probabilities ``(n, S, S)``."""
        return decode_stack(self.model, feats, reverse)


def decode_single(model, feats, batch: int = 8):
    """Every slice on its own (no memory): probabilities ``(n, S, S)`` and object-score logits ``(n,)``."""
    import torch

    probs, scores = [], []
    for i in range(0, feats.batch_size, batch):
        step = model.step(feats.select(slice(i, i + batch)), (), encode_memory=False)
        probs.append(torch.sigmoid(step.high_res_masks[:, 0].float()))
        scores.append(step.object_score_logits[:, 0].float())
    return torch.cat(probs), torch.cat(scores)


def decode_volume(model, feats, bidirectional: bool = True, full: bool = False, progress: Progress | None = None,
                  select: SliceSelect | None = None):
    """Probabilities ``(n, S, S)`` of a slice stack.

    Every slice is first decoded on its own; its object score says whether it may hold lesion. The memory-
    conditioned passes (both directions, averaged) then run over the runs of slices around those that may and that
    ``select`` keeps (:func:`~infarctsam.runtime.slices.memory_segments`; or over the whole stack when ``full``),
    which is where memory refines faint lesion edges; the other slices keep their single-slice result.
    ``progress`` hears ``("decoding slices one by one", 0, 0)``, then
    ``("decoding slices with memory", 0, 0)`` and, after each run of slices, how many of their slices are done.
    """
    say = progress or (lambda *_: None)
    say("decoding slices one by one", 0, 0)
    probs, scores = decode_single(model, feats)
    n = feats.batch_size
    margin = memory_margin(model.sam.config.num_maskmem)
    host = probs.cpu().numpy() if select is not None else probs  # the single-slice stack, for select only
    segments = [(0, n)] if full else memory_segments(host, scores.cpu().numpy(), margin, select)
    say("decoding slices with memory", 0, 0)
    done, total = 0, sum(b - a for a, b in segments)
    for a, b in segments:
        sub = feats.select(slice(a, b))
        if bidirectional and b - a > 1:
            fwd, bwd = decode_both_directions(model, sub)
            probs[a:b] = 0.5 * (fwd + bwd)
        else:
            probs[a:b] = decode_stack(model, sub, reverse=False)
        done += b - a
        say("decoding slices with memory", done, total)
    return probs


def decode_stack(model, feats, reverse: bool):
    """Decode all slices of ``feats`` (a :class:`FrameFeatures` stack) in one direction with a bounded memory bank.

    Returns the probabilities ``(n, S, S)`` as a tensor.
    """
    import torch

    from infarctsam.model.sam2 import MemoryBank

    n = feats.batch_size
    cfg = model.sam.config
    bank = MemoryBank(num_maskmem=cfg.num_maskmem, max_obj_ptrs=cfg.max_obj_ptrs_in_encoder, reverse=reverse)
    order = range(n - 1, -1, -1) if reverse else range(n)
    out = torch.zeros(n, cfg.image_size, cfg.image_size, device=feats.image_embed.device)
    for i in order:
        step = model.step(feats.select(i), bank.entries_for(i), num_frames=n)
        out[i] = torch.sigmoid(step.high_res_masks[0, 0].float())
        if step.memory is not None:
            bank.add(i, step.memory)
    return out


def decode_both_directions(model, feats):
    """The forward and the backward pass decoded together, as a batch of two sequences.

    Step ``t`` decodes slice ``t`` of the forward pass and slice ``n - 1 - t`` of the backward pass; both see their
    own previous ``t`` slices at the same temporal offsets, so one memory bank of batch-2 entries serves both. The
    result equals two calls of :func:`decode_stack` at half the number of network calls.
    """
    import torch

    from infarctsam.model.sam2 import MemoryBank

    n = feats.batch_size
    cfg = model.sam.config
    bank = MemoryBank(num_maskmem=cfg.num_maskmem, max_obj_ptrs=cfg.max_obj_ptrs_in_encoder)
    fwd = torch.zeros(n, cfg.image_size, cfg.image_size, device=feats.image_embed.device)
    bwd = torch.zeros_like(fwd)
    for t in range(n):
        rows = torch.tensor([t, n - 1 - t], device=feats.image_embed.device)
        step = model.step(feats.select(rows), bank.entries_for(t), num_frames=n)
        probs = torch.sigmoid(step.high_res_masks[:, 0].float())
        fwd[t], bwd[n - 1 - t] = probs[0], probs[1]
        if step.memory is not None:
            bank.add(t, step.memory)
    return fwd, bwd
