"""The ``sam`` engine: the prompt-free SAM 2-compatible model over the slice stack.

Weights: our ``.safetensors`` (with model card; the default model shipped in the package is one), or a SAM 2.1 /
MedSAM2 ``.pt`` (loaded with ``weights_only=True``; such a checkpoint has not learned prompt-free infarct
segmentation, so its output is only a starting point for ``infarctsam train``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.engines.base import Engine, EngineInfo
from infarctsam.errors import WeightsError
from infarctsam.preprocess.pipeline import Preprocessed

# Fused probability a slice's single-slice result must reach somewhere for the memory passes to run around it (the
# mask needs 0.5 after them). On the 14 real scans of benchmarks/same_masks.py, levels 0.2 and 0.35 with margins of
# 1-3 slices all gave the same masks as memory passes around every slice with a lesion score; 0.2 with the margin of
# runtime.slices.memory_margin (2) runs 16% fewer memory steps (732 -> 617 over the 14 scans).
MEMORY_LEVEL = 0.2


class SamEngine(Engine):
    """Prompt-free SAM engine.

    Parameters
    ----------
    model : PromptFreeSam
        The network.
    config : ModelConfig
        Its configuration.
    weights_info : dict
        Description of the weights (name, sha256).
    device : str
        ``cpu`` or ``cuda``.
    cache_dir : str or Path, optional
        Folder for the exported model parts (default ``~/.cache/infarctsam/onnx``).
    precision : str
        ``auto``, ``fp32``, ``mixed`` or ``bf16`` (see :func:`infarctsam.api.segment`); CPU only.
    """

    def __init__(self, model: Any, config: Any, weights_info: dict[str, Any], device: str = "cpu",
                 cache_dir: str | Path | None = None, precision: str = "auto") -> None:
        self._setup(model, config, weights_info, device, cache_dir, None)
        self.set_runtime("auto", precision)

    def _setup(self, model: Any, config: Any, weights_info: dict[str, Any], device: str,
               cache_dir: str | Path | None, weights_path: Path | None) -> None:
        self.config = config
        self.weights_info = weights_info
        self.threshold = config.threshold
        self.min_lesion_ml = config.min_lesion_ml
        self.fusion = weights_info.get("fusion")
        self._model, self._device, self._cache = model, device, cache_dir or "default"
        self._weights_path = weights_path
        self._predictors: dict[tuple[str, str], Any] = {}
        self._exact: dict[str, bool] = {}
        if str(device).startswith("cuda"):  # the same mask as on a CPU: no TF32, deterministic kernels
            from infarctsam.runtime.determinism import exact_cuda

            self._exact = exact_cuda()

    def set_runtime(self, runtime: str = "auto", precision: str = "auto") -> None:
        """Run the network with another runtime (``auto``, ``openvino``, ``onnx``, ``torch``) and precision
        (``auto``, ``fp32``, ``bf16``; see :class:`~infarctsam.runtime.predictor.PredictorOptions`)."""
        from infarctsam.runtime.predictor import PredictorOptions, VolumePredictor

        if precision not in ("auto", "fp32", "mixed", "bf16"):
            raise WeightsError(f"unknown precision {precision!r}; choose auto, fp32, mixed or bf16")
        key = (runtime, precision)
        if key not in self._predictors:
            if self._model is None:  # built from the compiled parts: the network is needed now
                from infarctsam.model.build import build_model

                self._model, _ = build_model(None, self._weights_path)
            # the network's compiled parts are named after its own tensors: a refitted fusion head reuses them
            sha = str(self.weights_info.get("network_sha256") or self.weights_info.get("sha256", ""))
            options = PredictorOptions(device=self._device, runtime=runtime, precision=precision,
                                       onnx_cache=self._cache, cache_key=sha[:24] or None)
            try:
                self._predictors[key] = VolumePredictor(self._model, self.config, options)
            except ValueError as exc:
                raise WeightsError(str(exc)) from exc
        self.predictor = self._predictors[key]

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, device: str = "cpu", image_size: int | None = None,
                     cache_dir: str | Path | None = None, precision: str = "auto") -> SamEngine:
        """Load the engine from a weights file, or the installed default model when ``weights`` is None."""
        from infarctsam.engines.base import default_weights_path
        from infarctsam.model.build import build_model
        from infarctsam.model.config import ModelConfig

        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise WeightsError("--device cuda was asked but no CUDA GPU is available")
        if weights is None:
            weights = default_weights_path()
            if weights is None:
                raise WeightsError("no default model is installed: pass --weights FILE (an infarctsam .safetensors "
                                   "or a SAM 2.1 / MedSAM2 .pt) or use --engine threshold")
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        if path.suffix == ".safetensors":
            if device == "cpu" and precision in ("auto", "fp32", "mixed", "bf16"):
                compiled = cls._from_compiled(path, precision, cache_dir)
                if compiled is not None:
                    return compiled
                return cls._export_once(path, precision, cache_dir)
            model, info = build_model(None, path)
            config = ModelConfig(**info["card"]["config"])
        else:
            from infarctsam.model.inspect import inspect_checkpoint

            report = inspect_checkpoint(path, image_size=image_size)
            if not report.fits or not (report.architecture or "").startswith("sam2.1"):
                raise WeightsError(f"{path.name}: not a SAM 2.1 / MedSAM2 checkpoint ({report.summary()})")
            size = image_size or report.image_size or 1024
            config = ModelConfig(backbone="sam2.1_hiera_tiny", image_size=size)
            model, info = build_model(config, path)
        return cls(model, config, info, device=device, cache_dir=cache_dir, precision=precision)

    @classmethod
    def _export_once(cls, path: Path, precision: str, cache_dir: str | Path | None) -> SamEngine:
        """The CPU engine of weights whose compiled parts are not in the cache: built and exported under the cache's
        export lock, so that processes starting at once on a cold cache export them once (the others wait, then load
        the first one's parts)."""
        from infarctsam.model.build import build_model
        from infarctsam.model.config import ModelConfig
        from infarctsam.model.weights_format import read_card
        from infarctsam.runtime.cache_entries import export_lock
        from infarctsam.runtime.export_cache import resolve_cache

        with export_lock(resolve_cache(cache_dir or "default"), read_card(path).tensors_sha256[:24]) as locked:
            if locked:  # another process may have exported them while this one waited
                compiled = cls._from_compiled(path, precision, cache_dir)
                if compiled is not None:
                    return compiled
            model, info = build_model(None, path)
            return cls(model, ModelConfig(**info["card"]["config"]), info, device="cpu", cache_dir=cache_dir,
                       precision=precision)

    @classmethod
    def _from_compiled(cls, path: Path, precision: str, cache_dir: str | Path | None) -> SamEngine | None:
        """The engine from the parts an earlier process exported for these weights, without PyTorch (about a second
        of import and the network build saved); None when they are not all in the cache or cannot be compiled."""
        import os

        from infarctsam.runtime.export_cache import resolve_cache
        from infarctsam.runtime.openvino_parts import (
            GRAPHS_VERSION,
            PARTS,
            CompiledPredictor,
            MemoryConstants,
            OpenVinoParts,
            cached_parts_present,
            default_precision,
            openvino_available,
        )

        cache = resolve_cache(cache_dir or "default")
        if not openvino_available():
            return None
        from infarctsam.model.build import ARCHITECTURE
        from infarctsam.model.config import ModelConfig
        from infarctsam.model.fusion import TENSOR_KEYS, FusionHead
        from infarctsam.model.weights_format import load_weights_numpy, network_sha256

        state, card = load_weights_numpy(path)
        network_key = network_sha256(state, card)
        key = f"v{GRAPHS_VERSION}-{network_key[:24]}"
        if card.architecture != ARCHITECTURE or not cached_parts_present(cache, key):
            return None
        config = ModelConfig(**card.config)
        if config.is_sam2:
            return None
        resolved = default_precision() if precision == "auto" else precision
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            constants = MemoryConstants.load(cache / f"ov-constants-{key}.npz")
        except (OSError, KeyError, ValueError):
            return None  # damaged cache: the network is built and the parts exported again
        parts = OpenVinoParts(cache, key, resolved, threads)
        parts.compile_in_background(PARTS)  # while the case is read and preprocessed
        info: dict[str, Any] = {"name": card.name, "sha256": card.tensors_sha256, "network_sha256": network_key,
                                "card": card.model_dump()}
        if all(k in state for k in TENSOR_KEYS):
            try:
                info["fusion"] = FusionHead.from_tensors({k: state[k].astype("float64") for k in TENSOR_KEYS})
            except ValueError as exc:
                raise WeightsError(f"{path.name}: invalid fusion head ({exc})") from exc
        engine = cls.__new__(cls)
        engine._setup(None, config, info, "cpu", cache_dir, path)
        engine.predictor = engine._predictors[("auto", precision)] = CompiledPredictor(config, parts, constants)
        return engine

    def _discard_compiled(self) -> None:
        """Build the network to export again the compiled parts the cache lacks or holds damaged (the exporting
        runtime replaces damaged entries, or keeps them in memory where the cache is read-only)."""
        (runtime, precision), = self._predictors  # the compiled engine holds exactly one predictor
        self._predictors.clear()
        self.set_runtime(runtime, precision)

    @property
    def info(self) -> EngineInfo:
        """Engine name, weights identifier and model configuration, with where and how it ran (device, runtime,
        precision, CUDA arithmetic, library versions)."""
        from infarctsam.runtime.determinism import library_versions

        sha = str(self.weights_info.get("sha256", ""))
        name = self.weights_info.get("name", "unknown")
        config = {**self.config.model_dump(), "fusion": self.fusion is not None, "device": str(self._device),
                  "runtime": self.predictor.runtime, "precision": self.predictor.precision, **self._exact,
                  "libraries": library_versions()}
        return EngineInfo(name="sam", weights=f"{name} (sha256 {sha})" if sha else name, config=config)

    @property
    def uses_adc(self) -> bool:
        """True when the weights carry a fusion head, whose ADC path runs when an ADC is given."""
        return self.fusion is not None

    def predict(self, case: Preprocessed, progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
        """Lesion probability on the canonical grid: the network's, fused with the DWI/ADC contrast when the
        weights carry a fusion head (:mod:`infarctsam.model.fusion`);
        ``progress`` hears of each batch of slices encoded.

        With a fusion head, the fused logit is prepared from the images before the network runs (it is linear in the
        network's logit), and the memory passes run only around the slices whose single-slice result, fused, reaches
        :data:`MEMORY_LEVEL` somewhere: elsewhere the memory could not make a lesion out of it."""
        say = progress or (lambda *_: None)
        contrast = "the DWI" + (" and ADC" if case.adc is not None else "") + " contrast"
        fused = select = None
        if self.fusion is not None:
            say(f"preparing the fusion with {contrast}", 0, 0)
            fused = self.fusion.linear_in_network(case.dwi, case.brain, case.spacing, case.adc, case.contrast_maps())
            select = fused.slices_reaching(MEMORY_LEVEL)
        try:
            prob = self.predictor.predict(case, progress, select)
        except FileNotFoundError:  # compiled parts in the cache are damaged: export them again
            if self._model is not None or self._weights_path is None:
                raise
            self._discard_compiled()
            prob = self.predictor.predict(case, progress, select)
        if fused is None:
            return prob
        say(f"fusing with {contrast}", 0, 0)
        return fused.fuse(prob)


def export_pending(weights: str | Path | None, cache_dir: str | Path | None, device: str = "cpu") -> bool:
    """True when loading the ``sam`` engine will first export its compiled parts into the cache (once per model and
    cache folder: about 200 MB and tens of seconds); False when they are there or nothing will be exported.

    Parameters
    ----------
    weights : str or Path, optional
        Weights file; the installed default model when None.
    cache_dir : str or Path, optional
        Export cache (default ``~/.cache/infarctsam/onnx``).
    device : str
        Only CPU runs use the compiled parts.
    """
    from infarctsam.engines.base import default_weights_path
    from infarctsam.errors import InfarctsamError
    from infarctsam.model.weights_format import load_weights_numpy, network_sha256
    from infarctsam.runtime.export_cache import resolve_cache
    from infarctsam.runtime.openvino_parts import GRAPHS_VERSION, cached_parts_present, openvino_available

    path = Path(weights) if weights is not None else default_weights_path()
    if device != "cpu" or path is None or path.suffix != ".safetensors" or not path.is_file():
        return False
    if not openvino_available():
        return False
    try:
        state, card = load_weights_numpy(path)
    except (InfarctsamError, OSError, ValueError, RecursionError):  # loading the engine reports it in one line
        return False
    key = f"v{GRAPHS_VERSION}-{network_sha256(state, card)[:24]}"
    return not cached_parts_present(resolve_cache(cache_dir or "default"), key)
