"""``compressor compare BASE CANDIDATE ...``: the trade-off table, each model against the base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from compressor.cli import console
from compressor.cli.options import (
    device_options,
    json_option,
    latency_options,
    loader_options,
    measure_settings,
    model_options,
    run_options,
    timeout_option,
)
from compressor.data import load_dataset
from compressor.loaders import load_model
from compressor.measure.suite import Measurement, measure_models
from compressor.report.measurement import footprint_table, tradeoff_table
from compressor.report.writers import REPORT_SUFFIXES, check_report_path, write_report


@click.command()
@click.argument("base")
@click.argument("candidates", nargs=-1, required=True)
@click.option("--data", default=None, help="Dataset for accuracy (with labels) and fidelity; else generated inputs.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the result to FILE.md, FILE.json or FILE.html (a trade-off plot and sortable tables).",
)
@model_options
@device_options
@latency_options
@timeout_option
@json_option
def compare(
    base: str,
    candidates: tuple[str, ...],
    data: str | None,
    report_path: Path | None,
    as_json: bool,
    **params: Any,
) -> int:
    """Compare CANDIDATES with BASE: size, latency, accuracy and fidelity, with ratios to BASE."""
    if report_path is not None:
        check_report_path(report_path, (*REPORT_SUFFIXES, ".html"))
    options = loader_options(params)
    labels = [base, *candidates]
    artifacts = [load_model(m, options) for m in labels]
    dataset = load_dataset(data, artifacts[0]) if data else None
    settings = measure_settings(params, run_options(params), options.shapes)
    console.info(
        f"measuring {len(artifacts)} models (quality, then latency at batch {','.join(map(str, settings.batches))}) ..."
    )
    measurement = measure_models(artifacts, settings, dataset, labels=labels)
    if report_path is not None:
        write_report(
            report_path,
            "compare",
            measurement.to_dict(),
            tables(measurement),
            "compressor compare",
            html=_html(measurement),
        )
        console.info(f"report written to {report_path}")
    if as_json:
        console.print_json("compare", measurement.to_dict())
    else:
        console.print_tables(tables(measurement))
    return 0


def tables(measurement: Measurement) -> list:  # type: ignore[type-arg]
    return [tradeoff_table(measurement), footprint_table(measurement)]


def _html(measurement: Measurement):  # type: ignore[no-untyped-def]
    def write(path: Path) -> None:
        from compressor.report.html import write_compare_html

        write_compare_html(measurement, path)

    return write
