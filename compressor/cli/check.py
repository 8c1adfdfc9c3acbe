"""``compressor check MODEL...``: the gate. Budgets and a baseline, from flags and pyproject.toml; exit 1 if broken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from compressor.check import RunSettings, baseline_path, resolve_model, run_checks
from compressor.cli import console
from compressor.cli.options import device_options, json_option, loader_options, model_options
from compressor.config import DEFAULT_HISTORY, MODEL_KEYS, ProjectConfig, load_config
from compressor.errors import UsageError
from compressor.measure.latency import LatencyPlan
from compressor.measure.runner import RunOptions
from compressor.outputs import write_text_atomic
from compressor.report.envelope import dumps, envelope
from compressor.report.gate import check_junit, check_markdown, check_tables, summary_line
from compressor.report.writers import check_report_path

#: Command-line budget options and the pyproject key each one overrides.
_MODEL_FLAGS = {
    "max_size": "max-size",
    "max_params": "max-params",
    "max_latency_ms": "max-latency-ms",
    "min_accuracy": "min-accuracy",
    "min_fidelity": "min-fidelity",
    "batch": "batch",
    "data": "data",
    "reference": "reference",
    "time_models": "latency",
}


@click.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--max-size", metavar="SIZE", help="Largest size on disk (external data included): 25MB, 512KiB, 1.5GB.")
@click.option("--max-params", metavar="N", help="Most parameters: 5000000 or 5M.")
@click.option("--max-latency-ms", type=float, metavar="MS", help="Largest median latency at --batch, in ms.")
@click.option("--min-accuracy", metavar="X", help="Lowest accuracy on the labelled --data: 0.98 or 98%.")
@click.option("--min-fidelity", metavar="X", help="Lowest mean cosine similarity of the outputs to --reference's.")
@click.option("--data", default=None, help="Labelled dataset for accuracy (and inputs for fidelity).")
@click.option("--reference", metavar="REF", default=None, help="Reference model that fidelity is measured against.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size latency is timed at (default 1).")
@click.option(
    "--latency/--no-latency",
    "time_models",
    default=None,
    help="Time the models even without a latency budget (to keep latency in the baseline or history).",
)
@click.option(
    "--baseline",
    "baseline_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Compare each metric with this baseline file (e.g. compressor-baseline.json).",
)
@click.option(
    "--max-regression",
    multiple=True,
    metavar="[METRIC=]PCT",
    help="Largest allowed regression against the baseline: 5% (the default), or per metric: latency=10%,size=0%.",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Write the measured metrics to the baseline (default compressor-baseline.json) instead of comparing.",
)
@click.option("--record/--no-record", default=None, help="Append the measurements to the history store.")
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"History store for --record (default {DEFAULT_HISTORY} in the project root).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Read [tool.compressor.check] from this file instead of the nearest pyproject.toml.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write FILE.md (a pull-request comment) or FILE.json.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write FILE.xml in JUnit format, one test case per check.",
)
@click.option("--min-runs", type=click.IntRange(min=1), default=None, help="Timed runs per model, at least (30).")
@click.option("--min-time", type=click.FloatRange(min=0), default=None, help="Seconds of timed runs, at least (1.0).")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Untimed runs first (5).")
@model_options
@device_options
@json_option
@click.pass_context
def check(
    ctx: click.Context,
    models: tuple[str, ...],
    baseline_file: Path | None,
    max_regression: tuple[str, ...],
    update_baseline: bool,
    record: bool | None,
    history_path: Path | None,
    config_path: Path | None,
    report_path: Path | None,
    junit_path: Path | None,
    as_json: bool,
    **params: Any,
) -> int:
    """Check MODELS against budgets and a baseline; exit 1 when any is broken.

    Defaults come from [tool.compressor.check] in the nearest pyproject.toml (per-model sections by glob);
    flags override them. Size and parameter budgets run no model; latency, accuracy and fidelity do.
    """
    if report_path is not None:
        check_report_path(report_path)
    if junit_path is not None:
        check_report_path(junit_path, (".xml",))
    config = load_config(config_path)
    flags = _model_flags(params, max_regression)
    loader = loader_options(params)
    run = RunSettings(
        run=RunOptions(
            device=_run_value(ctx, config, params, "device", "device", "cpu"),
            threads=_run_value(ctx, config, params, "threads", "threads", 0),
        ),
        plan=_plan(config, params),
        loader=loader,
        baseline=baseline_path(baseline_file, config, update_baseline),
        update_baseline=update_baseline,
        history=_history(config, record, history_path),
    )
    settings = [resolve_model(model, config, flags) for model in models]
    outcome = run_checks(settings, run, config, info=console.info)
    code = outcome.exit_code
    result = outcome.to_dict()
    if report_path is not None:
        if report_path.suffix.lower() == ".md":
            write_text_atomic(report_path, check_markdown(outcome))
        else:
            write_text_atomic(report_path, dumps(envelope("check", result, code)))
        console.info(f"report written to {report_path}")
    if junit_path is not None:
        write_text_atomic(junit_path, check_junit(outcome))
        console.info(f"JUnit report written to {junit_path}")
    if as_json:
        console.print_json("check", result, code)
    else:
        console.print_tables(check_tables(outcome))
    if outcome.passed:
        console.info(f"check passed: {summary_line(outcome)}")
    else:
        for line in outcome.failures():
            console.err.print(f"check failed: {line}", style="bold red", highlight=False, markup=False)
    return int(code)


def _model_flags(params: dict[str, Any], max_regression: tuple[str, ...]) -> dict[str, Any]:
    """The per-model settings given on the command line, parsed like their pyproject keys."""
    flags: dict[str, Any] = {}
    for option, key in _MODEL_FLAGS.items():
        value = params.pop(option, None)
        if value is None:
            continue
        if option == "max_latency_ms" and value <= 0:
            raise UsageError(f"--max-latency-ms must be positive, got {value}")
        try:
            flags[key] = (
                MODEL_KEYS[key](value) if isinstance(value, str) and key not in ("data", "reference") else value
            )
        except UsageError as exc:
            raise UsageError(f"--{key}: {exc.message}") from None
    if max_regression:
        flags["max-regression"] = MODEL_KEYS["max-regression"](",".join(max_regression))
    return flags


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)


def _run_value(
    ctx: click.Context, config: ProjectConfig, params: dict[str, Any], option: str, key: str, default: Any
) -> Any:
    value = params.pop(option)
    if _given(ctx, option):
        return value
    return config.run_value(key, default)


def _plan(config: ProjectConfig, params: dict[str, Any]) -> LatencyPlan:
    defaults = LatencyPlan()

    def pick(option: str, key: str, default: Any) -> Any:
        value = params.pop(option)
        return value if value is not None else config.run_value(key, default)

    return LatencyPlan(
        warmup_runs=pick("warmup", "warmup", defaults.warmup_runs),
        min_runs=pick("min_runs", "min-runs", defaults.min_runs),
        min_seconds=pick("min_time", "min-time", defaults.min_seconds),
    )


def _history(config: ProjectConfig, record: bool | None, path: Path | None) -> Path | None:
    """The store to record into, or None when not recording (``--record`` or ``record = true``)."""
    if not (record if record is not None else config.run_value("record", False)):
        return None
    if path is not None:
        return path
    return config.resolve(config.run_value("history", DEFAULT_HISTORY))
