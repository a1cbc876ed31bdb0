"""The engine interface: a preprocessed case in, a lesion probability volume out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infarctsam.preprocess.pipeline import Preprocessed


def default_weights_path() -> Path | None:
    """The default model shipped inside the package, or None when not installed."""
    from importlib import resources

    try:
        path = Path(str(resources.files("infarctsam") / "weights" / "default.safetensors"))
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return path if path.is_file() else None


@dataclass
class EngineInfo:
    """What ran: recorded in every output JSON.

    Attributes
    ----------
    name : str
        Engine name (``threshold``, ``sam``).
    weights : str
        Weights identifier (file name and full sha256) or ``none`` for weight-free engines.
    config : dict
        The engine's parameters.
    """

    name: str
    weights: str = "none"
    config: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Base class of segmentation engines.

    Subclasses implement :meth:`predict`. ``threshold`` is the probability above which a voxel is lesion,
    ``min_lesion_ml`` the size under which connected components are removed by post-processing, and
    ``remove_mirror_pairs`` whether left-right mirror pairs of lesions without restricted diffusion (skull-base
    susceptibility artefacts, :func:`infarctsam.postprocess.remove_mirror_pairs`) are removed from the mask.
    """

    threshold: float = 0.5
    min_lesion_ml: float = 0.05
    remove_mirror_pairs: bool = True

    @property
    @abstractmethod
    def info(self) -> EngineInfo:
        """Name, weights and configuration of this engine."""

    @property
    def uses_adc(self) -> bool:
        """Whether the engine reads the ADC when one is given (recorded in the output JSON)."""
        return False

    @abstractmethod
    def predict(self, case: Preprocessed, progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
        """Lesion probability in [0, 1] on the canonical grid of ``case`` (float32, same shape as ``case.dwi``).

        ``progress(stage, done, total)``, when given, may be told of the engine's own steps (slices encoded).
        """
