"""infarctsam's own weight format: a ``.safetensors`` file with a model card.

Layout
------
``NAME.safetensors``
    The tensors (safetensors: no code, memory-mappable). Its header metadata holds the model card as JSON under the
    key ``infarctsam.model_card``, so the file is self-describing when copied alone.
``NAME.json``
    The same card, indented, for people and tools that do not parse safetensors headers.

:func:`load_weights` uses the embedded card; when ``NAME.json`` is present it must be identical to it (an edited or
mixed-up sidecar is refused). A file with neither card is not an infarctsam weights file and is refused.

Checksum
--------
``tensors_sha256`` is the SHA-256 over the tensors in sorted key order, each contributing its key, dtype, shape and
raw little-endian bytes (see :func:`state_dict_sha256`). It does not depend on the file layout, the header or the
card, so re-saving the same tensors gives the same value.

Storage precision
-----------------
``save_weights(..., half=True)`` stores floating tensors as float16 (half the size), except tensors whose values
exceed the float16 range, which keep their dtype. ``load_weights(..., to_float32=True)`` returns float32 tensors.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infarctsam._version import __version__
from infarctsam.errors import WeightsError
from infarctsam.io.atomic import atomic_path, write_json
from infarctsam.model.weights_header import check_safetensors_header

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "CARD_METADATA_KEY",
    "as_float32",
    "FORMAT_VERSION",
    "ModelCard",
    "card_path_for",
    "has_card",
    "load_weights",
    "network_sha256",
    "read_card",
    "save_weights",
    "state_dict_sha256",
]

FORMAT_VERSION = 1
CARD_METADATA_KEY = "infarctsam.model_card"
FUSION_PREFIX = "fusion."  # tensors of the physics fusion head (infarctsam.model.fusion), not of the network
_FP16_MAX = 65504.0


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class ModelCard(BaseModel):
    """Description of a weights file: architecture, provenance, training and metrics.

    ``tensors_sha256``, ``n_tensors`` and ``n_values`` are filled by :func:`save_weights`.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str = Field(min_length=1)
    architecture: str = Field(min_length=1, description='e.g. "infarctsam-litemedsam", "sam2.1-hiera-tiny"')
    config: dict[str, Any] = Field(default_factory=dict, description="full architecture configuration")
    image_size: int = Field(gt=0)
    created: str = Field(default_factory=_now_iso, description="ISO 8601 date or date-time")
    software_version: str = __version__
    training: dict[str, Any] = Field(default_factory=dict, description="data summary, stages, steps, time")
    metrics: dict[str, Any] = Field(default_factory=dict)
    tensors_sha256: str = ""
    n_tensors: int = Field(default=0, ge=0)
    n_values: int = Field(default=0, ge=0)
    base_weights: dict[str, Any] = Field(default_factory=dict, description="starting weights and their sha256")
    licence: str = Field(min_length=1)
    notes: str = ""

    @field_validator("created", mode="before")
    @classmethod
    def _iso_created(cls, value: Any) -> str:
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        text = str(value)
        try:
            datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"created must be an ISO 8601 date or date-time, got {text!r}") from exc
        return text


def card_path_for(path: str | Path) -> Path:
    """Return the sidecar card path ``NAME.json`` of ``NAME.safetensors``."""
    return Path(path).with_suffix(".json")


def _raw_bytes(tensor: torch.Tensor | np.ndarray) -> Any:
    import numpy as np

    if isinstance(tensor, np.ndarray):
        flat = np.ascontiguousarray(tensor).reshape(-1)
        return flat.view(np.uint8) if flat.dtype != np.bool_ else flat.astype(np.uint8)
    import torch

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy()


