"""``compressor quantize MODEL -o OUT --mode ...``: one quantization pass, verified and published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

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
from compressor.parsing import parse_name_list
from compressor.pipeline import make_steps
from compressor.workflow import compress

MODES = {
    "dynamic": "quantize.dynamic",
    "static": "quantize.static",
    "int4": "quantize.int4",
    "fp16": "convert.fp16",
}
#: Which modes each option applies to, and the config key it sets.
OPTION_KEYS = {
    "per_tensor": (("dynamic", "static"), "per_channel"),
    "symmetric": (("static", "int4"), "symmetric"),
    "op_types": (("dynamic", "static"), "op_types"),
    "exclude": (("dynamic", "static", "int4"), "nodes_to_exclude"),
    "block_size": (("int4",), "block_size"),
    "calibration_samples": (("static",), "calibration_samples"),
    "calibration_method": (("static",), "calibration_method"),
    "fmt": (("static",), "format"),
}


def mode_config(mode: str, given: dict[str, Any]) -> dict[str, Any]:
    """The pass config for ``mode`` from the options the user set; an option foreign to the mode is an error."""
    config: dict[str, Any] = {}
    for option, value in given.items():
        if value in (None, False, ()):
            continue
        modes, key = OPTION_KEYS[option]
        flag = "--" + ("format" if option == "fmt" else option.replace("_", "-"))
        if mode not in modes:
            raise UsageError(f"{flag} does not apply to --mode {mode} (it applies to: {', '.join(modes)})")
        if option == "per_tensor":
            value = False
        elif option in ("op_types", "exclude"):
            value = parse_name_list(value)
        config[key] = value
    return config


@click.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output: FILE.onnx, or a folder.")
@click.option("--mode", type=click.Choice(list(MODES)), default="dynamic", show_default=True)
@click.option("--data", default=None, help="Calibration dataset (needed by --mode static).")
@click.option("--per-tensor", is_flag=True, help="One scale per tensor instead of per channel.")
@click.option("--symmetric", is_flag=True, help="Symmetric quantization (zero point 0).")
@click.option("--op-types", default=None, metavar="A,B", help="Only quantize these op types, e.g. MatMul,Conv.")
@click.option("--exclude", default=None, metavar="N1,N2", help="Leave these nodes in float.")
@click.option("--block-size", type=int, default=None, help="INT4 block size (power of two, default 128).")
@click.option("--calibration-samples", type=click.IntRange(min=1), default=None, help="Samples to calibrate on.")
@click.option("--calibration-method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["qdq", "qoperator", "tensorrt"]),
    default=None,
    help="Static quantization format (default qdq; tensorrt: symmetric S8S8 QDQ placed for TensorRT).",
)
@model_options
@device_options
@timeout_option
@json_option
def quantize(model: str, output: Path, mode: str, data: str | None, as_json: bool, **params: Any) -> int:
    """Quantize MODEL and write the result to OUTPUT, verified against MODEL."""
    options = loader_options(params)
    run = run_options(params)
    try:
        steps = make_steps([(MODES[mode], mode_config(mode, params))])
    except RecipeError as exc:  # the config comes from this command's options: a bad option value
        raise UsageError(exc.message, hint="see compressor quantize --help") from None
    if steps[0].pass_cls.requires_dataset and not data:
        raise UsageError(f"--mode {mode} needs calibration data: pass --data FILE.npz")
    source = load_model(model, options)
    dataset = load_dataset(data, source) if data else None
    done = compress(source, steps, output, dataset, options, run, console.info, console.progress)
    if as_json:
        console.print_json("quantize", compressed_result(done))
    else:
        console.print_tables(compressed_tables(done))
    return 0
