"""Compiled model parts run by OpenVINO, and the slice-by-slice decoding over them, without PyTorch.

:mod:`infarctsam.runtime.openvino_sam` exports three parts of the network to ONNX (``encoder``, ``single``, ``step``)
and the small constants of the memory bank (position encodings) to an ``.npz``, all named after the weights. Once
they are in the export cache, this module runs the whole model from them with NumPy and OpenVINO alone: no PyTorch
import (about a second) and no network to build, which is most of a case's start-up.

:func:`decode_compiled` is the decoding of :func:`infarctsam.runtime.predictor.decode_volume` (single slices, then the
memory passes over the runs of slices that may hold lesion, both directions together) with the memory bank of the
non-conditioning, evaluation case written out: a slice sees the spatial memories of its ``num_maskmem - 1``
previous slices in the pass (farthest first) and the object pointers of its ``min(n, max_obj_ptrs) - 1`` previous
slices (nearest first), each with the temporal encoding the PyTorch assembly gives it (read from the constants,
which were produced by that assembly). The tests check both paths give the same probabilities.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

PRECISIONS = ("auto", "fp32", "mixed", "bf16")
GRAPHS_VERSION = 8  # part of the export cache key: raise it whenever a graph, the constants or the cache format change
# (6: entries carry a sha256 sidecar; compiled blobs are entries of their own, no longer OpenVINO's CACHE_DIR;
# 7: taken by an experiment of 2026-12-07 that was not kept; 8: the encoder's window attention projects only the
# map's own tokens, tinyvit.TinyViTBlock._windowed_attention)
HIDDEN = -1.0e9  # logit bias of padded memory tokens: exp(HIDDEN - max) is exactly 0 in float32 and bfloat16
# Slices a compiled encoder call takes: one. OpenVINO's float32 encoder runs 101-105 ms a slice at batch 1, 2 or 4
# alike on the 2-core VMs (110-116 at 8), and a fixed batch of 4 padded the last call of a case with up to 3 empty
# slices (3 of 68 rows for the bundled case: 60 GFLOP for nothing).
ENCODER_BATCH = 1
PARTS = (("encoder", ENCODER_BATCH), ("single", 8), ("step", 2))  # compiled when a runtime is built (others on use)

Progress = Callable[[str, int, int], None]


def openvino_available() -> bool:
    """True when ``openvino`` can be imported."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def native_bf16() -> bool:
    """True when OpenVINO runs bfloat16 natively on this CPU (AMX / AVX-512 BF16)."""
    import openvino as ov

    return "bf" in str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")).lower()


def default_precision() -> str:
    """What ``auto`` means: ``fp32``, the unoptimised model's results to float rounding on every CPU. ``mixed`` and
    ``bf16`` are faster where bfloat16 is native but moved some checked cases by more than 0.01 Dice (``mixed``: one
    of 64 by 0.0102; ``bf16``: 6 of 64, up to 0.024; ``benchmarks/speed_accuracy.py``), so they are opt-in."""
    return "fp32"


def part_precision(precision: str, name: str) -> str:
    """OpenVINO precision (``f32`` / ``bf16``) of part ``name`` under ``precision`` (``fp32``, ``mixed``, ``bf16``)."""
    if precision == "bf16" or (precision == "mixed" and name != "encoder"):
        return "bf16"
    return "f32"


def part_stem(name: str, batch: int) -> str:
    """File stem of a part compiled for a fixed batch, e.g. ``ov-step-b2``."""
    return f"ov-{name}-b{batch}"


