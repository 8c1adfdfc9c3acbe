"""Options shared by commands, and their conversion to the core's option objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from compressor.errors import UsageError
from compressor.loaders import LoaderOptions
from compressor.measure.latency import LatencyPlan
from compressor.measure.runner import DEVICES, RunOptions
from compressor.measure.suite import MeasureSettings
from compressor.parsing import parse_assignments, parse_int_list, parse_shapes

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


def _stack(*decorators: Decorator) -> Decorator:
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


model_options = _stack(
    click.option(
        "--shape",
        "shapes",
        multiple=True,
        metavar="NAME=DIMS",
        help="Input shape, e.g. input=1x1x8x8 (fills symbolic dims; repeat or comma-separate).",
    ),
    click.option(
        "--dtype",
        "dtypes",
        multiple=True,
        metavar="NAME=TYPE",
        help=f"Input dtype for models that do not declare one ({', '.join(_DTYPES)}).",
    ),
    click.option(
        "--weights",
        type=click.Path(path_type=Path),
        default=None,
        help="Weights (state dict) for a factory-built model.",
    ),
    click.option("--trust-pickle", is_flag=True, help="Allow formats whose loading runs pickle (may run code)."),
    click.option("--task", default=None, help="Task of a model whose folder does not say it."),
)

device_options = _stack(
    click.option(
        "--device",
        type=click.Choice(DEVICES),
        default="cpu",
        show_default=True,
        help="Where to run the model.",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=0),
        default=0,
        help="Intra-op threads (0: all CPUs this process may use).",
    ),
)

latency_options = _stack(
    click.option(
        "--batch",
        "batches",
        default="1",
        show_default=True,
        metavar="N[,N...]",
        help="Batch sizes to time, e.g. 1,8.",
    ),
    click.option(
        "--min-runs",
        type=click.IntRange(min=1),
        default=30,
        show_default=True,
        help="Timed runs per model and batch, at least.",
    ),
    click.option(
        "--min-time",
        type=click.FloatRange(min=0),
        default=1.0,
        show_default=True,
        help="Seconds of timed runs per model and batch, at least.",
    ),
    click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed runs first."),
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON envelope on stdout.")


def _start_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        from compressor.limits import start_timeout
        from compressor.parsing import parse_duration

        start_timeout(parse_duration(value))


timeout_option = click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    expose_value=False,
    is_eager=True,
    callback=_start_timeout,
    help="Stop after this long (e.g. 90s, 20m), saying which step was running; nothing is left half-written.",
)


def loader_options(params: dict[str, Any]) -> LoaderOptions:
    """Take the model options out of a command's parameters."""
    dtypes = parse_assignments(params.pop("dtypes", ()), "dtype")
    for name, dtype in dtypes.items():
        if dtype not in _DTYPES:
            raise UsageError(f"--dtype {name}={dtype}: unknown dtype; valid: {', '.join(_DTYPES)}")
    return LoaderOptions(
        shapes=parse_shapes(params.pop("shapes", ())),
        dtypes=dtypes,
        weights=params.pop("weights", None),
        trust_pickle=params.pop("trust_pickle", False),
        task=params.pop("task", None),
    )


def run_options(params: dict[str, Any]) -> RunOptions:
    return RunOptions(device=params.pop("device", "cpu"), threads=params.pop("threads", 0))


def measure_settings(params: dict[str, Any], run: RunOptions, shapes: dict[str, tuple[int, ...]]) -> MeasureSettings:
    plan = LatencyPlan(
        warmup_runs=params.pop("warmup"), min_runs=params.pop("min_runs"), min_seconds=params.pop("min_time")
    )
    batches = tuple(parse_int_list(params.pop("batches"), "--batch"))
    return MeasureSettings(batches=batches, run=run, plan=plan, shapes=shapes)
