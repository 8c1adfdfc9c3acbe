"""``compressor trt-check`` and ``compressor trt-build``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from compressor.cli import console
from compressor.cli.options import json_option, loader_options, model_options
from compressor.errors import ExitCode, InputError, UsageError
from compressor.loaders import load_model
from compressor.parsing import parse_assignments, parse_shape
from compressor.report.table import Table

#: Findings of one rule shown in the terminal before "... and N more" (JSON lists all).
SHOWN_PER_RULE = 5


def parse_profiles(items: tuple[str, ...]) -> dict[str, dict[str, list[int]]]:
    """``input=1x3x8x8:8x3x8x8:32x3x8x8`` -> {"input": {"min": [...], "opt": [...], "max": [...]}}."""
    profiles = {}
    for name, value in parse_assignments(items, "profile").items():
        parts = value.split(":")
        if len(parts) != 3:
            raise UsageError(f"--profile {name}={value}: give MIN:OPT:MAX shapes, e.g. {name}=1x8:8x8:32x8")
        profiles[name] = dict(zip(("min", "opt", "max"), (list(parse_shape(p)) for p in parts), strict=True))
    return profiles


def _onnx_path(model: str, params: dict[str, Any]) -> Path:
    artifact = load_model(model, loader_options(params))
    if artifact.format != "onnx":
        raise InputError(
            f"trt-check reads ONNX models; {model} is a '{artifact.format}' model",
            hint="convert it first, e.g. `compressor export MODEL -o model.onnx`",
        )
    return artifact.path


def findings_table(path: Path, findings: list[Any]) -> Table:
    errors = sum(f.severity == "error" for f in findings)
    verdict = "NOT READY" if errors else "READY"
    table = Table(f"TensorRT readiness of {path.name}: {verdict}", ["rule", "severity", "node", "op", "problem", "fix"])
    shown: Counter[str] = Counter()
    for finding in findings:
        shown[finding.rule] += 1
        if shown[finding.rule] <= SHOWN_PER_RULE:
            table.add(
                [finding.rule, finding.severity, finding.node, finding.op, finding.message, finding.fix],
                style="bad" if finding.severity == "error" else "",
            )
    if not findings:
        table.add(["-", "-", "-", "-", "no findings", "-"], style="good")
    for rule, count in shown.items():
        if count > SHOWN_PER_RULE:
            table.notes.append(f"{rule}: {count - SHOWN_PER_RULE} more findings (see --json)")
    table.notes.append(
        f"{errors} errors, {len(findings) - errors} warnings. Checked on the ONNX graph against "
        "TensorRT 10's rules; no GPU needed."
    )
    return table


@click.command("trt-check")
@click.argument("model")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME=MIN:OPT:MAX",
    help="Optimization-profile bounds for a dynamic input, e.g. input=1x1x8x8:8x1x8x8:64x1x8x8.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@model_options
@json_option
def trt_check(model: str, profiles: tuple[str, ...], strict: bool, as_json: bool, **params: Any) -> int:
    """Check that MODEL (ONNX) is ready for TensorRT, without a GPU: each finding with its rule, node and fix."""
    from compressor_tensorrt.rules import check_model

    bounds = parse_profiles(profiles)
    path = _onnx_path(model, params)
    findings, used = check_model(path, bounds)
    failing = [f for f in findings if f.severity == "error" or strict]
    code = ExitCode.CONSTRAINT_NOT_MET if failing else ExitCode.OK
    if as_json:
        result = {
            "model": str(path),
            "ready": not failing,
            "findings": [f.to_dict() for f in findings],
            "rules": {k: {"severity": r.severity, "title": r.title} for k, r in _rules().items()},
            "profile": used,
        }
        console.print_json("trt-check", result, code)
    else:
        console.print_tables([findings_table(path, findings)])
    return int(code)


def _rules() -> dict[str, Any]:
    from compressor_tensorrt.rules import RULES

    return RULES


@click.command("trt-build")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The engine file to write.")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME=MIN:OPT:MAX",
    help="Optimization-profile bounds (default: those recorded by --format tensorrt).",
)
@model_options
@json_option
def trt_build(model: str, output: Path, profiles: tuple[str, ...], as_json: bool, **params: Any) -> int:
    """Build a strongly typed TensorRT engine from MODEL (needs an NVIDIA GPU and the tensorrt package)."""
    from compressor_tensorrt.engine import build_engine
    from compressor_tensorrt.rules import check_model

    path = _onnx_path(model, params)
    findings, bounds = check_model(path, parse_profiles(profiles))
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        listed = ", ".join(sorted({f.rule for f in errors}))
        raise InputError(f"{path.name} is not TensorRT-ready ({listed})", hint=f"run `compressor trt-check {model}`")
    result = build_engine(path, output, bounds)
    if as_json:
        console.print_json("trt-build", result)
    else:
        console.info(f"wrote {output} ({result['engine_bytes']:,} bytes, TensorRT {result['tensorrt']})")
    return 0
