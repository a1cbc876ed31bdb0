"""ONNX exports of model parts, kept in a cache folder so that only the first process pays for the export.

A file is named after what determines its content: the part's name, the sha256 of the exported module's weights,
the input shapes it was traced with and the torch version. A corrupt or foreign file therefore cannot be picked up
for other weights, and a read-only or missing cache folder only costs the export again. Each file carries the sha256
of its content and is checked before use (:mod:`infarctsam.runtime.cache_entries`).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEFAULT_CACHE = Path.home() / ".cache" / "infarctsam" / "onnx"


def weights_key(module: torch.nn.Module, *parts: object) -> str:
    """Short sha256 of a module's state dict together with ``parts`` (sizes, flags) and the torch version."""
    import torch

    digest = hashlib.sha256("-".join(str(p) for p in (*parts, torch.__version__)).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def resolve_cache(cache_dir: Path | str | None) -> Path | None:
    """``"default"`` -> ``~/.cache/infarctsam/onnx``; None stays None (exports kept in memory only)."""
    if cache_dir is None:
        return None
    return DEFAULT_CACHE if str(cache_dir) == "default" else Path(cache_dir)


def export_onnx(module: torch.nn.Module, example: Sequence[torch.Tensor], input_names: Sequence[str],
                output_names: Sequence[str], dynamic_batch: bool = True) -> bytes:
    """Trace ``module`` (in eval mode) on ``example`` and return the ONNX bytes (opset 17, first axis dynamic).

    The exporter writes into a private temporary folder (removed afterwards), never into the working directory:
    ONNX tools put external-data and scratch files beside their output or in the current folder.
    """
    import tempfile

    import torch

    modes = {m: m.training for m in module.modules()}
    module.eval()
    axes = {name: {0: "batch"} for name in (*input_names, *output_names)} if dynamic_batch else None
    try:
        with tempfile.TemporaryDirectory(prefix="infarctsam-export-") as tmp, warnings.catch_warnings(), \
                torch.no_grad():
            warnings.simplefilter("ignore")
            target = Path(tmp) / "model.onnx"
            torch.onnx.export(module, tuple(example), str(target), input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=axes, opset_version=17, dynamo=False)
            return target.read_bytes()
    finally:
        # each submodule gets its own mode back (a wrapper built for the export is in training mode, and
        # torch.onnx.export would restore every submodule from the wrapper's flag)
        for m, training in modes.items():
            m.training = training


def cached_export(cache_dir: Path | None, name: str, key: str, export) -> tuple[bytes, Path | None]:
    """Bytes of ``name-key.onnx`` from the cache, verified against its sha256 sidecar
    (:mod:`infarctsam.runtime.cache_entries`); exported (``export()``) and stored on a miss or a mismatch.

    Returns the bytes and the cached file's path (None when it could not be stored: no or a read-only cache).
    """
    from infarctsam.runtime.cache_entries import cached_bytes

    path = None if cache_dir is None else cache_dir / f"{name}-{key}.onnx"
    data, stored = cached_bytes(path, export)
    return data, path if stored else None
