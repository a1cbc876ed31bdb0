"""One result per scan on any hardware: exact float32 arithmetic on CUDA, and what ran, for the case JSON.

PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default on Ampere and later GPUs; on a small lesion
that moved the mask of one real case by 0.03 mL against the CPU. :func:`exact_cuda` turns TF32 off, asks for the
``highest`` float32 matmul precision and for deterministic kernels where PyTorch offers them. The engine calls it
when it is built for a CUDA device; nothing is changed at import time.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = ("torch", "openvino", "onnxruntime", "numpy", "SimpleITK")
# cuBLAS needs a fixed workspace to be deterministic; it reads this before its first handle is created
_CUBLAS_WORKSPACE = ":4096:8"


def exact_cuda() -> dict[str, bool]:
    """Make CUDA inference in this process exact float32 and deterministic; return the settings as recorded.

    TF32 is turned off for matrix products and cuDNN convolutions, the float32 matmul precision is ``highest``,
    cuDNN picks deterministic algorithms (no benchmarking) and :func:`torch.use_deterministic_algorithms` is on
    (an operation without a deterministic implementation warns instead of failing the case).

    Returns
    -------
    dict
        ``tf32`` (False) and ``deterministic`` (True), the values set.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the call itself may warn on some builds
        torch.use_deterministic_algorithms(True, warn_only=True)
    return {"tf32": False, "deterministic": True}


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on (None for one not installed), read once per process
    without importing them."""
    return dict(_versions(tuple(names)))


@lru_cache(maxsize=8)
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str | None], ...]:
    out = []
    for name in names:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, None))
    return tuple(out)
