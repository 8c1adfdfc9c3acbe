"""``compressor inspect MODEL``: what a model is, without running it."""

from __future__ import annotations

from typing import Any

import click

from compressor.artifacts import Artifact, total_size
from compressor.cli import console
from compressor.cli.options import json_option, loader_options, model_options
from compressor.loaders import load_model
from compressor.measure.runner import runner_for
from compressor.parsing import format_size
from compressor.report.table import Table

TOP_OPS = 15


def describe(artifact: Artifact) -> dict[str, Any]:
    """Static description of a model: files, specs, stats, lineage."""
    stats = runner_for(artifact, "cpu").stats(artifact)
    return {
        "path": str(artifact.path),
        "format": artifact.format,
        "size_bytes": total_size(artifact.path),
        "inputs": [s.describe() for s in artifact.inputs],
        "outputs": [s.describe() for s in artifact.outputs],
        "stats": stats,
        "extra": artifact.extra,
        "lineage": [{"name": r.name, "config": r.config, "notes": list(r.notes)} for r in artifact.lineage],
    }


def tables(info: dict[str, Any]) -> list[Table]:
    stats = info["stats"]
    summary = Table(f"Model {info['path']}", ["property", "value"])
    summary.add(["format", info["format"]])
    summary.add(["size on disk", format_size(info["size_bytes"])])
    for key in ("params", "nodes"):
        if key in stats:
            summary.add([key, f"{stats[key]:,}"])
    for key, value in info["extra"].items():
        summary.add([key, str(value)])
    if "quantization" in stats:
        summary.add(["quantization", ", ".join(stats["quantization"])])
    if "weight_bytes_by_dtype" in stats:
        total = sum(stats["weight_bytes_by_dtype"].values()) or 1
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in stats["weight_bytes_by_dtype"].items())
        summary.add(["weights by dtype", shares])
    if "weight_sparsity" in stats:
        summary.add(["weight sparsity", f"{stats['weight_sparsity']:.1%}"])
    summary.add(["inputs", "; ".join(info["inputs"])])
    summary.add(["outputs", "; ".join(info["outputs"])])
    summary.add(["made by", " -> ".join(r["name"] for r in info["lineage"]) or "(not by compressor)"])
    result = [summary]
    if stats.get("ops"):
        ops = Table("Ops", ["op", "count"])
        for op, count in list(stats["ops"].items())[:TOP_OPS]:
            ops.add([op, str(count)])
        if len(stats["ops"]) > TOP_OPS:
            ops.notes.append(f"... and {len(stats['ops']) - TOP_OPS} more op types")
        result.append(ops)
    return result


@click.command()
@click.argument("model")
@model_options
@json_option
def inspect(model: str, as_json: bool, **params: Any) -> int:
    """Describe MODEL: format, size, parameters, ops, inputs, outputs and how it was made."""
    info = describe(load_model(model, loader_options(params)))
    if as_json:
        console.print_json("inspect", info)
    else:
        console.print_tables(tables(info))
    return 0