def blob_tag(core) -> str:
    """Short hash of what a compiled blob depends on besides the model: the OpenVINO version and the CPU (its name,
    OpenVINO's capabilities and the instruction set flags), so nodes of a mixed cluster sharing a cache never load
    each other's blobs."""
    import hashlib

    import openvino as ov

    flags = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    parts = [ov.__version__, str(core.get_property("CPU", "FULL_DEVICE_NAME")),
             str(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")), flags]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]


def cached_parts_present(cache: Path | None, key: str) -> bool:
    """True when every part of :data:`PARTS` and the constants are in the export cache under ``key``."""
    if cache is None:
        return False
    files = [cache / f"{part_stem(n, b)}-{key}.onnx" for n, b in PARTS] + [cache / f"ov-constants-{key}.npz"]
    return all(f.is_file() for f in files)


class OpenVinoParts:
    """Inference requests of the exported parts, each compiled for a fixed batch size on first use.

    Parameters
    ----------
    cache : Path or None
        Export cache folder (None: in memory only, then ``exporter`` is required).
    key : str
        The weights' key in the cache.
    precision : str
        ``fp32``, ``mixed`` (float32 encoder, bfloat16 decoder) or ``bf16`` (already resolved).
    threads : int
        Inference threads.
    exporter : callable, optional
        ``exporter(name, batch) -> bytes`` (ONNX) for a part missing from the cache; without it a missing or
        damaged part raises ``FileNotFoundError``.
    """

    def __init__(self, cache: Path | None, key: str, precision: str, threads: int,
                 exporter: Callable[[str, int], bytes] | None = None) -> None:
        import openvino as ov

        self.cache, self.key, self.precision, self.exporter = cache, key, precision, exporter
        self._core = ov.Core()
        self._threads = max(1, int(threads))
        self._requests: dict[tuple[str, int], object] = {}
        self._bound: dict[tuple[str, int], list[np.ndarray]] = {}
        self._compiling: threading.Thread | None = None
        self._failed: dict[tuple[str, int], BaseException] = {}
        self._tag: str | None = None

    def compile_in_background(self, parts: tuple[tuple[str, int], ...] = PARTS) -> None:
        """Compile ``parts`` in a background thread (OpenVINO releases the GIL while it compiles), so that the
        caller reads and preprocesses the case meanwhile; the first :meth:`request` waits for it."""
        def work() -> None:
            for name, batch in parts:
                try:
                    self.request(name, batch)
                except (FileNotFoundError, RuntimeError, OSError) as exc:  # raised again where the part is used
                    self._failed[(name, batch)] = exc

        # not a daemon: the interpreter waits for it at exit (OpenVINO must not be torn down mid-compile)
        self._compiling = threading.Thread(target=work, name="infarctsam-compile", daemon=False)
        self._compiling.start()

    def _config(self, name: str) -> dict[str, object]:
        """OpenVINO settings of part ``name``."""
        hint = part_precision(self.precision, name)
        return {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": self._threads,
                "PERFORMANCE_HINT": "LATENCY"}

    def blob_path(self, name: str, batch: int) -> Path | None:
        """Where the compiled blob of a part lives in the cache: named after the export, the precision, the OpenVINO
        version and this CPU (a blob is only valid there), e.g. ``openvino/ov-step-b2-KEY-f32-TAG.blob``."""
        if self.cache is None:
            return None
        if self._tag is None:
            self._tag = blob_tag(self._core)
        hint = part_precision(self.precision, name)
        return self.cache / "openvino" / f"{part_stem(name, batch)}-{self.key}-{hint}-{self._tag}.blob"

    def _export_bytes(self, name: str, batch: int) -> bytes:
        """Verified ONNX bytes of a part: from the cache, exported again when missing or damaged (with an
        exporter), else ``FileNotFoundError``."""
        from infarctsam.runtime.cache_entries import load_verified
        from infarctsam.runtime.export_cache import cached_export

        stem = part_stem(name, batch)
        if self.exporter is None:
            data = load_verified(None if self.cache is None else self.cache / f"{stem}-{self.key}.onnx")
            if data is None:
                raise FileNotFoundError(f"{stem} is not in the export cache or does not match its sha256")
            return data
        return cached_export(self.cache, stem, self.key, lambda: self.exporter(name, batch))[0]

    def _compile(self, name: str, batch: int, config: dict[str, object]):
        """The compiled part: imported from its verified blob in the cache, else compiled from the verified export
        (and its blob stored for the next process)."""
        from infarctsam.runtime.cache_entries import check_entry, store_entry, warn_once

        blob = self.blob_path(name, batch)
        state = "missing"
        if blob is not None:
            data, state = check_entry(blob, 2.0)
            if data is not None:
                try:
                    return self._core.import_model(data, "CPU", config)
                except RuntimeError:
                    state = "cannot be loaded by OpenVINO"
            if state != "missing":
                warn_once(blob, state)
        try:
            compiled = self._core.compile_model(self._core.read_model(self._export_bytes(name, batch), b""), "CPU",
                                                config)
        except RuntimeError:  # an export that passed its sha256 but does not compile: export it again
            if self.exporter is None or self.cache is None:
                raise FileNotFoundError(f"{part_stem(name, batch)} in the export cache cannot be compiled") from None
            data = self.exporter(name, batch)
            store_entry(self.cache / f"{part_stem(name, batch)}-{self.key}.onnx", data, replace=True)
            compiled = self._core.compile_model(self._core.read_model(data, b""), "CPU", config)
        if blob is not None:
            try:
                exported = compiled.export_model()  # BytesIO in recent OpenVINO releases, bytes before
                store_entry(blob, exported.getvalue() if hasattr(exported, "getvalue") else bytes(exported),
                            replace=state != "missing")
            except RuntimeError:  # a plugin that cannot export: compiled again next time
                pass
        return compiled

    def request(self, name: str, batch: int):
        """The inference request of part ``name`` for ``batch`` rows (static shapes run faster)."""
        thread = self._compiling
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._compiling = None
        failed = self._failed.pop((name, batch), None)
        if failed is not None:
            raise failed
        request = self._requests.get((name, batch))
        if request is None:
            request = self._compile(name, batch, self._config(name)).create_infer_request()
            self._requests[(name, batch)] = request
        return request

    def run(self, name: str, batch: int, *arrays: np.ndarray, out: list[np.ndarray] | None = None
            ) -> list[np.ndarray]:
        """Run part ``name`` compiled for ``batch`` rows (shorter inputs are padded with zero rows); outputs are
        copied out of OpenVINO's buffers, or written straight into ``out`` (arrays of exactly ``batch`` rows)."""
        import openvino as ov

        request = self.request(name, batch)
        if out is not None:
            for i, array in enumerate(out):
                request.set_output_tensor(i, ov.Tensor(array, shared_memory=True))
            self._bound[(name, batch)] = out  # OpenVINO keeps writing there: keep the arrays alive
        result = request.infer([_padded_rows(a, batch) for a in arrays])
        if out is not None:
            return out
        return [np.array(result[i], dtype=np.float32, copy=True) for i in range(len(result))]

    def encode(self, images: np.ndarray, batch: int = 4, progress: Progress | None = None) -> np.ndarray:
        """Image embeddings of ``(n, 3, S, S)`` slices, ``batch`` at a time (``progress`` after each batch)."""
        n = len(images)
        rows = -(-n // batch) * batch  # whole batches: the last one is padded with empty slices
        embed: np.ndarray | None = None
        for i in range(0, n, batch):
            if embed is None:  # the shape comes from the first batch
                first = self.run("encoder", batch, images[:batch])[0]
                embed = np.empty((rows, *first.shape[1:]), np.float32)
                embed[:batch] = first
            else:
                self.run("encoder", batch, images[i: i + batch], out=[embed[i: i + batch]])
            if progress is not None:
                progress("encoding slices", min(i + batch, n), n)
        return np.zeros((0,), np.float32) if embed is None else embed[:n]


def _padded_rows(array: np.ndarray, batch: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``batch`` rows (a part compiled for a fixed batch)."""
    if len(array) == batch:
        return np.ascontiguousarray(array, dtype=np.float32)
    out = np.zeros((batch, *array.shape[1:]), np.float32)
    out[: len(array)] = array
    return out


class MemoryConstants:
    """The memory bank's constants, as the PyTorch assembly produces them (saved by the exporting side).

    Attributes
    ----------
    image_pos : numpy.ndarray
        ``[C, h, w]`` sine position encoding of the image embedding.
    spatial_pos : numpy.ndarray
        ``[K, h*w, Cm]`` position (spatial + temporal) of the spatial memory at offset ``k + 1``.
    pointer_pos : numpy.ndarray
        ``[P + 1, P, T, Cm]``: for a pass of ``m`` slices (``m`` clipped to ``P``), the position of the ``T`` tokens
        of the pointer at offset ``o`` is ``pointer_pos[m, o]``.
    max_obj_ptrs, num_maskmem, ptr_tokens : int
        Model sizes (``ptr_tokens``: pointer tokens in the fixed memory layout).
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.image_pos = arrays["image_pos"]
        self.spatial_pos = arrays["spatial_pos"]
        self.pointer_pos = arrays["pointer_pos"]
        self.num_maskmem, self.max_obj_ptrs, self.ptr_tokens, self.use_pointers = (
            int(v) for v in arrays["sizes"])

    @classmethod
    def load(cls, path: Path) -> MemoryConstants:
        """Read the ``.npz`` written by :class:`~infarctsam.runtime.openvino_sam.OpenVinoSam`, verified against its
        sha256 (``FileNotFoundError`` when missing or damaged)."""
        import io

        from infarctsam.runtime.cache_entries import load_verified

        raw = load_verified(path)
        if raw is None:
            raise FileNotFoundError(f"{path.name} is not in the export cache or does not match its sha256")
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            return cls({k: data[k] for k in data.files})

    @property
    def spatial_slots(self) -> int:
        """Spatial memories a slice sees."""
        return max(self.num_maskmem - 1, 1)

    def layout(self, history: list[tuple[np.ndarray, np.ndarray]], num_frames: int, batch: int):
        """Fixed-layout memory, position, bias and ``has_memory`` for a slice after ``history`` (the pass's previous
        slices' ``(memory features [B, Cm, h, w], pointer [B, C])``, oldest first)."""
        hw, cm = self.spatial_pos.shape[1:]
        size = self.spatial_slots * hw + self.ptr_tokens
        mem = np.zeros((batch, size, cm), np.float32)
        pos = np.zeros_like(mem)
        bias = np.full((batch, size), HIDDEN, np.float32)
        if not history:
            return mem, pos, bias, np.zeros(batch, np.float32)
        at = 0
        for k in range(self.num_maskmem - 1, 0, -1):  # farthest first, as the PyTorch assembly orders them
            if k <= len(history):
                feats = history[-k][0]
                mem[:, at: at + hw] = feats.reshape(batch, cm, hw).transpose(0, 2, 1)
                pos[:, at: at + hw] = self.spatial_pos[k - 1]
                bias[:, at: at + hw] = 0.0
                at += hw
        if self.use_pointers:
            m = min(num_frames, self.max_obj_ptrs)
            at = self.spatial_slots * hw
            for offset in range(1, min(m - 1, len(history)) + 1):  # nearest first
                tokens = history[-offset][1].reshape(batch, -1, cm)
                t = tokens.shape[1]
                mem[:, at: at + t] = tokens
                pos[:, at: at + t] = self.pointer_pos[m, offset]
                bias[:, at: at + t] = 0.0
                at += t
        return mem, pos, bias, np.ones(batch, np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))).astype(np.float32)


def _pass(parts: OpenVinoParts, consts: MemoryConstants, embed: np.ndarray, images: np.ndarray,
          rows: list[np.ndarray]) -> list[np.ndarray]:
    """One memory-conditioned pass; ``rows[t]`` are the slice indices decoded together at step ``t`` (one per
    direction). Returns the probabilities of each step."""
    history: list[tuple[np.ndarray, np.ndarray]] = []
    n, out = len(rows), []
    pos = np.broadcast_to(consts.image_pos, (len(rows[0]), *consts.image_pos.shape))
    for idx in rows:
        inputs = consts.layout(history, n, len(idx))
        masks, _, ptr, mem = parts.run("step", len(idx), embed[idx], pos, *inputs, images[idx])
        out.append(_sigmoid(masks[:, 0]))
        history.append((mem, ptr))
        if len(history) > max(consts.num_maskmem - 1, consts.max_obj_ptrs - 1, 1):
            history.pop(0)
    return out


def decode_compiled(parts: OpenVinoParts, consts: MemoryConstants, embed: np.ndarray, images: np.ndarray,
                    bidirectional: bool = True, full: bool = False, progress: Progress | None = None,
                    select: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Probabilities ``(n, S, S)`` of a slice stack, decoded as :func:`~infarctsam.runtime.predictor.decode_volume`
    (``select``: :func:`~infarctsam.runtime.slices.memory_segments`)."""
    from infarctsam.runtime.slices import memory_margin, memory_segments

    say = progress or (lambda *_: None)
    say("decoding slices one by one", 0, 0)
    n, batch = len(embed), 8
    pieces = [[a[: min(batch, n - i)] for a in parts.run("single", batch, embed[i: i + batch], images[i: i + batch])]
              for i in range(0, n, batch)]
    probs = _sigmoid(np.concatenate([p[0] for p in pieces])[:, 0])
    scores = np.concatenate([p[1] for p in pieces])[:, 0]
    segments = [(0, n)] if full else memory_segments(probs, scores, memory_margin(consts.num_maskmem), select)
    say("decoding slices with memory", 0, 0)
    done, total = 0, sum(b - a for a, b in segments)
    for a, b in segments:
        length = b - a
        if bidirectional and length > 1:
            steps = _pass(parts, consts, embed, images, [np.array([a + t, b - 1 - t]) for t in range(length)])
            fwd = np.stack([s[0] for s in steps])
            bwd = np.stack([s[1] for s in steps])[::-1]
            probs[a:b] = 0.5 * (fwd + bwd)
        else:
            probs[a:b] = np.stack([s[0] for s in _pass(parts, consts, embed, images,
                                                       [np.array([a + t]) for t in range(length)])])
        done += length
        say("decoding slices with memory", done, total)
    return probs


class CompiledPredictor:
    """Lesion probability volume from the compiled parts (the ``openvino`` runtime of the ``sam`` engine).

    Parameters
    ----------
    config : ModelConfig
        The network's configuration (image size, bidirectional decoding, memory scope).
    parts : OpenVinoParts
        The compiled parts.
    constants : MemoryConstants
        The memory bank's position encodings.
    batch_size : int
        Slices per encoder batch.
    """

    runtime = "openvino"

    def __init__(self, config, parts: OpenVinoParts, constants: MemoryConstants,
                 batch_size: int = ENCODER_BATCH) -> None:
        self.config, self.parts, self.constants, self.batch_size = config, parts, constants, batch_size

    @property
    def precision(self) -> str:
        """``fp32``, ``mixed`` or ``bf16``."""
        return self.parts.precision

    def slice_images(self, case):
        """Model input slices ``(n, 3, S, S)``, the grid and the slice indices (as the PyTorch predictor)."""
        from infarctsam.runtime.slices import model_input_slices

        return model_input_slices(case, self.config.image_size)

    def predict_stack(self, images: np.ndarray, progress: Progress | None = None,
                      select: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Probabilities ``(n, S, S)`` of consecutive model input slices (``select``: as
        :func:`~infarctsam.runtime.slices.memory_segments`)."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        embed = self.parts.encode(images, self.batch_size, progress)
        return decode_compiled(self.parts, self.constants, embed, images, self.config.bidirectional,
                               self.config.memory_scope == "all", progress, select)

    def predict(self, case, progress: Progress | None = None,
                select_volume: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Lesion probability on the canonical grid of ``case`` (float32 in [0, 1]); ``select_volume``: as
        :meth:`infarctsam.runtime.predictor.VolumePredictor.predict`."""
        from infarctsam.runtime.slices import stack_select, stack_to_volume

        images, grid, zs = self.slice_images(case)
        if zs.size == 0:
            return np.zeros(case.dwi.shape, dtype=np.float32)
        select = None if select_volume is None else stack_select(select_volume, grid, zs, case.dwi.shape)
        return stack_to_volume(self.predict_stack(images, progress, select), grid, zs, case.dwi.shape)
