"""Self-contained HTML reports: an inline SVG trade-off plot, a sortable table and the environment.

Nothing is fetched: styles, the plot and the few lines of script are in the page, so it reads offline and
in CI artifacts. The data behind the page is embedded as JSON (``<script id="data">``).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.outputs import write_text_atomic
from compressor.parsing import format_size
from compressor.report.envelope import dumps, envelope
from compressor.report.table import Table

WIDTH, HEIGHT, MARGIN = 760, 440, 64
COLORS = {
    "baseline": "#1f6feb", "meets": "#1a7f37", "rejected": "#d4762c", "failed": "#8c959f", "candidate": "#8250df",
}  # fmt: skip

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;color:#1f2328}
h1{font-size:1.4rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem}
.verdict{padding:.6rem 1rem;border-radius:6px;margin:1rem 0}
.ok{background:#dafbe1;border:1px solid #1a7f37} .fail{background:#ffebe9;border:1px solid #cf222e}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{padding:4px 8px;border-bottom:1px solid #d0d7de}
th{cursor:pointer;text-align:left;background:#f6f8fa;user-select:none}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{font-weight:600;background:#dafbe1} tr.meets td:first-child{border-left:3px solid #1a7f37}
tr.rejected td:first-child{border-left:3px solid #d4762c} tr.failed td:first-child{border-left:3px solid #8c959f}
svg text{font-size:12px;fill:#57606a} .legend span{display:inline-block;margin-right:1rem}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px}
dt{color:#57606a}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = th.dataset.order !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = ascending ? 'asc' : 'desc';
  });
});
"""


@dataclass(frozen=True)
class PlotPoint:
    label: str
    x: float
    y: float
    size_bytes: int
    kind: str
    tooltip: str
    on_front: bool = False
    chosen: bool = False


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return start + (value - low) / (high - low) * (end - start) if high > low else (start + end) / 2


