"""``infarctsam weights``: inspect checkpoints (SAM 2.1 / MedSAM2 / LiteMedSAM ``.pt`` or our safetensors)."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import PlainCommand, fail, run

weights_app = typer.Typer(help="Inspect model weights.", no_args_is_help=True, rich_markup_mode=None)


@weights_app.command("inspect", cls=PlainCommand)
def inspect(
    path: Path = typer.Argument(..., metavar="CHECKPOINT", help="Checkpoint: .pt/.pth (read with "
                                "weights_only=True) or .safetensors."),
    image_size: int | None = typer.Option(None, "--image-size", metavar="PIXELS", help="Image size to assume when "
                                          "the weights do not encode it."),
) -> None:
    """Say which architecture and image size a checkpoint fits; non-zero exit on any mismatch."""
    from infarctsam.model.inspect import inspect_checkpoint

    report = run(inspect_checkpoint, path, image_size=image_size)
    typer.echo(report.summary())
    if not report.fits:
        target = report.best_match or "any known architecture"
        detail = report.report.summary() if report.report is not None else "no tensor matches"
        raise fail(f"{path.name} does not fit {target}: {detail}")


def register(app: typer.Typer) -> None:
    """Add the command group to the application."""
    app.add_typer(weights_app, name="weights")
