"""``compressor export``, ``compressor prune`` and ``compressor distill``: torch passes from the command line.

Each command builds a list of passes, runs it through the core's verified, atomic ``compress`` flow, and renders
the shared step table plus what pruning changed. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from compressor.artifacts import Artifact
from compressor.cli import console
from compressor.cli.options import (
    device_options,
    json_option,
    loader_options,
    model_options,
    run_options,
    timeout_option,
)
from compressor.cli.results import compressed_result, compressed_tables
from compressor.data import load_dataset
from compressor.errors import RecipeError, UsageError
from compressor.loaders import load_model
from compressor.outputs import check_output_path
from compressor.parsing import parse_duration, parse_name_list
from compressor.pipeline import Step, make_steps
from compressor.pyref import is_reference
from compressor.report.measurement import ratio
from compressor.report.table import Table
from compressor.workflow import Compressed, compress
from compressor_torch.prune import IMPORTANCES

METHODS = {"magnitude": "prune.magnitude", "structured": "prune.structured", "2:4": "prune.nm"}
#: Options of `prune` that only some methods take: option -> methods.
METHOD_OPTIONS = {"importance": ("structured",), "round_to": ("structured",)}


def _steps(specs: list[tuple[str, dict[str, Any]]], command: str) -> list[Step]:
    try:
        return make_steps(specs)
    except RecipeError as exc:  # the configs come from this command's options: a bad option value
        raise UsageError(exc.message, hint=f"see compressor {command} --help") from None


def _torch_source(model: str, params: dict[str, Any], command: str) -> tuple[Artifact, Any, Any]:
    options = loader_options(params)
    run = run_options(params)
    if options.weights is not None and not is_reference(model):
        raise UsageError(
            f"--weights applies to module.py:factory models; {model} carries its own weights",
            hint="give the architecture as module.py:factory and the state dict with --weights",
        )
    source = load_model(model, options)
    if source.format != "torch":
        raise UsageError(
            f"{model} is a '{source.format}' model; `compressor {command}` works on torch models",
            hint="give a module.py:factory (with --weights), a TorchScript .pt/.ts, a .pt2 program or a torch folder",
        )
    return source, options, run


def _model_path(ref: str) -> Path:
    return Path(ref.rpartition(":")[0] if is_reference(ref) else ref)


def _finish(command: str, done: Compressed, as_json: bool) -> int:
    if as_json:
        console.print_json(command, compressed_result(done))
    else:
        console.print_tables([*compressed_tables(done), *pruning_tables(done)])
    return 0


def pruning_tables(done: Compressed) -> list[Table]:
    """What pruning changed: parameters and MACs (structured), sparsity per layer (magnitude, N:M)."""
    tables = []
    for step in done.pipeline.steps:
        metrics = step.metrics
        if step.name == "prune.structured":
            table = Table("Structured pruning", ["", "before", "after", "after / before"])
            for label, key in (("parameters", "params"), ("MACs per sample", "macs")):
                before, after = metrics[f"{key}_before"], metrics[f"{key}_after"]
                table.add([label, f"{before:,}", f"{after:,}", ratio(after, before)])
            changed = [f"{n} {b}->{a}" for n, (b, a) in metrics["layers"].items() if a != b]
            table.notes.append("widths (out channels / features): " + (", ".join(changed) or "unchanged"))
            table.notes.append(
                "MACs are counted, not timed: compare the exported models with `compressor compare` for latency"
            )
            tables.append(table)
        elif step.name in ("prune.magnitude", "prune.nm"):
            table = Table(f"Sparsity by layer ({step.name})", ["layer", "weights", "zero"])
            for name, layer in metrics["layers"].items():
                table.add([name, f"{layer['numel']:,}", f"{layer['sparsity']:.1%}"])
            tables.append(table)
    return tables


# --- export ---------------------------------------------------------------------------------------------------


@click.command("export")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output FILE.onnx (or a folder).")
@click.option(
    "--exporter",
    type=click.Choice(["auto", "dynamo", "legacy"]),
    default="auto",
    show_default=True,
    help="auto: the dynamo exporter, falling back to the legacy one when it fails.",
)
@click.option("--opset", type=click.IntRange(min=7), default=None, help="ONNX opset (default: the exporter's).")
@click.option("--static-batch", is_flag=True, help="Fix the batch size instead of a symbolic batch axis.")
@click.option("--atol", type=click.FloatRange(min=0), default=None, help="Tolerance of the output check (1e-4).")
@click.option("--rtol", type=click.FloatRange(min=0), default=None, help="Relative tolerance (1e-3).")
@click.option("--data", default=None, help="Samples for the example inputs and the output check.")
@model_options
@device_options
@timeout_option
@json_option
def export(
    model: str,
    output: Path,
    exporter: str,
    opset: int | None,
    static_batch: bool,
    atol: float | None,
    rtol: float | None,
    data: str | None,
    as_json: bool,
    **params: Any,
) -> int:
    """Export a torch MODEL to ONNX at OUTPUT, checked against torch on the same inputs."""
    config: dict[str, Any] = {"exporter": exporter, "dynamic_batch": not static_batch}
    for key, value in (("opset", opset), ("atol", atol), ("rtol", rtol)):
        if value is not None:
            config[key] = value
    steps = _steps([("convert.onnx", config)], "export")
    source, options, run = _torch_source(model, params, "export")
    dataset = load_dataset(data, source) if data else None
    done = compress(source, steps, output, dataset, options, run, console.info, console.progress)
    return _finish("export", done, as_json)


# --- prune ------------------------------------------------------------------------------------------------------


def prune_specs(method: str, given: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The pass list for ``compressor prune``; an option foreign to the method is a usage error."""
    for option, methods in METHOD_OPTIONS.items():
        if given.get(option) is not None and method not in methods:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} does not apply to --method {method} (it applies to: {', '.join(methods)})")
    sparsity, keep = given.get("sparsity"), parse_name_list(given.get("keep"))
    if method == "2:4":
        if sparsity is not None and sparsity != 0.5:
            raise UsageError("--method 2:4 zeroes exactly 2 of every 4 weights (sparsity 0.5): leave out --sparsity")
        if given.get("scope") is not None:
            raise UsageError("--scope does not apply to --method 2:4 (the pattern is per group of 4 weights)")
        config: dict[str, Any] = {"exclude": keep}
    elif method == "magnitude":
        config = {"sparsity": sparsity or 0.5, "scope": given.get("scope") or "global", "exclude": keep}
    else:
        config = {
            "ratio": sparsity or 0.5,
            "importance": given.get("importance") or "auto",
            "global_pruning": given.get("scope") == "global",
            "keep": keep,
        }
        if given.get("round_to") is not None:
            config["round_to"] = given["round_to"]
    specs = [(METHODS[method], config)]
    recover = given.get("recover")
    training = {k: given.get(k) for k in ("epochs", "max_time", "teacher")}
    if recover is None:
        used = [f"--{k.replace('_', '-')}" for k, v in training.items() if v is not None]
        if used:
            raise UsageError(f"{', '.join(used)} only apply with --recover finetune|distill")
        return specs
    if not given.get("data"):
        raise UsageError(f"--recover {recover} trains the pruned model: pass --data FILE.npz")
    if recover == "finetune" and training["teacher"]:
        raise UsageError("--teacher applies to --recover distill")
    recovery: dict[str, Any] = {}
    if training["epochs"]:
        recovery["epochs"] = training["epochs"]
    if training["max_time"]:
        recovery["max_seconds"] = parse_duration(training["max_time"])
    if training["teacher"]:
        recovery["teacher"] = training["teacher"]
    specs.append((recover, recovery))
    return specs


