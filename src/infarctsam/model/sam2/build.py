"""Construction of :class:`~.model.Sam2Model` from a configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Sam2Config

if TYPE_CHECKING:
    from .model import Sam2Model


def build_sam2(config: Sam2Config) -> Sam2Model:
    """Build a randomly initialised SAM 2.1 model in eval mode.

    Parameters
    ----------
    config : Sam2Config
        Architecture and inference settings (e.g. ``hiera_tiny(image_size=512)``).

    Returns
    -------
    Sam2Model
        The model (on CPU, float32, ``eval()``); load weights with ``load_state_dict(checkpoint["model"])``.
    """
    from .model import Sam2Model

    model = Sam2Model(config)
    model.eval()
    return model
