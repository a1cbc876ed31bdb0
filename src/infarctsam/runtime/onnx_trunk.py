"""The frozen TinyViT trunk run by ONNX Runtime: about twice as fast as eager PyTorch on a laptop CPU.

The trunk is exported once (a few seconds) and the ONNX file is kept in a cache folder, named after the sha256 of
the trunk's weights, the input size and the output (with or without the neck), so later processes start at once.
Results equal PyTorch's to float32 rounding (checked in the tests). When ``onnxruntime`` is not installed, callers
fall back to PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from infarctsam.runtime.export_cache import cached_export, export_onnx, resolve_cache, weights_key


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` and the ONNX exporter's dependency ``onnx`` can be imported."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None and find_spec("onnx") is not None


class TrunkFeatures(torch.nn.Module):
    """A trunk's ``forward_features`` (features before the neck) as a module forward, for export."""

    def __init__(self, trunk: torch.nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features of ``x``."""
        return self.trunk.forward_features(x)


class OnnxTrunk:
    """Run a TinyViT trunk with ONNX Runtime.

    Parameters
    ----------
    trunk : TinyViT
        The (frozen) encoder.
    image_size : int
        Square input size.
    pre_neck : bool
        Output the trunk features before the neck (training caches) instead of the embedding.
    threads : int
        Intra-op threads.
    cache_dir : Path, optional
        Where exported models are kept (``"default"``: ``~/.cache/infarctsam/onnx``); ``None`` keeps them in memory.
    """

    def __init__(self, trunk, image_size: int, pre_neck: bool = False, threads: int = 2,
                 cache_dir: Path | str | None = "default") -> None:
        import onnxruntime as ort

        cache = resolve_cache(cache_dir)
        key = weights_key(trunk, image_size, pre_neck)
        model_bytes, _ = cached_export(cache, "tinyvit-pre-neck" if pre_neck else "tinyvit", key,
                                       lambda: export_trunk(trunk, image_size, pre_neck))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray, batch: int = 8) -> np.ndarray:
        """Features of ``(n, 3, S, S)`` float images, float32."""
        out = [self.session.run(None, {"images": np.ascontiguousarray(images[i: i + batch], dtype=np.float32)})[0]
               for i in range(0, len(images), batch)]
        return np.concatenate(out)


def export_trunk(trunk, image_size: int, pre_neck: bool) -> bytes:
    """Export the trunk (or its pre-neck features) to ONNX bytes with a dynamic batch axis."""
    module = TrunkFeatures(trunk) if pre_neck else trunk
    return export_onnx(module, (torch.zeros(2, 3, image_size, image_size),), ["images"], ["features"])