@click.command("prune")
@click.argument("model")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (a torch model), or FILE.onnx to export the pruned model too.",
)
@click.option("--method", type=click.Choice(list(METHODS)), default="structured", show_default=True)
@click.option(
    "--sparsity",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="magnitude: share of weights zeroed; structured: share of channels removed per layer (0.5).",
)
@click.option(
    "--scope",
    type=click.Choice(["global", "layer"]),
    default=None,
    help="magnitude: one threshold over all layers (global, default) or per layer; structured: rank "
    "channels across layers (global) or remove the same share from each (layer, default).",
)
@click.option(
    "--importance",
    type=click.Choice(IMPORTANCES),
    default=None,
    help="structured: channel ranking (auto: taylor with --data, else l2).",
)
@click.option("--keep", default=None, metavar="L1,L2", help="Layers to leave unpruned (shell patterns).")
@click.option(
    "--round-to", type=click.IntRange(min=1), default=None, help="structured: widths to multiples of N (16; 1: exact)."
)
@click.option("--recover", type=click.Choice(["finetune", "distill"]), default=None, help="Train after pruning.")
@click.option("--data", default=None, help="Training data for --recover (and example inputs).")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Recovery epochs at most (finetune 10, distill 30)."
)
@click.option("--max-time", default=None, metavar="DURATION", help="Recovery time budget, e.g. 90s, 5m.")
@click.option("--teacher", default=None, help="--recover distill: the teacher (default: MODEL before pruning).")
@model_options
@device_options
@timeout_option
@json_option
def prune(model: str, output: Path, method: str, as_json: bool, **params: Any) -> int:
    """Prune a torch MODEL and write the result to OUTPUT, verified against MODEL."""
    given = {k: params.pop(k) for k in list(params) if k in PRUNE_KEYS}
    specs = prune_specs(method, given)
    if output.suffix == ".onnx":
        specs.append(("convert.onnx", {}))
    steps = _steps(specs, "prune")
    source, options, run = _torch_source(model, params, "prune")
    if given.get("teacher"):
        check_output_path(output, [_model_path(given["teacher"])])
    dataset = load_dataset(given["data"], source) if given.get("data") else None
    done = compress(source, steps, output, dataset, options, run, console.info, console.progress)
    return _finish("prune", done, as_json)


