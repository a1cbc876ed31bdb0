"""Own implementation of the SAM 2.1 network (Hiera image encoder, prompt encoder, mask decoder, memory).

Parameter names and shapes follow the published SAM 2.1 checkpoints (``checkpoint["model"]``), which therefore load
with ``strict=True``. Importing this package does not import torch; the torch modules are loaded on first use of
:func:`build_sam2`, :class:`Sam2Model` or the state containers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .build import build_sam2
from .config import PRESETS, HieraConfig, Sam2Config, hiera_base_plus, hiera_small, hiera_tiny

if TYPE_CHECKING:
    from .model import NO_OBJ_SCORE, Sam2Model
    from .state import FrameFeatures, HeadOutput, MemoryBank, MemoryEntry, StepOutput

_LAZY = {
    "Sam2Model": ".model",
    "NO_OBJ_SCORE": ".model",
    "FrameFeatures": ".state",
    "HeadOutput": ".state",
    "MemoryBank": ".state",
    "MemoryEntry": ".state",
    "StepOutput": ".state",
}

__all__ = [
    "PRESETS",
    "NO_OBJ_SCORE",
    "FrameFeatures",
    "HeadOutput",
    "HieraConfig",
    "MemoryBank",
    "MemoryEntry",
    "Sam2Config",
    "Sam2Model",
    "StepOutput",
    "build_sam2",
    "hiera_base_plus",
    "hiera_small",
    "hiera_tiny",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
