"""``infarctsam locate``: arterial territories and brain regions of any lesion mask on a DWI's grid."""

from __future__ import annotations

from pathlib import Path

import typer

from infarctsam.cli.common import PlainCommand, echo_err, run


def locate(
    mask: Path = typer.Argument(..., metavar="MASK", help="Lesion mask (0/1) on the DWI's grid: a reader's, another "
                                "tool's or infarctsam's."),
    dwi: Path = typer.Option(..., "--dwi", metavar="DWI", help="The DWI the mask was drawn on (file or DICOM "
                             "folder)."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FOLDER", help="Output folder."),
    bval: Path | None = typer.Option(None, "--bval", metavar="FILE", help="b-values of a 4D DWI without sidecar."),
    picture: bool = typer.Option(True, "--picture/--no-picture", help="Write MASK_location.png (the DWI in MNI "
                                 "space with territory colours and the lesion outline)."),
) -> None:
    """Register the DWI to MNI152 (affine) and report the mask's volume per arterial territory (JHU atlas, level 1
    and 2), per circulation, side and brain region: MASK_location.json (+ .png). An implausible registration is a
    warning and an 'unreliable' location, never a guess."""
    from infarctsam.locate import locate_mask

    result = run(locate_mask, mask, dwi, output, bval=bval, picture=picture)
    loc = result["location"]
    typer.echo(f"{mask.name}: {result['volume_ml']:.2f} mL, {loc['summary']}")
    if loc["reliable"] and loc["level2"]:
        parts = [f"{v['name']} {v['ml']:.2f} mL ({100 * v['share']:.0f}%)" for v in loc["level2"].values()
                 if v["ml"] > 0]
        typer.echo("  " + "; ".join(parts) if parts else "  no lesion voxels")
    for warning in result["warnings"]:
        echo_err(f"warning: {warning}")
    for name in result["outputs"].values():
        echo_err(f"wrote {Path(output) / name}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("locate", cls=PlainCommand, short_help="Arterial territories and regions of a lesion mask.")(locate)
