"""``infarctsam cache``: list the model cache (exported parts, constants, compiled blobs) and prune old entries."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import PlainCommand, run


def cache(
    cache_dir: Path | None = typer.Option(None, "--cache-dir", metavar="FOLDER", help="The cache folder (default: "
                                          "~/.cache/infarctsam/onnx)."),
    prune: bool = typer.Option(False, "--prune", help="Remove entries no current process uses: older graph versions, "
                               "OpenVINO's cache of earlier releases, damaged entries, orphan sidecars and stale "
                               "temporary files. Files infarctsam did not name are never removed."),
) -> None:
    """List the model cache's entries (kind, graph version, weights key, size, state: each entry is checked against
    its sha256), or prune the ones no current process uses."""
    summary = run(cache_report, cache_dir, prune)
    typer.echo(summary)


def cache_report(cache_dir: Path | None, prune: bool) -> str:
    """The listing (or pruning) as text."""
    from infarctsam.runtime.cache_listing import list_entries
    from infarctsam.runtime.cache_listing import prune as prune_entries
    from infarctsam.runtime.export_cache import DEFAULT_CACHE, resolve_cache
    from infarctsam.runtime.openvino_parts import GRAPHS_VERSION, blob_tag, openvino_available

    folder = resolve_cache(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    tag = None
    if openvino_available():
        import openvino as ov

        tag = blob_tag(ov.Core())
    entries = list_entries(folder, GRAPHS_VERSION, tag)
    if prune:
        removed = prune_entries(folder, entries)
        freed = sum(e.size for e in removed)
        lines = [f"removed {e.path.relative_to(folder).as_posix()} ({e.kind}, {e.state})" for e in removed]
        kept = len(entries) - len(removed)
        return "\n".join([*lines, f"{folder}: removed {len(removed)} file(s), {_mb(freed)} freed; {kept} kept"])
    if not entries:
        return f"{folder}: empty"
    rows = [("kind", "version", "weights", "size", "state", "file")]
    rows += [(e.kind, e.version, e.weights, _mb(e.size), e.state, e.path.relative_to(folder).as_posix())
             for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    text = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    total = sum(e.size for e in entries)
    prunable = sum(e.prunable for e in entries)
    text.append(f"{folder}: {len(entries)} file(s), {_mb(total)}; {prunable} prunable (infarctsam cache --prune)")
    return "\n".join(text)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("cache", cls=PlainCommand, short_help="List or prune the model cache.")(cache)