PRUNE_KEYS = ("sparsity", "scope", "importance", "keep", "round_to", "recover", "data", "epochs", "max_time", "teacher")


# --- distill ------------------------------------------------------------------------------------------------------


@click.command("distill")
@click.option("--teacher", required=True, help="The teacher: any model (torch, ONNX...).")
@click.option("--student", required=True, help="The student: module.py:factory (fresh, or --weights) or a torch model.")
@click.option("--data", required=True, help="Training data; labels optional (the teacher's outputs are the targets).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder, or FILE.onnx.")
@click.option("--teacher-weights", type=click.Path(path_type=Path), default=None, help="Weights of a factory teacher.")
@click.option(
    "--temperature", type=click.FloatRange(min=0, min_open=True), default=None, help="Softmax temperature (4)."
)
@click.option("--alpha", type=click.FloatRange(0, 1), default=None, help="Weight of the teacher loss vs labels (0.7).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs at most (30).")
@click.option("--max-time", default=None, metavar="DURATION", help="Time budget, e.g. 90s, 5m.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate (1e-3).")
@model_options
@device_options
@timeout_option
@json_option
def distill(
    teacher: str,
    student: str,
    data: str,
    output: Path,
    teacher_weights: Path | None,
    temperature: float | None,
    alpha: float | None,
    epochs: int | None,
    max_time: str | None,
    lr: float | None,
    as_json: bool,
    **params: Any,
) -> int:
    """Distill TEACHER into STUDENT on DATA and write the trained student to OUTPUT (--weights: the student's)."""
    config: dict[str, Any] = {"teacher": teacher}
    if teacher_weights is not None:
        config["teacher_weights"] = str(teacher_weights)
    for key, value in (("temperature", temperature), ("alpha", alpha), ("epochs", epochs), ("lr", lr)):
        if value is not None:
            config[key] = value
    if max_time:
        config["max_seconds"] = parse_duration(max_time)
    specs = [("distill", config)]
    if output.suffix == ".onnx":
        specs.append(("convert.onnx", {}))
    steps = _steps(specs, "distill")
    source, options, run = _torch_source(student, params, "distill")
    check_output_path(output, [_model_path(teacher), *([teacher_weights] if teacher_weights else [])])
    dataset = load_dataset(data, source)
    done = compress(source, steps, output, dataset, options, run, console.info, console.progress)
    return _finish("distill", done, as_json)
