"""The installed PyTorch is the CPU build, without CUDA packages (what ``make`` installs: tools/install_torch.py)."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch


def test_torch_is_the_cpu_build_without_nvidia_packages():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: this environment deliberately has a CUDA build of PyTorch")
    names = sorted({(d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()})
    nvidia = [n for n in names if n.startswith("nvidia-")]
    assert torch.version.cuda is None, f"torch {torch.__version__} is built for CUDA {torch.version.cuda}"
    assert nvidia == [], f"CUDA packages installed beside a CPU-only machine's torch: {nvidia}"
    assert "triton" not in names


def _installer():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "installer.py"
    spec = importlib.util.spec_from_file_location("installer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uv_is_given_the_sources_pip_is_configured_with():
    """tools/installer.py: uv installs from pip's index, extra indexes, find-links and constraints (env over
    install over global, as in pip); an index the caller names is not replaced."""
    installer = _installer()
    text = "\n".join([
        "global.index-url='https://mirror.example/simple'",
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
        "global.find-links='/opt/global-wheels'",
        "install.find-links='/opt/install-wheels'",
        ":env:.find-links='/opt/wheels'",
        "global.constraint='/etc/pip/constraints.txt'",
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        ":env:.default-timeout='180'",
        "not a setting",
    ])
    settings = installer.parse_pip_config(text)
    assert settings["find-links"] == "/opt/wheels" and settings["index-url"] == "https://mirror.example/simple"
    options, env = installer.uv_sources(settings, ["-e", ".[dicom]"])
    pairs = list(zip(options[::2], options[1::2], strict=True))
    assert ("--index-strategy", "unsafe-best-match") in pairs
    assert ("--index-url", "https://mirror.example/simple") in pairs
    assert [v for k, v in pairs if k == "--extra-index-url"] == ["file:///opt/a/simple", "file:///opt/b/simple"]
    assert [v for k, v in pairs if k == "--find-links"] == ["/opt/wheels"]
    assert ("--constraint", "/etc/pip/constraints.txt") in pairs
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}
    options, _ = installer.uv_sources(settings, ["--index-url", "https://download.pytorch.org/whl/cpu", "torch"])
    assert "https://mirror.example/simple" not in options  # the caller's index wins
    assert installer.parse_pip_config("") == {}
