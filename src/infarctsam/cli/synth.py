"""``infarctsam synth``: write a synthetic stroke cohort (DWI, ADC, known infarct masks)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from infarctsam.cli.common import PlainCommand, fail, run


def synth(
    output: Path = typer.Argument(..., metavar="FOLDER", help="Folder for the cohort."),
    n: int = typer.Option(10, "--n", "-n", metavar="N", help="Number of cases (at least 1)."),
    seed: int = typer.Option(0, "--seed", metavar="SEED", help="Random seed (same seed, same cohort)."),
    preset: Literal["isles", "clinical", "random"] = typer.Option(
        "isles", "--preset", help="isles: 112x112x73, 2 mm, skull-stripped; clinical: 256x256x25, 0.9x0.9x5 mm; "
        "random: anything in between."),
    layout: Literal["bids", "flat"] = typer.Option("bids", "--layout", help="Folder layout of the cohort."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr (progress is shown only when "
                               "stderr is a terminal)."),
) -> None:
    """Generate synthetic DWI/ADC cases with infarcts of known volume (real SOOP infarct shapes, MNI anatomy)."""
    from infarctsam.cli.progress import StageProgress
    from infarctsam.synth import PhantomConfig, write_cohort

    if n < 1:
        raise fail(f"--n must be at least 1, got {n}")
    presets = {"isles": PhantomConfig.isles_like, "clinical": PhantomConfig.clinical, "random": PhantomConfig}
    progress = StageProgress.for_terminal(quiet)
    manifest = run(write_cohort, output, n, seed, config=presets[preset](), layout=layout, progress=progress)
    progress.finish()
    typer.echo(f"wrote {len(manifest)} synthetic cases to {output}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("synth", cls=PlainCommand, short_help="Write a synthetic cohort with known infarcts.")(synth)
