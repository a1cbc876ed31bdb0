"""``infarctsam fit-fusion``: fit the DWI/ADC fusion head of a trained model on labelled cases."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import PlainCommand, echo_err, run


def fit_fusion(
    weights: Path = typer.Argument(..., metavar="WEIGHTS", help="Trained network (.safetensors) from infarctsam "
                                   "train."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Weights file to write (.safetensors)."),
    data: list[Path] = typer.Option([], "--data", metavar="FOLDER", help="Folder of labelled real cases (DWI, ADC, "
                                    "lesion mask); repeat for several."),
    n_isles: int = typer.Option(0, "--synth-isles", min=0, metavar="N", help="Synthetic ISLES'22-like cases to add."),
    n_clinical: int = typer.Option(0, "--synth-clinical", min=0, metavar="N", help="Synthetic clinical cases to "
                                   "add."),
    seed: int = typer.Option(4242, "--seed", metavar="SEED", help="Seed of the synthetic cases and the voxel "
                             "sampling."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-case lines."),
) -> None:
    """Fit the physics fusion head (the network's output with the DWI/ADC contrast, with and without ADC)."""
    from infarctsam.train.fusion_run import FusionRun, fit_fusion_run, parse_datasets

    datasets = run(parse_datasets, data)
    spec = FusionRun(weights=weights, datasets=datasets, n_isles=n_isles, n_clinical=n_clinical, seed=seed)
    result = run(fit_fusion_run, spec, output, None if quiet else (lambda name: echo_err(f"case {name}")))
    typer.echo(f"fusion head fitted on {len(result['cases'])} case(s); weights written to {result['weights']}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("fit-fusion", cls=PlainCommand, short_help="Fit the DWI/ADC fusion head of a trained model.")(
        fit_fusion)
