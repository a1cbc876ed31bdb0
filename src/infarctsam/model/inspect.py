"""Inspect a weights file: format, size, which known architecture it fits, and the image size it implies.

Known architectures live in :data:`ARCHITECTURES`, a registry ``name -> callable returning {key: shape}``; add one with
:func:`register_architecture`. :data:`IMAGE_SIZE_RULES` holds, per architecture, a callable that derives the image
size from the checkpoint's shapes (or explains why it cannot).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infarctsam.errors import WeightsError
from infarctsam.model.checkpoint import StateDictReport, compare_state_dict, read_torch_checkpoint, shape_of

if TYPE_CHECKING:
    from infarctsam.model.weights_format import ModelCard

__all__ = [
    "ARCHITECTURES",
    "IMAGE_SIZE_RULES",
    "InspectReport",
    "inspect_checkpoint",
    "load_shape_spec",
    "register_architecture",
]

ShapeTable = dict[str, tuple[int, ...]]
ImageSizeRule = Callable[[Mapping[str, tuple[int, ...]]], tuple["int | None", str]]


@functools.cache
def _spec(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    text = resources.files("infarctsam").joinpath("data", "spec", name).read_text(encoding="utf-8")
    return tuple((key, tuple(int(n) for n in shape)) for key, shape in json.loads(text).items())


def load_shape_spec(name: str) -> ShapeTable:
    """Return the ``{key: shape}`` table stored as ``infarctsam/data/spec/NAME`` (a fresh dict each call)."""
    return dict(_spec(name))


def _litemedsam() -> ShapeTable:
    return load_shape_spec("litemedsam_state_dict_shapes.json")


def _litemedsam_image_encoder() -> ShapeTable:
    prefix = "image_encoder."
    return {k[len(prefix) :]: v for k, v in _litemedsam().items() if k.startswith(prefix)}


def _sam21_hiera_tiny() -> ShapeTable:
    return load_shape_spec("sam2.1_hiera_tiny_state_dict_shapes.json")


def _litemedsam_size(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int | None, str]:
    return 256, "LiteMedSAM is trained at 256 x 256 (a 64 x 64 image embedding); the size is not stored in the weights"


def _sam2_size(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int | None, str]:
    # Hiera's only position embeddings (trunk.pos_embed, trunk.pos_embed_window) are a background table and a window
    # table, interpolated / tiled to whatever grid the image gives: no shape in a SAM2 checkpoint depends on it.
    return None, (
        "not encoded in the weights (Hiera's position embeddings are resized to any input); usual sizes: 1024 for "
        "SAM2.1, 512 for MedSAM2"
    )


ARCHITECTURES: dict[str, Callable[[], ShapeTable]] = {
    "litemedsam": _litemedsam,
    "litemedsam-image-encoder": _litemedsam_image_encoder,
    "sam2.1-hiera-tiny": _sam21_hiera_tiny,
}
IMAGE_SIZE_RULES: dict[str, ImageSizeRule] = {
    "litemedsam": _litemedsam_size,
    "litemedsam-image-encoder": _litemedsam_size,
    "sam2.1-hiera-tiny": _sam2_size,
}


def register_architecture(
    name: str, shapes: Callable[[], ShapeTable], image_size: ImageSizeRule | None = None
) -> None:
    """Add (or replace) a known architecture.

    Parameters
    ----------
    name : str
        Architecture name reported by :func:`inspect_checkpoint`.
    shapes : callable
        Returns the expected ``{key: shape}`` table.
    image_size : callable, optional
        Maps a checkpoint's ``{key: shape}`` to ``(image size or None, explanation)``.
    """
    ARCHITECTURES[name] = shapes
    if image_size is not None:
        IMAGE_SIZE_RULES[name] = image_size
    else:
        IMAGE_SIZE_RULES.pop(name, None)


@dataclass
class InspectReport:
    """What :func:`inspect_checkpoint` found.

    Attributes
    ----------
    path : Path
        The file inspected.
    format : str
        ``"pytorch"`` (foreign ``.pt``/``.pth``), ``"infarctsam-safetensors"`` (our format, card and checksum
        verified) or ``"safetensors"`` (a foreign ``.safetensors`` without a model card).
    n_tensors, n_values : int
        Number of tensors and of values in them.
    dtypes : dict of str to int
        Tensor count per dtype.
    architecture : str or None
        The registered architecture whose key/shape table the tensors match exactly; for our format the
        architecture declared by the card. None when nothing fits.
    best_match : str or None
        The registered architecture the tensors were compared with (the closest one).
    report : StateDictReport or None
        Comparison with ``best_match``.
    image_size : int or None
        Image size the weights imply (card, checkpoint shapes, caller, or the architecture's training size).
    image_size_note : str
        Where ``image_size`` comes from, or why it is unknown.
    card : ModelCard or None
        Our format's model card.
    """

    path: Path
    format: str
    n_tensors: int
    n_values: int
    dtypes: dict[str, int] = field(default_factory=dict)
    architecture: str | None = None
    best_match: str | None = None
    report: StateDictReport | None = None
    image_size: int | None = None
    image_size_note: str = ""
    card: ModelCard | None = None

    @property
    def fits(self) -> bool:
        """True when the tensors match a registered architecture exactly."""
        return self.report is not None and self.report.ok

    def summary(self) -> str:
        """Return a short multi-line human-readable description."""
        dtypes = ", ".join(f"{n} {d}" for d, n in sorted(self.dtypes.items()))
        lines = [
            f"file: {self.path}",
            f"format: {self.format}",
            f"tensors: {self.n_tensors} ({self.n_values:,} values; {dtypes})",
            f"architecture: {self.architecture or 'unknown'}"
            + (f" (closest known: {self.best_match})" if self.best_match and not self.fits else ""),
        ]
        if self.report is not None:
            lines.append(f"check against {self.best_match}: {self.report.summary()}")
        size = str(self.image_size) if self.image_size else "unknown"
        lines.append(f"image size: {size} ({self.image_size_note})" if self.image_size_note else f"image size: {size}")
        if self.card is not None:
            lines.append(f"card: {self.card.name}, created {self.card.created}, licence {self.card.licence}")
        return "\n".join(lines)


def _promptfree_shapes(config: Mapping[str, Any]) -> ShapeTable:
    from infarctsam.model.build import expected_shapes

    return expected_shapes(config)


#: Architectures whose shapes depend on the configuration stored in a model card.
CARD_ARCHITECTURES: dict[str, Callable[[Mapping[str, Any]], ShapeTable]] = {
    "infarctsam-promptfree": _promptfree_shapes,
}


def _best_match(
    shapes: Mapping[str, tuple[int, ...]], preferred: str | None
) -> tuple[str | None, StateDictReport | None]:
    if preferred in ARCHITECTURES:
        return preferred, compare_state_dict(ARCHITECTURES[preferred](), shapes)
    best: tuple[str | None, StateDictReport | None, float] = (None, None, 0.0)
    for name, table in ARCHITECTURES.items():
        report = compare_state_dict(table(), shapes)
        if report.score() > best[2]:
            best = (name, report, report.score())
    return best[0], best[1]


def _read_foreign_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    from infarctsam.model.weights_header import check_safetensors_header

    check_safetensors_header(path)
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError
        raise WeightsError(f"weights file {path} is corrupt or truncated ({' '.join(str(exc).split())[:160]})") from exc


def inspect_checkpoint(path: str | Path, image_size: int | None = None) -> InspectReport:
    """Describe a weights file and check it against the known architectures.

    Parameters
    ----------
    path : str or Path
        A foreign PyTorch checkpoint (``.pt``/``.pth``/``.bin``, read safely), our ``.safetensors`` with its card, or
        a foreign ``.safetensors`` file.
    image_size : int, optional
        The image size the caller knows the weights were trained at (for architectures whose weights do not encode
        it); a card's ``image_size`` takes precedence.

    Returns
    -------
    InspectReport
        Format, counts, matched architecture, the comparison report and the implied image size.

    Raises
    ------
    WeightsError
        The file cannot be read (see :func:`read_torch_checkpoint` and
        :func:`~infarctsam.model.weights_format.load_weights`).
    """
    path = Path(path)
    card = None
    if path.suffix == ".safetensors":
        from infarctsam.model.weights_format import has_card, load_weights

        if has_card(path):
            state, card = load_weights(path, verify=True)
            fmt = "infarctsam-safetensors"
        else:
            state, fmt = _read_foreign_safetensors(path), "safetensors"
    else:
        state = read_torch_checkpoint(path)
        fmt = "pytorch"
    shapes = {k: shape_of(v) for k, v in state.items()}
    dtypes: dict[str, int] = {}
    for tensor in state.values():
        name = str(tensor.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + 1
    if card is not None and card.architecture in CARD_ARCHITECTURES:
        best = card.architecture
        report = compare_state_dict(CARD_ARCHITECTURES[best](card.config), shapes)
    else:
        best, report = _best_match(shapes, card.architecture if card is not None else None)
    out = InspectReport(
        path=path,
        format=fmt,
        n_tensors=len(state),
        n_values=sum(int(t.numel()) for t in state.values()),
        dtypes=dtypes,
        best_match=best,
        report=report,
        card=card,
    )
    if card is not None:
        out.architecture = card.architecture
        out.image_size, out.image_size_note = card.image_size, "from the model card"
        return out
    out.architecture = best if report is not None and report.ok else None
    rule = IMAGE_SIZE_RULES.get(best) if best is not None and report is not None and report.ok else None
    if image_size is not None:
        if image_size <= 0:
            raise WeightsError(f"image size must be positive, got {image_size}")
        out.image_size, out.image_size_note = int(image_size), "given by the caller"
    elif rule is not None:
        out.image_size, out.image_size_note = rule(shapes)
    else:
        out.image_size_note = "unknown: the weights fit no known architecture"
    return out
