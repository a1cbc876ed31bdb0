"""The self-contained HTML report: inline CSS, figures as base64 data URIs, no scripts, nothing from the network.

A Content-Security-Policy meta tag (``default-src 'none'``) makes the browser refuse any script or remote resource,
so the report can be opened and archived anywhere.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from infarctsam.report.tables import (
    bland_altman_table,
    case_table,
    cases_text,
    comparison_table,
    methods_text,
    table2,
    territory_tables,
)

if TYPE_CHECKING:
    from infarctsam.evaluate.api import EvaluationResult
    from infarctsam.report.figures import ReportFigure
    from infarctsam.stats import Table1

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1b1b1b; max-width: 1100px;
       margin: 2em auto; padding: 0 1.2em; line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; } h3 { font-size: 1.05em; }
.meta { color: #555; font-size: 0.9em; } .note { background: #fff8e1; border-left: 4px solid #f0b400;
       padding: 0.4em 0.8em; margin: 0.8em 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.86em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.35em; }
th, td { border-top: 1px solid #ccc; border-bottom: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; } th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.l1 { padding-left: 1.8em; color: #333; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2em 2em; align-items: flex-start; }
figure { margin: 0.6em 0; display: table; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { display: table-caption; caption-side: bottom; font-size: 0.86em; color: #333; padding-top: 0.3em; }
details { margin: 1em 0; } summary { cursor: pointer; font-weight: 600; }
footer { margin-top: 2.5em; font-size: 0.8em; color: #777; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_num(cell: str) -> bool:
    head = cell.strip().split(" ")[0].lstrip("<-").replace(".", "", 1)
    return head.isdigit() or cell.strip() == "NA"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, table_id: str,
               levels: Sequence[int] | None = None) -> str:
    """An HTML table with a caption; cells that start with a number are right-aligned."""
    out = [f'<table id="{_e(table_id)}">', f"<caption>{_e(caption)}</caption>", "<thead><tr>"]
    out += [f'<th scope="col">{_e(h)}</th>' for h in header]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        level = levels[i] if levels else 0
        cells = []
        for j, cell in enumerate(row):
            cls = "l1" if j == 0 and level else ("num" if j and _is_num(cell) else "")
            cells.append(f'<td class="{cls}">{_e(cell)}</td>' if cls else f"<td>{_e(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def table1_html(table: Table1 | None) -> str:
    """Table 1 section body (or the statement that no clinical table was given)."""
    if table is None:
        return ('<p class="note" id="table1-missing">Table 1 (demographics) is not available: no clinical table was '
                "given (<code>--clinical</code>).</p>")
    rows = [[r.label, *r.values] for r in table.rows]
    body = html_table(["Characteristic", *table.columns], rows, "Table 1. Demographics and clinical characteristics",
                      "table1", levels=[r.level for r in table.rows])
    notes = "".join(f'<p class="meta">{_e(n)}</p>' for n in table.notes)
    return body + notes


def figure_html(fig: ReportFigure, number: int) -> str:
    """A ``<figure>`` with the PNG embedded as a data URI."""
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure id="fig-{_e(fig.name)}"><img src="data:image/png;base64,{data}" alt="{_e(fig.title)}">'
            f"<figcaption><b>Figure {number}. {_e(fig.title)}.</b> {_e(fig.caption)}</figcaption></figure>")


def render_html(result: EvaluationResult, figures: Sequence[ReportFigure]) -> str:
    """The complete HTML report as a string."""
    from infarctsam._version import __version__

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>infarctsam validation report ({cases_text(result.summary['n_cases'])})</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Follow-up infarct segmentation: validation report</h1>",
        f'<p class="meta">Generated {_e(now)} by infarctsam {_e(__version__)}. Reference: <code>{_e(result.gt_root)}'
        "</code>. Predictions: "
        + ", ".join(f"<b>{_e(m)}</b> <code>{_e(p)}</code>" for m, p in result.pred_roots.items()) + ".</p>",
        "<h2>Methods</h2>",
        *[f"<p>{_e(t)}</p>" for t in methods_text(result)],
        "<h2>Results</h2>",
        f"<p>{cases_text(result.summary['n_cases'])} evaluated.</p>",
    ]
    missing = result.pairing.missing_lines()
    if missing:
        parts.append('<div class="note" id="missing-cases"><b>Cases left out.</b><ul>'
                     + "".join(f"<li>{_e(line)}</li>" for line in missing) + "</ul></div>")
    parts.append("<h3>Study population</h3>")
    parts.append(table1_html(result.table1))
    terr = territory_tables(result)
    if terr is not None:
        parts.append(html_table(*terr[0], "Table 1b. Cases by dominant arterial territory of the reference mask "
                                "(JHU atlas, level 2)", "territories"))
    parts.append("<h3>Segmentation and volume agreement</h3>")
    h, rows = table2(result)
    parts.append(html_table(h, rows, "Table 2. Agreement of each method with the reference masks", "table2"))
    if terr is not None and terr[1][1]:
        parts.append(html_table(*terr[1], "Table 2b. Volume agreement per arterial territory", "territory-agreement"))
    h, rows = comparison_table(result)
    number = 3
    if rows:
        number += 1
        parts.append(html_table(h, rows, "Table 3. Paired comparison of per-case Dice (two-sided Wilcoxon "
                                "signed-rank test)", "comparisons"))
    else:
        parts.append('<p class="meta" id="comparisons-none">One method only: no paired comparison.</p>')
    h, rows = bland_altman_table(result)
    parts.append(html_table(h, rows, f"Table {number}. Bland-Altman analysis of infarct volume", "bland-altman"))
    if figures:
        parts.append("<h3>Figures</h3>")
        parts.append('<div class="figures">' + "".join(figure_html(f, i) for i, f in enumerate(figures, 1)) + "</div>")
    h, rows = case_table(result)
    parts.append("<details><summary>Per-case results</summary>"
                 + html_table(h, rows, "Per-case metrics (all columns in cases.csv)", "cases") + "</details>")
    parts.append(f"<footer>infarctsam {_e(__version__)} · self-contained report: no scripts, no network resources."
                 "</footer></body></html>")
    return "\n".join(parts) + "\n"
