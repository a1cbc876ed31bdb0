"""Install PyTorch into this interpreter's environment: the CPU build, without CUDA packages (used by the Makefile).

1. PyTorch's CPU wheel index (``https://download.pytorch.org/whl/cpu``) where it can be reached;
2. otherwise the configured index (a local mirror or wheel folder, as in CI), after a dry run shows that it would
   not bring the CUDA build (the plain PyPI wheel on Linux pulls about 20 ``nvidia-*`` packages, several GB);
3. then the check: ``torch.version.cuda`` is None and no ``nvidia-*`` package is installed.

GPU: ``--index https://download.pytorch.org/whl/cu128`` (any of PyTorch's CUDA indexes) installs that build and
skips the CPU checks. Usage: ``python tools/install_torch.py [--version 2.13.0] [--index URL]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request

from installer import install, planned_packages  # tools/installer.py: uv where installed, else pip

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def reachable(index: str, timeout: float = 15.0) -> bool:
    """True when ``index``'s torch page answers within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(f"{index.rstrip('/')}/torch/", timeout=timeout) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


def planned_cuda_packages(requirement: str) -> list[str] | None:
    """The ``nvidia-*`` / ``triton`` packages the configured sources would install with ``requirement`` (a dry
    run); None when the dry run itself fails."""
    names = planned_packages(requirement)
    return None if names is None else [n for n in names if n.startswith("nvidia-") or n == "triton"]


def cpu_build_problems() -> list[str]:
    """What shows that the installed torch is not the CPU-only build (empty when it is)."""
    code = ("import json, torch, importlib.metadata as m; print(json.dumps([torch.__version__, torch.version.cuda, "
            "sorted(d.metadata['Name'] for d in m.distributions() if d.metadata['Name'] and "
            "d.metadata['Name'].lower().startswith('nvidia-'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return ["torch cannot be imported"]
    version, cuda, nvidia = json.loads(out.stdout)
    problems = [f"torch {version} is built for CUDA {cuda}"] if cuda is not None else []
    if nvidia:
        problems.append(f"{len(nvidia)} nvidia-* package(s) installed ({', '.join(nvidia[:3])}, ...)")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Install and check; 0 on success, 1 with one ``error:`` line otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2.13.0")
    parser.add_argument("--index", default=CPU_INDEX, help="PyTorch wheel index (default: the CPU one)")
    args = parser.parse_args(argv)
    requirement = f"torch=={args.version}"
    cpu = args.index.rstrip("/").endswith("/cpu")
    if reachable(args.index):
        print(f"torch {args.version} from {args.index}")
        status = install(["--index-url", args.index, requirement])
    elif not cpu:
        print(f"error: {args.index} cannot be reached", file=sys.stderr)
        return 1
    else:
        print(f"torch {args.version}: {args.index} cannot be reached; trying the configured index")
        cuda = planned_cuda_packages(requirement)
        if cuda is None:
            print(f"error: cannot resolve {requirement} from the configured index either", file=sys.stderr)
            return 1
        if cuda:
            print(f"error: the configured index offers only the CUDA build of torch ({len(cuda)} CUDA packages, "
                  f"several GB); make {CPU_INDEX} reachable or put the CPU wheel in pip's find-links",
                  file=sys.stderr)
            return 1
        status = install([requirement])
    if status != 0:
        print(f"error: could not install {requirement}", file=sys.stderr)
        return 1
    problems = cpu_build_problems() if cpu else []
    if problems:
        print(f"error: not the CPU build of PyTorch: {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"torch {args.version} installed" + (" (CPU build, no nvidia-* packages)" if cpu else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
