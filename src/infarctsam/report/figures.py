"""Report figures drawn with matplotlib's Agg canvas (no pyplot state), returned as PNG bytes."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infarctsam.report.tables import BA_UNITS, fmt_p, fmt_vol

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult

MAX_PNG_BYTES = 200_000
DPI = 110
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")


@dataclass(frozen=True)
class ReportFigure:
    """A rendered figure: file stem, title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any, max_bytes: int = MAX_PNG_BYTES, dpi: int = DPI) -> bytes:
    """Render a figure to PNG, shrinking it (palette quantisation, then lower DPI) until under ``max_bytes``."""
    from PIL import Image

    data = b""
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=max(int(dpi * scale), 30), facecolor="white")
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return data
        img = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=128)
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        data = out.getvalue()
        if len(data) <= max_bytes:
            return data
    return data


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def dice_plot(result: EvaluationResult) -> ReportFigure:
    """Box plot with the per-case points (strip plot) of Dice, one box per method."""
    fig = new_figure(max(3.2, 1.3 * len(result.methods) + 1.5), 3.4)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    data = [result.cases.loc[result.cases["method"] == m, "dice"].to_numpy(dtype=float) for m in result.methods]
    ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "black"})
    ax.set_xticks(range(1, len(result.methods) + 1), result.methods)
    for i, values in enumerate(data):
        x = i + 1 + rng.uniform(-0.15, 0.15, size=values.size)
        ax.scatter(x, values, s=14, color=_color(i), alpha=0.75, edgecolors="none", zorder=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("Dice")
    ax.grid(axis="y", alpha=0.3)
    return ReportFigure("dice", "Per-case Dice", "Per-case Dice of each method (boxes: median and quartiles; whiskers: "
                        "1.5 IQR; points: cases).", png_bytes(fig))


def bland_altman_plot(result: EvaluationResult) -> ReportFigure:
    """Bland-Altman plot per method with bias, limits of agreement and their 95 % confidence bands."""
    n = len(result.stats)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = new_figure(3.6 * cols + 0.4, 3.2 * rows)
    unit = BA_UNITS[result.ba_transform]
    for i, s in enumerate(result.stats):
        ax = fig.add_subplot(rows, cols, i + 1)
        ba = s.bland_altman
        ax.scatter(ba.means, ba.diffs, s=16, color=_color(i), alpha=0.8, edgecolors="none", zorder=3)
        if ba.n >= 2:
            ax.axhspan(*ba.bias_ci95, color="0.5", alpha=0.18, lw=0)
            ax.axhspan(*ba.loa_lower_ci95, color="tab:red", alpha=0.10, lw=0)
            ax.axhspan(*ba.loa_upper_ci95, color="tab:red", alpha=0.10, lw=0)
            ax.axhline(ba.bias, color="0.2", lw=1.2, label=f"bias {fmt_vol(ba.bias)}")
            loa_label = f"LoA {fmt_vol(ba.loa[0])}, {fmt_vol(ba.loa[1])}"
            ax.axhline(ba.loa[0], color="tab:red", lw=1, ls="--", label=loa_label)
            ax.axhline(ba.loa[1], color="tab:red", lw=1, ls="--")
            ax.legend(fontsize=7, loc="best", frameon=False)
        ax.axhline(0, color="0.6", lw=0.6, ls=":")
        ax.set_title(s.name, fontsize=9)
        ax.set_xlabel(f"Mean of method and reference ({unit})", fontsize=8)
        ax.set_ylabel(f"Method - reference ({unit})", fontsize=8)
        ax.tick_params(labelsize=7)
    return ReportFigure(
        "bland_altman", "Bland-Altman volume agreement",
        f"Bland-Altman plots of infarct volume ({unit}): solid line bias, dashed lines 95% limits of agreement; shaded "
        "bands are their 95% confidence intervals (Bland & Altman 1999).", png_bytes(fig))


def paired_dice_plot(result: EvaluationResult, max_pairs: int = 6) -> ReportFigure | None:
    """Per-case Dice of two methods joined by a line, one panel per pair of methods (None with one method)."""
    pairs = list(itertools.combinations(range(len(result.methods)), 2))[:max_pairs]
    if not pairs:
        return None
    wide = result.cases.pivot(index="case", columns="method", values="dice")
    pvals = {(c.a, c.b): c.test.p for c in result.comparisons}
    cols = min(len(pairs), 3)
    rows = int(np.ceil(len(pairs) / cols))
    fig = new_figure(2.8 * cols + 0.4, 3.2 * rows)
    for k, (i, j) in enumerate(pairs):
        a, b = result.methods[i], result.methods[j]
        ax = fig.add_subplot(rows, cols, k + 1)
        for va, vb in zip(wide[a].to_numpy(), wide[b].to_numpy(), strict=True):
            color = _color(j) if vb > va else _color(i) if vb < va else "0.6"
            ax.plot([0, 1], [va, vb], color=color, alpha=0.6, lw=1, marker="o", ms=3)
        ax.set_xticks([0, 1], [a, b], fontsize=8)
        ax.set_xlim(-0.25, 1.25)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("Dice", fontsize=8)
        ax.set_title(f"Wilcoxon p = {fmt_p(pvals.get((a, b)))}", fontsize=8)
        ax.tick_params(labelsize=7)
    return ReportFigure("paired_dice", "Paired Dice", "Per-case Dice of two methods; each line is one case, coloured "
                        "by the method with the higher Dice (grey: equal).", png_bytes(fig))


def volume_scatter(result: EvaluationResult, log_axes: bool = False) -> ReportFigure:
    """Predicted against reference volume per method with the identity line (optionally log-log)."""
    fig = new_figure(4.2, 3.9)
    ax = fig.add_subplot()
    df = result.cases
    values = df[["volume_gt_ml", "volume_pred_ml"]].to_numpy(dtype=float)
    positive = values[values > 0]
    floor = float(positive.min()) / 2 if positive.size else 0.01
    clipped = 0
    for i, m in enumerate(result.methods):
        sub = df[df["method"] == m]
        x, y = sub["volume_gt_ml"].to_numpy(dtype=float), sub["volume_pred_ml"].to_numpy(dtype=float)
        if log_axes:
            clipped += int(((x <= 0) | (y <= 0)).sum())
            x, y = np.maximum(x, floor), np.maximum(y, floor)
        ax.scatter(x, y, s=16, color=_color(i), alpha=0.8, edgecolors="none", label=m, zorder=3)
    lo = floor if log_axes else 0.0
    hi = float(values.max()) * 1.05 if values.size and values.max() > 0 else 1.0
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="identity")
    if log_axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("Reference volume (mL)")
    ax.set_ylabel("Predicted volume (mL)")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    caption = "Predicted against reference infarct volume; dashed line: identity."
    if log_axes:
        caption += " Logarithmic axes" + (f"; {clipped} zero volume(s) drawn at {floor:.3g} mL." if clipped else ".")
    return ReportFigure("volume_scatter", "Volume scatter", caption, png_bytes(fig))
