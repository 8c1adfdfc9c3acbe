"""``compressor bench MODEL [MODEL ...]``: latency and memory, side by side, interleaved."""

from __future__ import annotations

import dataclasses
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
from compressor.measure.suite import measure_models
from compressor.report.measurement import footprint_table, latency_table


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--data", default=None, help="Take inputs from this dataset instead of generating them.")
@model_options
@device_options
@latency_options
@timeout_option
@json_option
def bench(models: tuple[str, ...], data: str | None, as_json: bool, **params: Any) -> int:
    """Time MODELS one at a time, interleaved, with ratios to the first."""
    options = loader_options(params)
    artifacts = [load_model(m, options) for m in models]
    dataset = load_dataset(data) if data else None
    settings = measure_settings(params, run_options(params), options.shapes)
    settings = dataclasses.replace(settings, quality=False)
    console.info(f"timing {len(artifacts)} model(s) at batch {','.join(map(str, settings.batches))} ...")
    measurement = measure_models(artifacts, settings, dataset, labels=list(models))
    if as_json:
        console.print_json("bench", measurement.to_dict())
    else:
        console.print_tables([footprint_table(measurement), latency_table(measurement)])
    return 0
