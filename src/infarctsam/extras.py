"""Optional dependencies: a clear one-line error naming the pip extra when one is missing.

``pip install 'infarctsam[train]'`` adds TensorBoard logging for ``infarctsam train``; ``pip install
'infarctsam[dask]'`` adds Dask for ``segment --scheduler``. The core install (segment, evaluate, synth) needs neither.
"""

from __future__ import annotations

import importlib.util

from infarctsam.errors import ConfigError

EXTRAS = {"train": ("tensorboard",), "dask": ("dask", "distributed")}


def require_extra(extra: str, purpose: str) -> None:
    """Raise :class:`ConfigError` unless every module of ``extra`` (a key of :data:`EXTRAS`) is importable.

    Parameters
    ----------
    extra : str
        ``train`` or ``dask``.
    purpose : str
        What needs it, for the message (``infarctsam train``).
    """
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{purpose} needs the optional '{extra}' dependencies ({', '.join(missing)} not "
                          f"installed): pip install 'infarctsam[{extra}]'")
