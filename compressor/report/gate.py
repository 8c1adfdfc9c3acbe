"""Rendering of gate results: the budget and baseline tables, the pull-request Markdown, the JUnit cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from compressor.gate import BudgetResult, RegressionResult, display_metric, latency_metric
from compressor.report.table import Table, to_markdown

if TYPE_CHECKING:
    from compressor.check import CheckOutcome, ModelOutcome
    from compressor.report.junit import JUnitCase

#: First line of the Markdown report, so a CI job can find and update its earlier pull-request comment.
MARKDOWN_MARKER = "<!-- compressor-check -->"
NOISE_NOTE = (
    "Latency: a difference of medians no larger than the noise band (the mean of the two runs' "
    "inter-quartile ranges) is within noise and never a regression."
)


def budget_table(results: list[BudgetResult], models: list[str] | None = None) -> Table:
    """Every budget with its measured value, limit, margin and PASS/FAIL; a model column when ``models``."""
    columns = ["budget", "measured", "limit", "margin", "result"]
    table = Table("Budgets", ["model", *columns] if models is not None else columns)
    for index, result in enumerate(results):
        margin = "-" if result.margin is None else f"{result.margin:+.1%}"
        row = [result.name, result.display_measured, result.display_limit, margin, "PASS" if result.passed else "FAIL"]
        table.add([models[index], *row] if models is not None else row, style="good" if result.passed else "bad")
    return table


def regression_table(rows: list[tuple[str, RegressionResult]], baseline: str) -> Table:
    table = Table(
        f"Baseline {baseline}", ["model", "metric", "baseline", "measured", "change", "allowed", "result", "note"]
    )
    for model, reg in rows:
        change = "-" if reg.change is None else f"{reg.change:+.1%}"
        style = "" if reg.status == "skip" else "good" if reg.passed else "bad"
        table.add(
            [
                model,
                reg.metric,
                display_metric(reg.metric, reg.baseline),
                display_metric(reg.metric, reg.measured),
                change,
                f"{reg.allowed:.1%}",
                reg.display_result,
                reg.note,
            ],
            style=style,
        )
    table.notes.append("change: relative to the baseline value, + is worse. " + NOISE_NOTE)
    return table


def models_table(outcomes: list[ModelOutcome]) -> Table:
    """What was measured for each model."""
    table = Table("Models", ["model", "size", "params", "p50 latency", "spread (IQR)", "accuracy", "fidelity"])
    for outcome in outcomes:
        metrics = outcome.metrics
        latency = metrics.get(latency_metric(outcome.settings.batch))
        table.add(
            [
                outcome.settings.model,
                display_metric("size", metrics["size"].value),
                display_metric("params", metrics["params"].value) if "params" in metrics else "-",
                f"{display_metric('latency', latency.value)} @b{outcome.settings.batch}" if latency else "-",
                display_metric("latency", latency.spread) if latency else "-",
                display_metric("accuracy", metrics["accuracy"].value) if "accuracy" in metrics else "-",
                display_metric("fidelity", metrics["fidelity"].value) if "fidelity" in metrics else "-",
            ]
        )
    environment = next((o.environment for o in outcomes if o.environment), None)
    if environment:
        table.notes.append(
            f"Measured on {environment['cpu']}, {environment['threads']} threads, device {environment['device']}."
        )
    return table


def check_tables(outcome: CheckOutcome) -> list[Table]:
    tables = [models_table(outcome.models)]
    budgets = [(m.settings.model, b) for m in outcome.models for b in m.budgets]
    if budgets:
        tables.append(budget_table([b for _, b in budgets], [name for name, _ in budgets]))
    regressions = [(m.settings.model, r) for m in outcome.models for r in m.regressions or []]
    if regressions and outcome.baseline:
        tables.append(regression_table(regressions, outcome.baseline["path"]))
    return tables


def summary_line(outcome: CheckOutcome) -> str:
    failed, total = outcome.counts()
    models = f"{len(outcome.models)} model{'s' if len(outcome.models) != 1 else ''}"
    if failed:
        return f"{failed} of {total} checks failed ({models}): " + "; ".join(outcome.failures())
    return f"all {total} checks passed ({models})"


def check_markdown(outcome: CheckOutcome) -> str:
    """The pull-request comment: a marker line, the verdict, a summary, then the tables."""
    verdict = "PASS" if outcome.passed else "FAIL"
    head = f"{MARKDOWN_MARKER}\n## compressor check: {verdict}\n\n{summary_line(outcome)}\n\n"
    return head + to_markdown(check_tables(outcome))


def check_junit(outcome: CheckOutcome) -> str:
    """One test suite per model, one test case per budget and per baseline metric."""
    from compressor.report.junit import JUnitCase, junit_xml

    suites: dict[str, list[JUnitCase]] = {}
    for model in outcome.models:
        classname = f"compressor.check.{model.settings.key}"
        cases = []
        for budget in model.budgets:
            details = f"measured {budget.display_measured}, limit {budget.display_limit}"
            if budget.margin is not None:
                details += f", margin {budget.margin:+.1%}"
            failure = None if budget.passed else f"{budget.name}: {details}"
            cases.append(JUnitCase(budget.name, classname, failure=failure, details=details))
        for reg in model.regressions or []:
            change = "unknown" if reg.change is None else f"{reg.change:+.1%}"
            details = (
                f"baseline {display_metric(reg.metric, reg.baseline)}, measured "
                f"{display_metric(reg.metric, reg.measured)}, change {change}, allowed {reg.allowed:.1%}"
                + (f"; {reg.note}" if reg.note else "")
            )
            name = f"baseline {reg.metric}"
            if reg.status == "skip":
                cases.append(JUnitCase(name, classname, skipped=reg.note or "not compared"))
            else:
                failure = None if reg.passed else f"{reg.metric} regressed: {details}"
                cases.append(JUnitCase(name, classname, failure=failure, details=details))
        if cases:
            cases[0] = _with_seconds(cases[0], model.seconds)
        suites[model.settings.key] = cases
    return junit_xml("compressor check", suites, sum(m.seconds for m in outcome.models))


def _with_seconds(case: JUnitCase, seconds: float) -> JUnitCase:
    import dataclasses

    return dataclasses.replace(case, seconds=seconds)
