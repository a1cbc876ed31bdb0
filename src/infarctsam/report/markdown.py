"""``summary.md``: the report's tables as Markdown, figures linked as the PNG files beside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from infarctsam.report.tables import (
    bland_altman_table,
    cases_text,
    comparison_table,
    methods_text,
    table2,
    territory_tables,
)

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult
    from infarctsam.report.figures import ReportFigure


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown pipe table."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(result: EvaluationResult, figures: Sequence[ReportFigure]) -> str:
    """The Markdown summary as a string."""
    cases = cases_text(result.summary["n_cases"])
    out = ["# Validation summary", "", f"{cases}; methods: {', '.join(result.methods)}.", ""]
    for line in result.pairing.missing_lines():
        out.append(f"- {line}")
    if result.pairing.missing:
        out.append("")
    out += ["## Table 1. Demographics", ""]
    if result.table1 is None:
        out += ["No clinical table was given (`--clinical`); Table 1 is not available.", ""]
    else:
        indent = "\u00a0\u00a0\u00a0\u00a0"
        rows = [[(indent if r.level else "") + r.label, *r.values] for r in result.table1.rows]
        out += [md_table(["Characteristic", *result.table1.columns], rows), ""]
        for note in result.table1.notes:
            out += [f"_{note}_", ""]
    terr = territory_tables(result)
    if terr is not None:
        out += ["### Table 1b. Cases by dominant arterial territory", "", md_table(*terr[0]), ""]
    out += ["## Table 2. Agreement with the reference", "", md_table(*table2(result)), ""]
    if terr is not None and terr[1][1]:
        out += ["### Table 2b. Volume agreement per arterial territory (JHU atlas, level 2)", "",
                md_table(*terr[1]), ""]
    h, rows = comparison_table(result)
    out += ["## Paired comparisons of Dice (Wilcoxon signed-rank)", ""]
    out += [md_table(h, rows) if rows else "One method only: no paired comparison.", ""]
    out += ["## Bland-Altman", "", md_table(*bland_altman_table(result)), ""]
    if figures:
        out += ["## Figures", ""]
        out += [f"![{f.title}]({f.name}.png)\n\n_{f.caption}_\n" for f in figures]
    out += ["## Methods", ""] + [f"{p}\n" for p in methods_text(result)]
    return "\n".join(out).rstrip() + "\n"
