"""``compressor optimize MODEL --data D -o DIR``: the accuracy-aware search."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from compressor.cache import ResultCache, default_cache_dir
from compressor.cli import console
from compressor.cli.options import device_options, json_option, loader_options, model_options, timeout_option
from compressor.data import load_dataset
from compressor.errors import ExitCode
from compressor.loaders import load_model
from compressor.measure.latency import LatencyPlan
from compressor.outputs import check_output_path, scratch_dir
from compressor.parsing import parse_duration, parse_int_list, parse_name_list, parse_percent
from compressor.report.optimize import trials_table, verdict_table
from compressor.report.table import to_markdown
from compressor.report.writers import REPORT_SUFFIXES, check_report_path, write_report
from compressor.search.executors import get_executor
from compressor.search.optimize import Reporter, Search, SearchInputs, SearchSettings, check_samples
from compressor.search.pareto import OBJECTIVES
from compressor.search.publish import write_run
from compressor.search.trials import Trial


class RichReporter(Reporter):
    """Live progress: trials done, the best so far, time left."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("searching", total=None)

    def start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def trial_done(self, trial: Trial, done: int, total: int, best: Trial | None, time_left: float | None) -> None:
        leader = f"best so far: {best.label}" if best else "no candidate meets the constraint yet"
        left = f", {time_left:.0f} s left" if time_left is not None else ""
        self.progress.update(self.task, completed=done, total=max(total, done), description=f"{leader}{left}")

    def phase(self, message: str) -> None:
        self.progress.update(self.task, description=message)


@contextlib.contextmanager
def _cache(cache_dir: Path | None, no_cache: bool):  # type: ignore[no-untyped-def]
    if no_cache:
        with scratch_dir("nocache") as tmp:
            yield ResultCache(tmp)
    else:
        cache = ResultCache(cache_dir or default_cache_dir())
        cache.remove_stale()  # what a killed run left half-written
        yield cache


@click.command()
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Folder for the result.")
@click.option("--data", required=True, help="Calibration / training data (.npz or module.py:function).")
@click.option("--eval-data", default=None, help="Labelled data to score candidates on (default: --data).")
@click.option(
    "--metric",
    default=None,
    help="accuracy (needs labels), fidelity (cosine to the baseline), or path/to/module.py:function "
    "taking (outputs, labels) and returning a number, higher better. Default: accuracy with labels.",
)
@click.option(
    "--max-drop",
    default="1%",
    show_default=True,
    help="Allowed quality drop: absolute for accuracy/fidelity (1% = 0.01), relative for custom metrics.",
)
@click.option("--objective", type=click.Choice(OBJECTIVES), default="latency", show_default=True)
@click.option(
    "--batch",
    "batches",
    default="1",
    show_default=True,
    metavar="N[,N...]",
    help="Batch sizes to time; the objective uses the first.",
)
@click.option("--budget", default=None, help="Time budget, e.g. 20m; no new candidate starts after it.")
@click.option("--max-trials", type=click.IntRange(min=1), default=None, help="Build at most this many candidates.")
@click.option("--passes", "allowed", default=None, metavar="A,B", help="Only search these passes.")
@click.option("--no-fallback", is_flag=True, help="No second chance for quantizations that break the constraint.")
@click.option("--executor", default="local", show_default=True, help="Where candidates are built (local, ray, ...).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Candidates built at once.")
@click.option(
    "--ray-address", "--executor-address", "address", default=None, help="Cluster address for a distributed executor."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Result cache (default: $COMPRESSOR_CACHE_DIR or ~/.cache/compressor).",
)
@click.option("--no-cache", is_flag=True, help="Use a throw-away cache.")
@click.option("--min-runs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--min-time", type=click.FloatRange(min=0), default=0.5, show_default=True)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report to FILE.md, FILE.json or FILE.html.",
)
@model_options
@device_options
@timeout_option
@json_option
def optimize(model: str, output: Path, data: str, eval_data: str | None, metric: str | None, max_drop: str,
             objective: str, batches: str, budget: str | None, max_trials: int | None, allowed: str | None,
             no_fallback: bool, executor: str, jobs: int, address: str | None, cache_dir: Path | None,
             no_cache: bool, min_runs: int, min_time: float, report_path: Path | None, as_json: bool,
             **params: Any) -> int:  # fmt: skip
    """Search for the smallest or fastest model within an accuracy constraint, and write it to OUTPUT."""
    drop = parse_percent(max_drop, "--max-drop")
    budget_s = parse_duration(budget) if budget else None
    batch_sizes = tuple(parse_int_list(batches, "--batch"))
    if report_path is not None:
        check_report_path(report_path, (*REPORT_SUFFIXES, ".html"))
    options = loader_options(params)
    device, threads = params.pop("device"), params.pop("threads")
    source = load_model(model, options)
    check_output_path(output, [source.path])
    evaluation = load_dataset(eval_data or data, source)
    check_samples(load_dataset(data, source), "--data")  # refuse unusable calibration data before any work
    check_samples(evaluation, "--eval-data" if eval_data else "--data")
    settings = SearchSettings(
        metric=metric or ("accuracy" if evaluation.labels is not None else "fidelity"),
        max_drop=drop,
        objective=objective,
        batches=batch_sizes,
        device=device,
        threads=threads,
        budget_s=budget_s,
        max_trials=max_trials,
        plan=LatencyPlan(min_runs=min_runs, min_seconds=min_time),
        allowed_passes=frozenset(parse_name_list(allowed)) or None,
        fallback=not no_fallback,
    )
    inputs = SearchInputs(source, model, options, data, eval_data, evaluation)
    runner = get_executor(executor, jobs, address)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with _cache(cache_dir, no_cache) as cache, Progress(*columns, console=console.err, transient=True) as bar:
            result = Search(inputs, settings, runner, cache, RichReporter(bar)).run()
            tables = [trials_table(result), verdict_table(result)]
            markdown = to_markdown(tables, f"compressor optimize {Path(model).name}")
            code = write_run(result, inputs, settings, output, markdown, {".html": _write_html})
    finally:
        runner.close()
    if report_path is not None:
        heading = f"compressor optimize {Path(model).name}"
        write_report(report_path, "optimize", result.to_dict(), tables, heading, html=_html_writer(result))
    if as_json:
        console.print_json("optimize", result.to_dict(), code)
    else:
        console.print_tables(tables)
        _say(result, output, code)
    return int(code)


def _write_html(result: Any, path: Path) -> None:
    from compressor.report.html import write_optimize_html

    write_optimize_html(result, path)


def _html_writer(result: Any) -> Any:
    return lambda path: _write_html(result, path)


def _say(result: Any, output: Path, code: ExitCode) -> None:
    if code == ExitCode.OK:
        console.info(f"wrote {output}/: the chosen model, recipe.yaml (reproduce with `compressor run`) and reports")
        return
    constraint = f"{result.settings['metric']} drop <= {result.settings['max_drop']:.4g}"
    reason = result.verdict or f"no candidate meets the constraint ({constraint})"
    console.err.print(
        f"{reason}; no model was written. The candidates are listed above; {output}/ holds the reports.",
        style="bold red",
        highlight=False,
        markup=False,
    )
