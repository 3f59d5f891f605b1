"""The report's ``index.html``: the best summary and the charts on one page, opened from disk.

Self-contained on purpose (it is read on laptops and air-gapped machines): inline CSS, images by
relative path, no script, font or style from anywhere. Every text from the tree is escaped.
"""

from __future__ import annotations

import html
import os
from typing import Any, Dict, List, Optional, Sequence

from local.report.charts import Chart
from local.report.collect import ModelData
from local.report.summary import Baseline, BestRow, Peak
from local.report.tables import BEST_CSV, CHECKPOINT_CSV
from remote.contract.files import write_bytes_atomic
from remote.contract.tree import checkpoint_dir_name

PAGE_NAME = "index.html"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; } .meta { color: #555; margin: 0 0 4px; }
table { border-collapse: collapse; font-size: 12px; margin-bottom: 8px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f0f0f0; }
td.name, th.name { text-align: left; min-width: 140px; max-width: 300px; overflow-wrap: anywhere; }
tr.baseline td { background: #f7f3e3; font-style: italic; }
.diff { display: block; font-size: 10px; } .up { color: #1a7f37; } .down { color: #c62828; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; } .charts img { width: 600px; border: 1px solid #ddd; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"


def _diffs(row: BestRow, metric: str) -> str:
    parts = []
    for label, diffs in row.diffs.items():
        if metric in diffs:
            delta = diffs[metric]
            kind = "up" if delta > 0 else "down" if delta < 0 else ""
            parts.append(f'<span class="diff {kind}" title="vs {_e(label)}">{delta:+.4f}</span>')
    return "".join(parts)


def _epoch(value: Optional[float]) -> str:
    return "" if value is None else f"{value:g}"


def _peak_text(found: Optional[Peak]) -> str:
    if found is None:
        return ""
    where = checkpoint_dir_name(found.step) + (f", epoch {found.epoch:g}" if found.epoch is not None else "")
    return f"{found.value:.4f} ({where})"


def _head(metrics: Sequence[str], peaks: Sequence[str]) -> str:
    cells = ['<th class="name">model</th>', "<th>best checkpoint</th>", "<th>epoch</th>"]
    cells += [f"<th>{_e(m)}</th>" for m in metrics]
    cells += [f"<th>peak {_e(p)}</th>" for p in peaks]
    return "<tr>" + "".join(cells) + "</tr>"


def _baseline_row(ref: Baseline, metrics: Sequence[str], peaks: Sequence[str]) -> str:
    cells = [f'<td class="name">baseline: {_e(ref.model.entry.model_dir)}</td>']
    cells += [f"<td>{_e(checkpoint_dir_name(ref.point.step))}</td>", f"<td>{_epoch(ref.point.epoch)}</td>"]
    cells += [f"<td>{_num(ref.point.metrics.get(m))}</td>" for m in metrics] + ["<td></td>"] * len(peaks)
    return '<tr class="baseline">' + "".join(cells) + "</tr>"


def _model_row(row: BestRow, metrics: Sequence[str], peaks: Sequence[str]) -> str:
    cells = [f'<td class="name">{_e(row.model.entry.model_dir)}</td>']
    best = row.best
    if best is None:
        return (
            "<tr>"
            + cells[0]
            + f'<td colspan="{2 + len(metrics) + len(peaks)}">no usable checkpoint</td></tr>'
        )
    cells += [f"<td>{_e(checkpoint_dir_name(best.step))}</td>", f"<td>{_epoch(best.epoch)}</td>"]
    cells += [f"<td>{_num(best.metrics.get(m))}{_diffs(row, m)}</td>" for m in metrics]
    for name in peaks:
        found = row.peaks.get(name)
        cells.append(f"<td>{_e(_peak_text(found))}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def summary_section(
    rows: Sequence[BestRow], refs: Sequence[Baseline], metrics: Sequence[str], peaks: Sequence[str]
) -> List[str]:
    """Given the best rows and baselines, return the HTML of one table per group."""
    parts = []
    for group in _groups(rows):
        parts.append(f"<h3>{_e(group)}</h3><table>{_head(metrics, peaks)}")
        parts += [_baseline_row(ref, metrics, peaks) for ref in refs if ref.group == group]
        parts += [_model_row(row, metrics, peaks) for row in rows if row.group == group]
        parts.append("</table>")
    return parts


def charts_section(charts: Sequence[Chart], note: str) -> List[str]:
    """Given the drawn charts (or a note why there are none), return their HTML, grouped."""
    if not charts:
        return [f"<p>{_e(note)}</p>"]
    parts: List[str] = []
    by_group: Dict[str, List[Chart]] = {}
    for chart in charts:
        by_group.setdefault(chart.group or "all models", []).append(chart)
    for group, drawn in by_group.items():
        images = "".join(f'<img src="{_e(c.path)}" alt="{_e(c.title)}">' for c in drawn)
        parts.append(f'<h3>{_e(group)}</h3><div class="charts">{images}</div>')
    return parts


def left_out_section(models: Sequence[ModelData]) -> List[str]:
    """Given the models, return a list of the checkpoints left out and why (empty when none)."""
    items = [
        f"<li>{_e(m.entry.model_dir)} {_e(checkpoint_dir_name(step))}: {_e(reason)}</li>"
        for m in models
        for step, reason in sorted(m.failures.items())
    ]
    return ["<h2>Checkpoints left out</h2><ul>", *items, "</ul>"] if items else []


def render(meta: Sequence[str], sections: Sequence[str]) -> str:
    """Given the header lines and the sections' HTML, return the whole page."""
    head = "".join(f'<p class="meta">{_e(line)}</p>' for line in meta)
    links = ", ".join(f'<a href="{name}">{name}</a>' for name in (BEST_CSV, CHECKPOINT_CSV))
    body = "".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Eval report</title><style>{STYLE}</style></head><body>"
        f'<h1>Eval report</h1>{head}<p class="meta">Tables: {links}</p>{body}</body></html>\n'
    )


def write_page(output_dir: str, meta: Sequence[str], sections: Sequence[str]) -> str:
    """Given the page's parts, write ``index.html`` atomically into ``output_dir``; return its path."""
    path = os.path.join(output_dir, PAGE_NAME)
    write_bytes_atomic(path, render(meta, sections).encode("utf-8"))
    return path


def _groups(rows: Sequence[BestRow]) -> List[str]:
    return list(dict.fromkeys(row.group for row in rows))
