"""``infarctsam train``: two-stage prompt-free fine-tuning from a YAML/JSON configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from infarctsam.cli.common import PlainCommand, run


def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="Training configuration (YAML or JSON)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoints/last.pt exactly."),
    device: Literal["cpu", "cuda"] | None = typer.Option(None, "--device", help="Where to train (overrides the "
                                                         "config)."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FOLDER", help="Run folder (overrides the "
                                       "config)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fine-tune the prompt-free model in two stages; multi-GPU/multi-node with torchrun."""
    from infarctsam.io.safety import MAX_TEXT_BYTES, check_input_path
    from infarctsam.train.config import load_config
    from infarctsam.train.loop import train as run_training

    run(check_input_path, config, "training configuration", max_bytes=MAX_TEXT_BYTES)  # not /dev/zero, not a FIFO
    overrides = {k: v for k, v in {"device": device, "output": str(output.resolve()) if output else None}.items() if v}
    cfg = run(load_config, config, overrides)
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            from infarctsam.cli.common import fail

            raise fail("--device cuda was asked but no CUDA GPU is available")
    result = run(run_training, cfg, resume=resume, progress=not quiet)
    if "weights" in result:
        typer.echo(f"best validation Dice {result['best_dice']:.3f}; model written to {result['weights']}")


def register(app: typer.Typer) -> None:
    """Add the command to the application."""
    app.command("train", cls=PlainCommand, short_help="Fine-tune the prompt-free model (needs the train extra).")(train)
