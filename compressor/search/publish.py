"""Writing an optimize run's folder: the chosen model and its recipe (only when one meets the constraint),
and the reports (always)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compressor.errors import ExitCode
from compressor.gate import Budgets
from compressor.outputs import publish, staging_dir, write_text_atomic
from compressor.pipeline import make_steps
from compressor.recipe import MeasureSpec, PassEntry, Recipe, dump_recipe
from compressor.report.envelope import dumps, envelope
from compressor.search.optimize import SearchInputs, SearchSettings
from compressor.search.trials import OptimizeResult
from compressor.workflow import save_artifact

#: Extra report writers by suffix (e.g. ".html"), added by the report module that renders them.
ReportWriter = Callable[[OptimizeResult, Path], None]


def best_recipe(result: OptimizeResult, inputs: SearchInputs, settings: SearchSettings, folder: Path) -> str:
    """A recipe that reproduces the chosen model with `compressor run` and checks the same constraint."""
    chosen = result.trial(result.best)  # type: ignore[arg-type]
    steps = make_steps([(step["name"], step["config"]) for step in chosen.steps])
    budgets = Budgets()
    if settings.metric == "accuracy" and result.baseline.quality is not None:
        budgets = Budgets(min_accuracy=max(0.0, result.baseline.quality - settings.max_drop))
    elif settings.metric == "fidelity":
        budgets = Budgets(min_fidelity=1.0 - settings.max_drop)
    recipe = Recipe(
        version=1,
        model=inputs.source_ref,
        model_options=inputs.options.model_dump(mode="json", exclude_defaults=True),
        data=inputs.data_ref,
        eval_data=inputs.eval_ref,
        passes=[PassEntry(name=s.name, config=s.config.model_dump(mode="json")) for s in steps],
        budgets=budgets,
        measure=MeasureSpec(batches=list(settings.batches), device=settings.device, threads=settings.threads),
    )
    return dump_recipe(recipe, steps, Path.cwd(), folder)


def write_run(
    result: OptimizeResult,
    inputs: SearchInputs,
    settings: SearchSettings,
    target: Path,
    markdown: str,
    extra: dict[str, ReportWriter] | None = None,
) -> ExitCode:
    """Publish ``target``: model + recipe.yaml when a candidate met the constraint, and report.{json,md,...}."""
    code = ExitCode.OK if result.best is not None else ExitCode.CONSTRAINT_NOT_MET
    with staging_dir(target) as stage:
        bundle = stage / "bundle"
        bundle.mkdir()
        if result.best is not None:
            chosen = result.trial(result.best)
            name = "model.onnx" if chosen.artifact.format == "onnx" else "model"  # type: ignore[union-attr]
            save_artifact(chosen.artifact, bundle / name)  # type: ignore[arg-type]
            write_text_atomic(bundle / "recipe.yaml", best_recipe(result, inputs, settings, target.resolve()))
        write_text_atomic(bundle / "report.json", dumps(envelope("optimize", result.to_dict(), code)))
        write_text_atomic(bundle / "report.md", markdown)
        for suffix, writer in (extra or {}).items():
            writer(result, bundle / f"report{suffix}")
        publish(bundle, target)
    return code