def scatter_svg(points: list[PlotPoint], x_label: str, y_label: str, threshold: float | None = None) -> str:
    """Quality (y) against latency (x); area shows model size; the Pareto front is joined by a line."""
    if not points:
        return "<p>No model was timed, so there is nothing to plot.</p>"
    xs, ys = [p.x for p in points], [p.y for p in points] + ([threshold] if threshold is not None else [])
    x_low, x_high = 0.0, max(xs) * 1.08
    y_pad = max((max(ys) - min(ys)) * 0.08, 1e-3)
    y_low, y_high = min(ys) - y_pad, max(ys) + y_pad
    left, right, top, bottom = MARGIN, WIDTH - 20, 20, HEIGHT - MARGIN
    largest = max(p.size_bytes for p in points) or 1

    def at(p: PlotPoint) -> tuple[float, float]:
        return _scale(p.x, x_low, x_high, left, right), _scale(p.y, y_low, y_high, bottom, top)

    parts = [
        f'<svg id="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{html.escape(y_label)} against {html.escape(x_label)}">'
    ]
    parts.append(
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#fff" stroke="#d0d7de"/>'
    )
    for tick in _ticks(x_low, x_high):
        x = _scale(tick, x_low, x_high, left, right)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#57606a"/>'
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{tick:.3g}</text>'
        )
    for tick in _ticks(y_low, y_high):
        y = _scale(tick, y_low, y_high, bottom, top)
        parts.append(
            f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#57606a"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:.4g}</text>'
        )
    parts.append(f'<text x="{(left + right) / 2}" y="{HEIGHT - 18}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(
        f'<text transform="translate(16 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    if threshold is not None:
        y = _scale(threshold, y_low, y_high, bottom, top)
        parts.append(
            f'<line class="threshold" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#cf222e" '
            'stroke-dasharray="6 4"/>'
            f'<text x="{right - 4}" y="{y - 6:.1f}" text-anchor="end" fill="#cf222e">constraint</text>'
        )
    front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(at, front))
        parts.append(
            f'<polyline class="front" points="{path}" fill="none" stroke="#1f6feb" stroke-width="1.5" '
            'stroke-dasharray="3 3"/>'
        )
    for point in sorted(points, key=lambda p: -p.size_bytes):
        x, y = at(point)
        radius = 4 + 14 * math.sqrt(point.size_bytes / largest)
        stroke = ' stroke="#1f2328" stroke-width="3"' if point.chosen else ' stroke="#fff" stroke-width="1"'
        parts.append(
            f'<circle class="point {point.kind}" cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" '
            f'fill="{COLORS.get(point.kind, "#57606a")}" fill-opacity="0.75"{stroke}>'
            f"<title>{html.escape(point.tooltip)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def table_html(table: Table) -> str:
    """A sortable HTML table; numeric-looking cells sort by value."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for row, style in zip(table.rows, table.styles or [""] * len(table.rows), strict=False):
        cells = "".join(f'<td data-v="{html.escape(_sort_value(c))}"{_num_class(c)}>{html.escape(c)}</td>' for c in row)
        rows.append(f'<tr class="{html.escape(style)}">{cells}</tr>')
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in table.notes)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{notes}'


def _sort_value(cell: str) -> str:
    text = cell.strip().replace(",", "").rstrip("x%").split(" ")[0]
    try:
        value = float(text)
    except ValueError:
        return cell
    return str(value * {"KB": 1e3, "MB": 1e6, "GB": 1e9}.get(cell.strip().split(" ")[-1], 1))


def _num_class(cell: str) -> str:
    text = cell.strip().lstrip("+-")
    return ' class="num"' if text[:1].isdigit() else ""


def environment_html(env: dict[str, Any]) -> str:
    rows = [
        ("CPU", env.get("cpu")),
        ("threads", env.get("threads")),
        ("device", env.get("device")),
        ("memory", f"{env.get('memory_gb')} GB"),
        ("Python", env.get("python")),
        ("platform", env.get("platform")),
    ]
    rows += [(name, version) for name, version in env.get("versions", {}).items()]
    return "<dl>" + "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows) + "</dl>"


def page(title: str, verdict: str, ok: bool, sections: list[tuple[str, str]], data: dict[str, Any]) -> str:
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    payload = dumps(data).replace("</", "<\\/")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><meta name="viewport" content="width=device-width">'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<div class="verdict {"ok" if ok else "fail"}">{verdict}</div>{body}'
        f'<script type="application/json" id="data">{payload}</script><script>{SORT_SCRIPT}</script></body></html>\n'
    )


def _legend(
    names: dict[str, str] | None = None, tail: str = "black ring: the chosen model; hover a dot for its recipe"
) -> str:
    names = names or {"baseline": "baseline", "meets": "meets the constraint", "rejected": "misses it"}
    items = "".join(f'<span><i class="dot" style="background:{COLORS[k]}"></i>{v}</span>' for k, v in names.items())
    return f'<p class="legend">{items}<span>dot area: model size; dashed blue: Pareto front; {tail}</span></p>'


def write_optimize_html(result: Any, path: Path) -> Path:
    """The optimize report: verdict, trade-off plot over all timed trials, the trials table, environment."""
    from compressor.report.optimize import trials_table

    batch = result.settings["objective_batch"]
    metric = result.settings["metric"]
    threshold = None if result.baseline.quality is None else result.baseline.quality - result.settings["max_drop"]
    if metric not in ("accuracy", "fidelity"):
        threshold = None
    points = []
    for trial in [result.baseline, *result.trials]:
        if batch not in trial.latency or trial.quality is None:
            continue
        recipe = " > ".join(f"{s['name']} {json.dumps(s['config'], sort_keys=True)}" for s in trial.steps) or "none"
        tooltip = (
            f"#{trial.index} {trial.label}\n{metric} {trial.quality:.4f} (drop {trial.drop:+.4f})\n"
            f"p50 b{batch} {trial.latency[batch].p50_ms:.3f} ms, {format_size(trial.size_bytes or 0)}\n"
            f"recipe: {recipe}" + (f"\n{trial.note}" if trial.note else "")
        )
        kind = "baseline" if trial.index == 0 else trial.status
        points.append(
            PlotPoint(
                trial.label,
                trial.latency[batch].p50_ms,
                trial.quality,
                trial.size_bytes or 0,
                kind,
                tooltip,
                trial.index in result.front,
                trial.index == result.best,
            )
        )
    if result.best is not None:
        chosen = result.trial(result.best)
        verdict = (
            f"Chosen: <code>{html.escape(chosen.label)}</code> — {_ratios(result.baseline, chosen, batch, metric)}"
        )
    else:
        verdict = "No candidate meets the constraint; no model was written. The closest are marked in the table."
    sections = [
        (f"{metric} against latency (batch {batch})",
         scatter_svg(points, f"median latency at batch {batch} (ms)", metric, threshold) + _legend()),
        ("Trials", table_html(trials_table(result))),
        ("Environment", environment_html(result.environment)),
    ]  # fmt: skip
    title = f"compressor optimize: {len(result.trials)} candidates"
    document = page(title, verdict, result.best is not None, sections, envelope("optimize", result.to_dict()))
    return write_text_atomic(path, document)


def _ratios(base: Any, chosen: Any, batch: int, metric: str) -> str:
    size = (chosen.size_bytes or 0) / (base.size_bytes or 1)
    latency = chosen.latency[batch].p50_ms / base.latency[batch].p50_ms if batch in base.latency else float("nan")
    return (
        f"{size:.2f}x the size, {latency:.2f}x the latency at batch {batch}, {metric} {chosen.quality:.4f} "
        f"(baseline {base.quality:.4f})"
    )


def write_compare_html(measurement: Any, path: Path) -> Path:
    """The compare report: every model's quality against its latency (dot area: size), with the Pareto front over
    quality, latency and size; then the trade-off and footprint tables and the environment.

    Quality is accuracy when every model has it (labelled data), else fidelity: the mean cosine of each model's
    outputs to the base's (1 for the base)."""
    from compressor.report.measurement import footprint_table, tradeoff_table
    from compressor.search.pareto import Point, pareto_front

    models = measurement.models
    batch = measurement.settings["batches"][0]
    use_accuracy = all(m.accuracy is not None for m in models)
    metric = "accuracy" if use_accuracy else "fidelity (mean cosine to the base)"

    def quality(index: int) -> float | None:
        model = models[index]
        if use_accuracy:
            return model.accuracy
        return 1.0 if index == 0 else (model.fidelity.cosine_mean if model.fidelity else None)

    measured = [(i, m, quality(i)) for i, m in enumerate(models) if batch in m.latency and quality(i) is not None]
    front = {p.key for p in pareto_front([Point(i, q, m.latency[batch].p50_ms, m.size_bytes) for i, m, q in measured])}
    points = [
        PlotPoint(
            model.label,
            model.latency[batch].p50_ms,
            value,
            model.size_bytes,
            "baseline" if index == 0 else "candidate",
            f"{model.label}{' (base)' if index == 0 else ''}\n{metric} {value:.4f}\n"
            f"p50 b{batch} {model.latency[batch].p50_ms:.3f} ms, {format_size(model.size_bytes)}\n{model.path}",
            index in front,
        )
        for index, model, value in measured
    ]
    source = f"on {measurement.dataset}" if measurement.dataset else "on generated inputs"
    verdict = (
        f"{len(models) - 1} model{'s' if len(models) != 2 else ''} compared with <code>{html.escape(models[0].label)}"
        f"</code>: {html.escape(metric)} {html.escape(source)}, latency at batch {batch}."
    )
    legend = _legend({"baseline": "base", "candidate": "compared model"}, "hover a dot for its path")
    sections = [
        (f"{metric} against latency (batch {batch})",
         scatter_svg(points, f"median latency at batch {batch} (ms)", metric) + legend),
        ("Trade-off", table_html(tradeoff_table(measurement))),
        ("Footprint", table_html(footprint_table(measurement))),
        ("Environment", environment_html(measurement.environment)),
    ]  # fmt: skip
    title = f"compressor compare: {len(models)} models"
    return write_text_atomic(path, page(title, verdict, True, sections, envelope("compare", measurement.to_dict())))
