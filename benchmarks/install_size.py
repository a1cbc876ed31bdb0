"""Installed size of infarctsam's dependencies: the core install against each optional extra.

Reads ``pyproject.toml``, walks the dependency closure of the core requirements (and of each extra) through the
installed packages' metadata, and sums the files in their RECORDs. Run it with the project's environment, where
everything (core, extras, test tools) is installed::

    .venv/bin/python benchmarks/install_size.py [--top]
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(reqs: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Installed distributions needed by ``reqs`` (with the extras they ask for), by normalised name."""
    seen: dict[tuple[str, frozenset[str]], metadata.Distribution] = {}
    todo = [(r, frozenset(r.extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        if _norm(req.name) == "infarctsam" or (_norm(req.name), extras) in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            print(f"not installed: {req.name}", file=sys.stderr)
            continue
        seen[(_norm(req.name), extras)] = dist
        for text in dist.requires or []:
            sub = Requirement(text)
            wanted = sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (extras or {""}))
            if wanted:
                todo.append((sub, frozenset(sub.extras)))
    return {name: dist for (name, _), dist in seen.items()}


def installed_bytes(dists: dict[str, metadata.Distribution]) -> int:
    """Sum of the sizes of the files the distributions installed."""
    total = 0
    for dist in dists.values():
        for f in dist.files or []:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                total += path.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", action="store_true", help="Also list the largest core packages.")
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = [Requirement(r) for r in project["dependencies"]]
    extras = {k: [Requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}
    for label, names in (("core", []), ("core + train", ["train"]), ("core + dask", ["dask"]),
                         ("core + train + dask", ["train", "dask"])):
        dists = closure(core + [r for n in names for r in extras[n]])
        print(f"{label:20s} {len(dists):3d} packages  {installed_bytes(dists) / 2**30:5.2f} GiB")
    if args.top:
        dists = closure(core)
        sizes = sorted(((installed_bytes({k: d}), k) for k, d in dists.items()), reverse=True)[:12]
        print("largest:", ", ".join(f"{k} {b / 2**20:.0f} MiB" for b, k in sizes))


if __name__ == "__main__":
    main()
