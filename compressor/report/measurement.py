"""Tables for measured models: latency detail (bench) and the trade-off table (compare)."""

from __future__ import annotations

from compressor.measure.suite import Measurement, ModelReport
from compressor.parsing import format_size
from compressor.report.table import Table


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _params(report: ModelReport) -> str:
    params = report.stats.get("params")
    return f"{params:,}" if isinstance(params, int) else "-"


def environment_note(measurement: Measurement) -> str:
    env = measurement.environment
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (
        f"{env['cpu']}, {env['threads']} threads, device {env['device']}; {versions}. "
        "Models timed one at a time, interleaved, intra-op spinning off."
    )


def latency_table(measurement: Measurement) -> Table:
    """Per model and batch: median and tail latency, spread, throughput, ratio to the first model."""
    table = Table("Latency", ["model", "batch", "p50 ms", "p90 ms", "p99 ms", "spread", "runs", "items/s", "vs first"])
    base = measurement.models[0]
    for batch in measurement.settings["batches"]:
        for report in measurement.models:
            stats = report.latency[batch]
            table.add(
                [
                    report.label,
                    str(batch),
                    f"{stats.p50_ms:.3f}",
                    f"{stats.p90_ms:.3f}",
                    f"{stats.p99_ms:.3f}",
                    f"±{stats.spread / 2:.1%}",
                    str(stats.runs),
                    f"{stats.throughput:,.0f}",
                    ratio(stats.p50_ms, base.latency[batch].p50_ms),
                ]
            )
    table.notes.append(
        "spread: half the inter-quartile range, relative to the median. " + environment_note(measurement)
    )
    return table


def footprint_table(measurement: Measurement) -> Table:
    table = Table("Footprint", ["model", "format", "size", "vs first", "params", "peak memory", "backend"])
    base = measurement.models[0]
    for report in measurement.models:
        table.add(
            [
                report.label,
                report.format,
                format_size(report.size_bytes),
                ratio(report.size_bytes, base.size_bytes),
                _params(report),
                "-" if report.peak_memory_bytes is None else format_size(report.peak_memory_bytes),
                report.backend,
            ]
        )
    return table


def tradeoff_table(measurement: Measurement) -> Table:
    """The compare table: size, latency and quality of each model, with ratios to the base."""
    batches = measurement.settings["batches"]
    columns = ["model", "size", "size vs base"]
    for batch in batches:
        columns += [f"p50 b{batch} ms", f"b{batch} vs base"]
    has_accuracy = any(r.accuracy is not None for r in measurement.models)
    if has_accuracy:
        columns += ["accuracy", "Δ accuracy"]
    columns += ["cosine (mean/min)", "top-1 agree"]
    table = Table("Trade-off", columns)
    base = measurement.models[0]
    for index, report in enumerate(measurement.models):
        row = [
            report.label + (" (base)" if index == 0 else ""),
            format_size(report.size_bytes),
            ratio(report.size_bytes, base.size_bytes),
        ]
        for batch in batches:
            stats = report.latency.get(batch)
            base_stats = base.latency.get(batch)
            row += [
                f"{stats.p50_ms:.3f}" if stats else "-",
                ratio(stats.p50_ms if stats else None, base_stats.p50_ms if base_stats else None),
            ]
        if has_accuracy:
            row += _accuracy_cells(report, base)
        row += _fidelity_cells(report, index)
        table.add(row, style=_style(report, base))
    source = f"on {measurement.dataset}" if measurement.dataset else "on generated inputs"
    table.notes.append(
        f"Quality measured {source}; fidelity compares each model's first floating-point output with the base's."
    )
    table.notes.append(environment_note(measurement))
    return table


def _accuracy_cells(report: ModelReport, base: ModelReport) -> list[str]:
    if report.accuracy is None:
        return ["-", "-"]
    delta = "" if base.accuracy is None else f"{(report.accuracy - base.accuracy) * 100:+.2f} pt"
    return [f"{report.accuracy:.2%}", delta]


def _fidelity_cells(report: ModelReport, index: int) -> list[str]:
    if index == 0:
        return ["1 (base)", "-"]
    fid = report.fidelity
    if fid is None:
        return ["-", "-"]
    top1 = "-" if fid.top1_agreement is None else f"{fid.top1_agreement:.2%}"
    return [f"{fid.cosine_mean:.4f}/{fid.cosine_min:.4f}", top1]


def _style(report: ModelReport, base: ModelReport) -> str:
    if report is base or report.accuracy is None or base.accuracy is None:
        return ""
    return "bad" if report.accuracy < base.accuracy - 0.01 else ""