def state_dict_sha256(state: Mapping[str, torch.Tensor | np.ndarray]) -> str:
    """Hash tensors (PyTorch or NumPy: the same value for the same data) independently of any file layout.

    For each key in sorted order the hash takes ``key``, the dtype name, the shape and the raw bytes (each field
    length-prefixed, so no two different state dicts share a byte stream).
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key]
        shape = tuple(int(d) for d in tensor.shape)
        fields = [key.encode(), str(tensor.dtype).removeprefix("torch.").encode(), repr(shape).encode()]
        for item in fields:
            digest.update(struct.pack("<Q", len(item)) + item)
        data = _raw_bytes(tensor)
        digest.update(struct.pack("<Q", data.nbytes))
        digest.update(data)
    return digest.hexdigest()


def _prepare(state: Mapping[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"cannot save weights: entry {key!r} is not a named tensor")
        tensor = value.detach().to("cpu")
        if half and tensor.is_floating_point() and tensor.dtype != torch.float16:
            if tensor.numel() == 0 or float(tensor.abs().max()) <= _FP16_MAX:
                tensor = tensor.to(torch.float16)
        out[key] = tensor.contiguous().clone()  # safetensors refuses shared or strided storage
    return out


def save_weights(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], card: ModelCard, *, half: bool = False
) -> Path:
    """Write ``NAME.safetensors`` (card embedded) and ``NAME.json`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination; must end in ``.safetensors``.
    state_dict : mapping of str to torch.Tensor
        Tensors to store.
    card : ModelCard
        The card; its ``tensors_sha256``, ``n_tensors`` and ``n_values`` are filled in (the object passed is not
        modified).
    half : bool
        Store floating tensors as float16 (see the module docstring).

    Returns
    -------
    Path
        The ``.safetensors`` path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights file name {path.name} must end in .safetensors")
    tensors = _prepare(state_dict, half)
    if not tensors:
        raise WeightsError(f"cannot save weights {path}: the state dict is empty")
    filled = card.model_copy(
        update={
            "tensors_sha256": state_dict_sha256(tensors),
            "n_tensors": len(tensors),
            "n_values": sum(t.numel() for t in tensors.values()),
        }
    )
    filled = ModelCard.model_validate(filled.model_dump())
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CARD_METADATA_KEY: filled.model_dump_json(), "format": "pt"})
    write_json(card_path_for(path), filled.model_dump(mode="json"))
    return path


def _parse_card(text: str, source: str) -> ModelCard:
    try:
        data = json.loads(text)
    except RecursionError:
        raise WeightsError(f"model card {source} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise WeightsError(f"model card {source} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise WeightsError(
            f"model card {source} has format version {version}, newer than this infarctsam "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade infarctsam"
        )
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "card"
        raise WeightsError(f"model card {source} is invalid: {where}: {err['msg']}") from exc


def read_card(path: str | Path) -> ModelCard:
    """Read and cross-check the model card of ``NAME.safetensors`` without loading its tensors.

    Raises
    ------
    WeightsError
        Missing or corrupt file, no card, an invalid card, or a sidecar that differs from the embedded card.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights file {path} is not a .safetensors file")
    check_safetensors_header(path)  # a huge or lying header: one line, before the library maps anything
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError or ValueError
        raise WeightsError(f"weights file {path} is corrupt or truncated ({_first_line(exc)})") from exc
    sidecar = card_path_for(path)
    embedded = metadata.get(CARD_METADATA_KEY)
    try:
        side_text = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"model card {sidecar} cannot be read ({_first_line(exc)})") from exc
    if embedded is None and side_text is None:
        raise WeightsError(
            f"weights file {path} has no model card ({sidecar.name} is missing and none is embedded); "
            "it is not an infarctsam weights file"
        )
    card = _parse_card(embedded, f"embedded in {path}") if embedded is not None else None
    side = _parse_card(side_text, str(sidecar)) if side_text is not None else None
    if card is not None and side is not None and card.model_dump() != side.model_dump():
        raise WeightsError(f"model card {sidecar} differs from the card embedded in {path}; it was edited or mixed up")
    result = card if card is not None else side
    assert result is not None
    return result


def has_card(path: str | Path) -> bool:
    """Return True when ``NAME.safetensors`` embeds a model card or has a ``NAME.json`` beside it.

    An unreadable file returns True so that :func:`load_weights` reports why it cannot be read.
    """
    from safetensors import safe_open

    path = Path(path)
    if card_path_for(path).is_file():
        return True
    try:
        check_safetensors_header(path)
        with safe_open(str(path), framework="numpy") as handle:
            return CARD_METADATA_KEY in (handle.metadata() or {})
    except Exception:  # corrupt or missing: let load_weights produce the error
        return True


def network_sha256(state: Mapping[str, Any], card: ModelCard) -> str:
    """SHA-256 of the network's tensors as stored, without those of a physics fusion head (``fusion.*``).

    It names the network's compiled parts in the export cache, so that weights that differ only in their fusion head
    (``infarctsam fit-fusion``) share them. Equal to ``card.tensors_sha256`` when the file holds no fusion head.

    Parameters
    ----------
    state : mapping of str to tensor or array
        The file's tensors, as stored (before any conversion to float32).
    card : ModelCard
        The file's card.
    """
    network = {k: v for k, v in state.items() if not k.startswith(FUSION_PREFIX)}
    return card.tensors_sha256 if len(network) == len(state) else state_dict_sha256(network)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def load_weights(
    path: str | Path, verify: bool = True, *, to_float32: bool = False
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Load ``NAME.safetensors`` and its model card.

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` file.
    verify : bool
        Check the tensor count and ``tensors_sha256`` against the card (about 0.1 s per 10 M values).
    to_float32 : bool
        Return float16/bfloat16 tensors as float32.

    Returns
    -------
    (dict of str to torch.Tensor, ModelCard)
        CPU tensors and the card.

    Raises
    ------
    WeightsError
        Missing, corrupt or card-less file, an invalid or mismatching card, or tensors failing the checksum.
    """
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ValueError
        raise WeightsError(f"weights file {path} is corrupt or truncated ({_first_line(exc)})") from exc
    if verify:
        if len(state) != card.n_tensors:
            raise WeightsError(f"weights file {path} holds {len(state)} tensors, its card says {card.n_tensors}")
        if state_dict_sha256(state) != card.tensors_sha256:
            raise WeightsError(f"tensors of {path} fail their checksum (file altered or corrupt); obtain it again")
    return (as_float32(state) if to_float32 else state), card


def as_float32(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its float16 / bfloat16 tensors as float32 (the others as they are)."""
    import torch

    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}


def load_weights_numpy(path: str | Path) -> tuple[dict[str, Any], ModelCard]:
    """:func:`load_weights` without PyTorch: NumPy arrays and the card, tensor count and checksum verified.

    Raises
    ------
    WeightsError
        As :func:`load_weights` (a dtype NumPy cannot hold, such as bfloat16, is reported as unreadable).
    """
    from safetensors.numpy import load_file

    path = Path(path)
    card = read_card(path)
    try:
        state = load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ValueError, TypeError (dtype)
        raise WeightsError(f"weights file {path} cannot be read without PyTorch ({_first_line(exc)})") from exc
    if len(state) != card.n_tensors:
        raise WeightsError(f"weights file {path} holds {len(state)} tensors, its card says {card.n_tensors}")
    if state_dict_sha256(state) != card.tensors_sha256:
        raise WeightsError(f"tensors of {path} fail their checksum (file altered or corrupt); obtain it again")
    return state, card
