"""``compressor run RECIPE.yaml [-o DIR]``: a whole recipe, validated first, measured and gated after."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from compressor.cli import console
from compressor.cli.options import json_option, timeout_option
from compressor.cli.results import compressed_result, compressed_tables
from compressor.data import load_dataset
from compressor.errors import ExitCode, RecipeError, UsageError
from compressor.gate import check_budgets
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.latency import LatencyPlan
from compressor.measure.runner import RunOptions
from compressor.measure.suite import MeasureSettings, measure_models
from compressor.outputs import check_output_path, publish, staging_dir, write_text_atomic
from compressor.pipeline import plan
from compressor.recipe import Recipe, dump_recipe, load_recipe, recipe_output, resolve_in
from compressor.report.envelope import dumps, envelope
from compressor.report.gate import budget_table
from compressor.report.measurement import tradeoff_table
from compressor.report.table import to_markdown
from compressor.workflow import compress


def model_target(bundle: Path, fmt: str) -> Path:
    """Where the final model goes in the output folder: model.onnx, or a model/ folder for other formats."""
    return bundle / ("model.onnx" if fmt == "onnx" else "model")


def _loader_options(recipe: Recipe, folder: Path) -> LoaderOptions:
    raw = dict(recipe.model_options)
    if raw.get("weights"):
        raw["weights"] = resolve_in(folder, raw["weights"])
    try:
        return LoaderOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecipeError(f"recipe model_options.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@click.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: the recipe's `output`).",
)
@timeout_option
@json_option
def run(recipe_path: Path, output: Path | None, as_json: bool) -> int:
    """Run RECIPE: load, apply its passes, verify, measure and check its budgets; write the result to a folder."""
    recipe, steps = load_recipe(recipe_path)
    folder = recipe_path.parent
    if output is None and recipe.output is None:
        raise UsageError("the recipe sets no output: give -o DIR")
    target = output if output is not None else recipe_output(folder, recipe.output or "")
    options = _loader_options(recipe, folder)
    run_opts = RunOptions(device=recipe.measure.device, threads=recipe.measure.threads)
    source = load_model(resolve_in(folder, recipe.model), options)
    check_output_path(target, [source.path])
    planned = plan(steps, source.format)
    data = load_dataset(str(resolve_in(folder, recipe.data)), source) if recipe.data else None
    eval_ref = recipe.eval_data or recipe.data
    evaluation = load_dataset(str(resolve_in(folder, eval_ref)), source) if eval_ref else None
    with staging_dir(target) as stage:
        bundle = stage / "bundle"
        final_format = planned[-1].pass_cls.output_format if planned else source.format
        final = model_target(bundle, final_format)
        done = compress(source, planned, final, data, options, run_opts, console.info, console.progress)
        settings = MeasureSettings(
            batches=tuple(recipe.measure.batches),
            plan=LatencyPlan(min_runs=recipe.measure.min_runs, min_seconds=recipe.measure.min_time),
            run=run_opts,
            shapes=options.shapes,
            latency=recipe.measure.latency,
        )
        measurement = measure_models([source, done.output], settings, evaluation, labels=["input", "output"])
        budgets = check_budgets(recipe.budgets, measurement.models[1])
        code = ExitCode.OK if all(b.passed for b in budgets) else ExitCode.CONSTRAINT_NOT_MET
        published = target.resolve() / final.name
        result = {
            **compressed_result(done, published),
            "measurement": measurement.to_dict(),
            "budgets": [b.to_dict() for b in budgets],
        }
        tables = [
            *compressed_tables(done, published),
            tradeoff_table(measurement),
            *([budget_table(budgets)] if budgets else []),
        ]
        write_text_atomic(bundle / "recipe.yaml", dump_recipe(recipe, planned, folder, target.resolve()))
        write_text_atomic(bundle / "report.json", dumps(envelope("run", result, code)))
        write_text_atomic(bundle / "report.md", to_markdown(tables, f"compressor run {recipe_path.name}"))
        publish(bundle, target)
    if as_json:
        console.print_json("run", result, code)
    else:
        console.print_tables(tables)
        if code != ExitCode.OK:
            failed = ", ".join(b.name for b in budgets if not b.passed)
            console.err.print(f"budgets not met: {failed}", style="bold red", highlight=False)
    return int(code)
