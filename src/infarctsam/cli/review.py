"""``infarctsam review``: the cohort QC review page of batch output folders (or single cases)."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import echo_err, fail, run


def review(
    inputs: list[Path] = typer.Argument(..., metavar="FOLDER_OR_JSON...",
                                        help="Output folder(s) of infarctsam segment (batch or single case) and/or "
                                        "case JSON files."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FILE", help="HTML file to write (default: "
                                       "FIRST_FOLDER/review.html); review_files/ is written beside it."),
    title: str | None = typer.Option(None, "--title", metavar="TEXT", help="Page title (default: the folder name)."),
    max_side: int = typer.Option(256, "--max-side", min=32, max=1024, metavar="PIXELS",
                                 help="Largest in-plane size of the slices kept in the page, 32-1024 (larger images "
                                 "are reduced)."),
) -> None:
    """Build a self-contained offline HTML review of segmented cases: a sortable, filterable cohort table (cases with
    warnings first), a slice viewer with the mask over the DWI and ADC, and accept / reject / needs-edit decisions
    with notes, kept in the browser and exported to infarctsam_review.csv (read back by the batch summary and by
    infarctsam evaluate --clinical). Open the page from disk; it needs no server and no network."""
    from infarctsam.review.page import build_review

    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise fail(f"not found: {missing[0]}")
    if output is None:
        folders = [p for p in inputs if p.is_dir()]
        if not folders:
            raise fail("give --output FILE when reviewing case JSON files")
        output = folders[0] / "review.html"
    if output.suffix.lower() not in (".html", ".htm"):
        raise fail(f"--output must be an .html file, got {output.name}")
    page = run(build_review, list(inputs), output, title=title, max_side=max_side, log=echo_err)
    typer.echo(f"review page: {page.html} ({page.n_cases} case(s), {page.n_warnings} with warnings)")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    from infarctsam.cli.common import PlainCommand

    app.command("review", cls=PlainCommand, short_help="Offline QC review page of segmentation results.")(review)
