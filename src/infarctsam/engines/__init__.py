"""Segmentation engines and their registry.

``threshold`` is weight-free (always available). ``sam`` is the SAM2-compatible prompt-free model; it needs
weights: a file passed by the user, or the default model installed with the package. ``auto`` picks ``sam`` when
default weights are installed, else ``threshold``.
"""

from __future__ import annotations

from pathlib import Path

from infarctsam.engines.base import Engine, EngineInfo, default_weights_path
from infarctsam.errors import ConfigError

ENGINES = ("auto", "threshold", "sam")


def load_engine(name: str = "auto", weights: str | Path | None = None, device: str = "cpu",
                cache_dir: str | Path | None = None, precision: str = "auto") -> Engine:
    """Build an engine by name.

    Parameters
    ----------
    name : str
        ``auto``, ``threshold`` or ``sam``.
    weights : str or Path, optional
        Weights file for ``sam`` (our ``.safetensors`` format, or a SAM 2.1 / MedSAM2 ``.pt``).
    device : str
        ``cpu`` or ``cuda``.
    cache_dir : str or Path, optional
        Folder for the exported model parts of ``sam`` on CPU (default ``~/.cache/infarctsam/onnx``).
    precision : str
        Arithmetic of ``sam`` on CPU: ``auto``, ``fp32``, ``mixed`` or ``bf16`` (see :func:`infarctsam.api.segment`).
    """
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "auto":
        name = "sam" if (weights is not None or default_weights_path() is not None) else "threshold"
    if name == "threshold":
        if weights is not None:
            raise ConfigError("the threshold engine takes no weights; use --engine sam with --weights")
        from infarctsam.engines.threshold import ThresholdEngine

        return ThresholdEngine()
    from infarctsam.engines.sam import SamEngine

    return SamEngine.from_weights(weights, device=device, cache_dir=cache_dir, precision=precision)


__all__ = ["ENGINES", "Engine", "EngineInfo", "default_weights_path", "load_engine"]
