"""``compressor history [MODEL...]``: the recorded trend of each metric, with anomaly alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from compressor.cli import console
from compressor.cli.options import json_option
from compressor.config import DEFAULT_HISTORY, load_config, model_key
from compressor.errors import ExitCode, HistoryError, UsageError
from compressor.gate import display_metric, metric_family
from compressor.history import HistoryStore, Trend, trends
from compressor.report.table import Table

SPARKS = "▁▂▃▄▅▆▇█"


@click.command()
@click.argument("models", nargs=-1, metavar="[MODEL...]")
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"History store (default: history = in pyproject.toml, else {DEFAULT_HISTORY} in the project root).",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="pyproject.toml to read.")
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="Points shown per metric.")
@click.option(
    "--metric", "metrics", multiple=True, help="Only this metric (size, params, latency@b1, ...); repeatable."
)
@click.option(
    "--fail-on-anomaly",
    is_flag=True,
    help="Exit 1 when the latest point of a metric is an anomaly for the worse.",
)
@json_option
def history(
    models: tuple[str, ...],
    history_path: Path | None,
    config_path: Path | None,
    last: int,
    metrics: tuple[str, ...],
    fail_on_anomaly: bool,
    as_json: bool,
) -> int:
    """Show the recorded trend of each metric of MODELS and flag points outside their usual spread.

    Without MODEL, list the models in the store. Points are recorded by `compressor check --record`.
    """
    config = load_config(config_path)
    path = history_path or config.resolve(config.run_value("history", DEFAULT_HISTORY))
    with HistoryStore(path) as store:
        if not models:
            listing = store.models()
            if as_json:
                console.print_json("history", {"store": str(path), "models": listing})
            else:
                console.print_tables([_listing_table(path, listing)])
            return 0
        results = [_model_trends(store, config.root, model, metrics, last) for model in models]
    code = ExitCode.OK
    if fail_on_anomaly and any(t.latest.anomaly and t.latest.direction == "worse" for _, _, ts in results for t in ts):
        code = ExitCode.CONSTRAINT_NOT_MET
    alerts = [_alert(key, t, p) for key, _, ts in results for t in ts for p in t.alerts]
    result = {
        "store": str(path),
        "models": [
            {"model": key, "runs": runs, "metrics": {t.metric: t.to_dict() for t in ts}} for key, runs, ts in results
        ],
        "alerts": alerts,
    }
    if as_json:
        console.print_json("history", result, code)
    else:
        tables = [_trend_table(key, runs, path, ts) for key, runs, ts in results]
        if alerts:
            tables.append(_alerts_table(alerts))
        console.print_tables(tables)
    latest = [a for a in alerts if a["latest"]]
    for alert in latest:
        console.warn(
            f"{alert['model']}: latest {alert['metric']} {display_metric(alert['metric'], alert['value'])} is an "
            f"anomaly ({alert['direction']}; recent median {display_metric(alert['metric'], alert['expected'])})"
        )
    return int(code)


def _model_trends(
    store: HistoryStore, root: Path, model: str, metrics: tuple[str, ...], last: int
) -> tuple[str, int, list[Trend]]:
    # the model's key from its path; else the text as given (a key, for a model that no longer exists)
    keys = [model_key(model, root), model.replace("\\", "/").removeprefix("./")]
    key = next((k for k in keys if store.runs(k)), keys[0])
    runs = store.runs(key)
    if not runs:
        held = ", ".join(m["model"] for m in store.models()) or "no models"
        raise HistoryError(f"no history for '{key}' in {store.path} (it holds: {held})")
    found = trends(store.series(key), last)
    if metrics:
        known = {t.metric for t in found}
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise UsageError(
                f"--metric {unknown[0]}: '{key}' has no such metric. Its metrics: {', '.join(sorted(known))}"
            )
        found = [t for t in found if t.metric in metrics]
    return key, runs, found


def _alert(model: str, trend: Trend, point: Any) -> dict[str, Any]:
    return {
        "model": model,
        "metric": trend.metric,
        "run": point.run,
        "recorded_at": point.recorded_at,
        "commit": point.commit,
        "value": point.value,
        "expected": point.expected,
        "tolerance": point.tolerance,
        "direction": point.direction,
        "latest": point.run == trend.latest.run,
    }


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[3] * len(values)
    return "".join(SPARKS[round((v - low) / (high - low) * (len(SPARKS) - 1))] for v in values)


def _trend_table(key: str, runs: int, store: Path, found: list[Trend]) -> Table:
    table = Table(
        f"History of {key} ({runs} runs in {store})",
        ["metric", "runs", "latest", "recent median", "change", "min", "max", "trend", "alert"],
    )
    for trend in found:
        data = trend.to_dict()
        latest = trend.latest
        earlier = len(trend.alerts) - int(latest.anomaly)
        alert = f"ANOMALY ({latest.direction})" if latest.anomaly else ""
        if earlier:
            alert = ", ".join(filter(None, [alert, f"{earlier} earlier"]))
        table.add(
            [
                trend.metric,
                str(trend.runs),
                display_metric(trend.metric, latest.value),
                display_metric(trend.metric, latest.expected),
                "-" if data["change"] is None else f"{data['change']:+.1%}",
                display_metric(trend.metric, data["min"]),
                display_metric(trend.metric, data["max"]),
                sparkline([p.value for p in trend.points]),
                alert,
            ],
            style="bad" if latest.anomaly and latest.direction == "worse" else "",
        )
    table.notes.append(
        "An anomaly lies further from the median of the 10 runs before it than 3 robust standard deviations "
        "(1.4826 x MAD), the runs' own spread, and 1% of the median; at least 5 earlier runs are needed."
    )
    return table


def _alerts_table(alerts: list[dict[str, Any]]) -> Table:
    table = Table("Anomalies", ["model", "metric", "run", "recorded", "commit", "value", "expected", "direction"])
    for alert in alerts:
        metric = alert["metric"]
        table.add(
            [
                alert["model"],
                metric,
                str(alert["run"]),
                alert["recorded_at"][:19],
                alert["commit"] or "-",
                display_metric(metric, alert["value"]),
                f"{display_metric(metric, alert['expected'])} ± {_tolerance(metric, alert['tolerance'])}",
                alert["direction"] + (" (latest)" if alert["latest"] else ""),
            ],
            style="bad" if alert["direction"] == "worse" else "",
        )
    return table


def _tolerance(metric: str, value: float) -> str:
    return display_metric(metric, value) if metric_family(metric) not in ("accuracy",) else f"{value * 100:.2f} pt"


def _listing_table(store: Path, listing: list[dict[str, Any]]) -> Table:
    table = Table(f"Models in {store}", ["model", "runs", "first", "last"])
    for row in listing:
        table.add([row["model"], str(row["runs"]), row["first"][:19], row["last"][:19]])
    if not listing:
        table.notes.append("The store is empty: record with `compressor check --record`.")
    return table
