"""Arithmetic of the training steps: bfloat16 autocast where the hardware runs bfloat16 natively."""

from __future__ import annotations

from pathlib import Path

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises native bfloat16 arithmetic (AMX or AVX-512 BF16) in ``cpuinfo``'s flags.

    Parameters
    ----------
    cpuinfo : str or Path
        The kernel's CPU description (Linux); an unreadable file means False.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(set(line.split(":", 1)[-1].split()) & set(BF16_CPU_FLAGS))
    return False


def resolve_precision(precision: str, device: str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` (``auto``, ``fp32``, ``bf16``) means on ``device``.

    ``auto`` is ``bf16`` on a CPU with native bfloat16 or a CUDA GPU that supports it, else ``fp32``.
    """
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"
