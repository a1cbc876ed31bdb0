"""``infarctsam synth``: write a synthetic stroke cohort (DWI, ADC, known infarct masks)."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import run


def synth(
    output: Path = typer.Argument(..., help="Folder for the cohort."),
    n: int = typer.Option(10, "--n", "-n", min=1, help="Number of cases."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same cohort)."),
    preset: str = typer.Option("isles", "--preset", help="isles (112x112x73, 2 mm, skull-stripped), clinical "
                               "(256x256x25, 0.9x0.9x5 mm) or random."),
    layout: str = typer.Option("bids", "--layout", help="bids or flat."),
) -> None:
    """Generate synthetic DWI/ADC cases with infarcts of known volume (real SOOP infarct shapes, MNI anatomy)."""
    from infarctsam.synth import PhantomConfig, write_cohort

    presets = {"isles": PhantomConfig.isles_like, "clinical": PhantomConfig.clinical, "random": PhantomConfig}
    if preset not in presets:
        from infarctsam.cli.common import fail

        raise fail(f"unknown preset {preset!r}; choose isles, clinical or random")
    manifest = run(write_cohort, output, n, seed, config=presets[preset](), layout=layout)
    typer.echo(f"wrote {len(manifest)} synthetic cases to {output}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("synth")(synth)
