"""Safe reading of foreign PyTorch checkpoints and comparison of state dicts against an expected key/shape table.

Foreign ``.pt`` / ``.pth`` files are read only with ``torch.load(..., weights_only=True)``: PyTorch's restricted
unpickler then refuses anything but tensors and plain containers, so a malicious checkpoint cannot run code. Every
failure becomes a one-line :class:`~infarctsam.errors.WeightsError` naming the file and the reason.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infarctsam.errors import WeightsError

if TYPE_CHECKING:
    import torch

__all__ = ["StateDictReport", "compare_state_dict", "read_torch_checkpoint", "shape_of"]

_WRAPPER_KEYS = ("model", "state_dict")


def read_torch_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a PyTorch checkpoint as a flat ``{name: tensor}`` state dict, without executing code from the file.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` / ``.pth`` / ``.bin`` file written by ``torch.save``.

    Returns
    -------
    dict of str to torch.Tensor
        The state dict on the CPU. ``{"model": sd}`` and ``{"state_dict": sd}`` wrappers are unwrapped and a
        ``module.`` prefix present on every key (DistributedDataParallel) is removed.

    Raises
    ------
    WeightsError
        The file is missing, empty, truncated or corrupt, contains pickled Python objects other than tensors, or does
        not hold a state dict of tensors.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"weights path {path} is not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise WeightsError(
                f"refused to load {path}: it contains pickled Python objects other than tensors, which could run "
                "code; only plain state dicts are accepted"
            ) from exc
        raise WeightsError(f"cannot read weights file {path}: corrupt pickle data ({first})") from exc
    except Exception as exc:  # a damaged pickle can raise nearly anything (KeyError, IndexError, struct.error, ...)
        raise WeightsError(f"cannot read weights file {path}: {_describe_load_failure(exc)}") from exc
    return _as_state_dict(obj, path)


def _describe_load_failure(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "central directory" in text or "zip archive" in text or isinstance(exc, (EOFError, zipfile.BadZipFile)):
        return "the file is truncated or corrupt (incomplete zip archive); download or copy it again"
    if isinstance(exc, OSError):
        return exc.strerror or text or type(exc).__name__
    first = text.split(". ")[0][:120]
    return f"not a PyTorch checkpoint or corrupt ({type(exc).__name__}: {first})"


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"weights file {path} holds a {type(obj).__name__}, not a state dict")
    if not obj:
        raise WeightsError(f"weights file {path} holds an empty state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise WeightsError(f"weights file {path} has a non-string key {key!r}; expected a state dict")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(
                f"weights file {path}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a state dict"
            )
        state[key] = value
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def shape_of(value: Any) -> tuple[int, ...]:
    """Return the shape of a tensor/array, or of a shape given as ``torch.Size``/tuple/list, as a tuple of ints."""
    shape = getattr(value, "shape", value)
    if not isinstance(shape, Sequence):
        raise TypeError(f"not a tensor or shape: {type(value).__name__}")
    return tuple(int(n) for n in shape)


@dataclass
class StateDictReport:
    """How a state dict compares with an expected ``{key: shape}`` table.

    Attributes
    ----------
    matched : int
        Keys present in both with equal shapes.
    missing : list of str
        Expected keys absent from the state dict.
    unexpected : list of str
        Keys of the state dict that are not expected.
    mismatched : list of (str, tuple, tuple)
        ``(key, expected shape, actual shape)`` for keys present in both with different shapes.
    """

    matched: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every expected key is present with its shape and nothing else is."""
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def n_expected(self) -> int:
        """Number of expected keys."""
        return self.matched + len(self.missing) + len(self.mismatched)

    def score(self) -> float:
        """Fraction of the union of both key sets that matches (1.0 exactly when :attr:`ok`)."""
        union = self.n_expected + len(self.unexpected)
        return self.matched / union if union else 1.0

    def summary(self, limit: int = 3) -> str:
        """Return one line describing the comparison, listing at most ``limit`` keys of each kind of problem."""
        if self.ok:
            return f"state dict matches: all {self.matched} tensors present with the expected shapes"

        def listing(items: list[str], n: int) -> str:
            shown = ", ".join(items[:limit])
            return shown + (f", ... ({n - limit} more)" if n > limit else "")

        parts = [f"{self.matched} of {self.n_expected} expected tensors match"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({listing(self.missing, len(self.missing))})")
        if self.mismatched:
            shapes = [f"{k}: expected {list(e)}, got {list(g)}" for k, e, g in self.mismatched]
            parts.append(f"{len(shapes)} mis-shaped ({listing(shapes, len(shapes))})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({listing(self.unexpected, len(self.unexpected))})")
        return "state dict does not match: " + "; ".join(parts)


def compare_state_dict(expected: Mapping[str, Any], got: Mapping[str, Any]) -> StateDictReport:
    """Compare a state dict (or a ``{key: shape}`` table) with the expected ``{key: shape}`` table.

    Parameters
    ----------
    expected : mapping of str to torch.Size or tuple
        Expected keys and shapes (tensors are accepted too: their shapes are used).
    got : mapping of str to torch.Tensor
        The state dict to check (shapes are accepted too).

    Returns
    -------
    StateDictReport
        Matched count and the missing, unexpected and mis-shaped keys (each list sorted by key).
    """
    report = StateDictReport()
    for key in sorted(expected):
        if key not in got:
            report.missing.append(key)
            continue
        want, have = shape_of(expected[key]), shape_of(got[key])
        if want == have:
            report.matched += 1
        else:
            report.mismatched.append((key, want, have))
    report.unexpected = sorted(k for k in got if k not in expected)
    return report
