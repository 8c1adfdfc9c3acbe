"""Tables for an optimize run: every trial, and the verdict (the best model, or the closest misses)."""

from __future__ import annotations

from compressor.parsing import format_size
from compressor.report.measurement import ratio
from compressor.report.table import Table
from compressor.search.trials import MEETS, OptimizeResult, Trial


def _quality(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _latency(trial: Trial, batch: int) -> str:
    stats = trial.latency.get(batch)
    return "-" if stats is None else f"{stats.p50_ms:.3f}"


def trials_table(result: OptimizeResult) -> Table:
    batch = result.settings["objective_batch"]
    base = result.baseline
    base_latency = base.latency[batch].p50_ms if batch in base.latency else None
    metric = result.settings["metric"]
    table = Table(
        "Trials",
        ["#", "candidate", "status", metric, "drop", "size", "size vs base", f"p50 b{batch} ms", "latency vs base",
         "front", "note"],
    )  # fmt: skip
    for trial in [base, *result.trials]:
        latency = trial.latency.get(batch)
        marks = ("best " if trial.index == result.best else "") + ("pareto" if trial.index in result.front else "")
        table.add(
            [
                str(trial.index),
                trial.label,
                trial.status + (" (cached)" if trial.cached else ""),
                _quality(trial.quality),
                "-" if trial.drop is None else f"{trial.drop:+.4f}",
                format_size(trial.size_bytes) if trial.size_bytes else "-",
                ratio(trial.size_bytes, base.size_bytes),
                _latency(trial, batch),
                ratio(latency.p50_ms if latency else None, base_latency),
                marks.strip() or "-",
                trial.error or trial.note or "-",
            ],
            style="good" if trial.index == result.best else ("bad" if trial.status != MEETS else ""),
        )
    max_drop = result.settings["max_drop"]
    table.notes.append(
        f"Constraint: {metric} may drop by at most {max_drop:.4g}; objective: {result.settings['objective']} at batch "
        f"{batch}. Candidates were built and scored first; then every built model was timed one at a time, "
        "interleaved, with nothing else running."
    )
    if result.stopped:
        table.notes.append(f"Search stopped early: {result.stopped}.")
    return table


def verdict_table(result: OptimizeResult) -> Table:
    batch = result.settings["objective_batch"]
    base = result.baseline
    if result.best is not None:
        chosen = result.trial(result.best)
        table = Table("Best model meeting the constraint", ["", "baseline", "chosen", "ratio"])
        rows = [
            ("candidate", "baseline", chosen.label, ""),
            (result.settings["metric"], _quality(base.quality), _quality(chosen.quality), ""),
            ("size", format_size(base.size_bytes or 0), format_size(chosen.size_bytes or 0),
             ratio(chosen.size_bytes, base.size_bytes)),
            (f"p50 b{batch} ms", _latency(base, batch), _latency(chosen, batch),
             ratio(chosen.latency[batch].p50_ms if batch in chosen.latency else None,
                   base.latency[batch].p50_ms if batch in base.latency else None)),
        ]  # fmt: skip
        for row in rows:
            table.add(list(row))
        return table
    if result.verdict:
        table = Table(f"Nothing chosen: {result.verdict}", ["#", "candidate", "drop", "size", "note"])
        for trial in [t for t in result.trials if t.status == MEETS][:3]:
            table.add([str(trial.index), trial.label, f"{trial.drop:+.4f}", format_size(trial.size_bytes or 0),
                       trial.note or "-"])  # fmt: skip
        return table
    table = Table("No candidate meets the constraint: the closest", ["#", "candidate", "drop", "size", "note"])
    for trial in result.closest():
        table.add([str(trial.index), trial.label, f"{trial.drop:+.4f}", format_size(trial.size_bytes or 0),
                   trial.note or "-"], style="bad")  # fmt: skip
    return table
