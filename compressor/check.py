"""The gate's engine: resolve each model's settings, measure what its checks need, check budgets and
regressions, update the baseline and record the history. ``compressor check`` is a thin CLI over this.

What is measured, per model:

- size on disk, always (no session: a size-only check imports neither onnxruntime nor any framework);
- parameters, when a params budget, the baseline, ``--update-baseline`` or ``--record`` needs them;
- latency at ``batch``, when a latency budget is set, the baseline has latency at that batch, or ``latency``;
- accuracy, when ``data`` is given (labelled); fidelity (mean cosine), when ``reference`` is given.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.artifacts import Artifact
from compressor.baseline import DEFAULT_BASELINE, Baseline, BaselineEntry, new_entry, read_baseline, write_baseline
from compressor.config import MODEL_KEYS, ProjectConfig, model_key
from compressor.data import Dataset, load_dataset
from compressor.errors import DatasetError, ExitCode, UsageError
from compressor.gate import (
    BudgetResult,
    Budgets,
    MetricValue,
    RegressionLimits,
    RegressionResult,
    check_budgets,
    compare_metrics,
    latency_metric,
    model_metrics,
)
from compressor.loaders import LoaderOptions, load_model
from compressor.measure.latency import LatencyPlan
from compressor.measure.runner import RunOptions
from compressor.measure.suite import MeasureSettings, ModelReport, measure_models, static_report

#: Settings keys that hold paths (relative to the project root in pyproject.toml, to the cwd on the command line).
_PATH_KEYS = ("data", "reference")


@dataclass(frozen=True)
class ModelSettings:
    """Everything that applies to one model, after defaults, pyproject sections and flags are merged."""

    model: str
    key: str
    budgets: Budgets
    batch: int = 1
    data: str | None = None
    reference: str | None = None
    #: Time the model even without a latency budget (for the baseline or the history).
    latency: bool = False
    limits: RegressionLimits = field(default_factory=RegressionLimits)
    #: The pyproject sections that contributed, in order (then "command line" when flags did).
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "budgets": self.budgets.model_dump(exclude_none=True),
            "batch": self.batch,
            "data": self.data,
            "reference": self.reference,
            "latency": self.latency,
            "max_regression": self.limits.to_dict(),
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class RunSettings:
    """What applies to the whole run."""

    run: RunOptions = field(default_factory=RunOptions)
    plan: LatencyPlan = field(default_factory=LatencyPlan)
    loader: LoaderOptions = field(default_factory=LoaderOptions)
    baseline: Path | None = None
    update_baseline: bool = False
    #: The history store to record into, or None when not recording.
    history: Path | None = None


def resolve_model(model: str, config: ProjectConfig, flags: dict[str, Any]) -> ModelSettings:
    """Merge, lowest first: defaults, ``[tool.compressor.check]``, matching model sections, then ``flags``.

    ``flags`` uses the config's kebab-case keys with parsed values, and only holds what was given.
    """
    key = model_key(model, config.root)
    values, sources = config.for_model(key)
    for name in _PATH_KEYS:
        if name in values:
            values[name] = str(config.resolve(values[name]))
    config_regression = values.pop("max-regression", (None, {}))
    flag_regression = flags.get("max-regression", (None, {}))
    values.update({k: v for k, v in flags.items() if k in MODEL_KEYS and k != "max-regression"})
    limits = RegressionLimits().updated(*config_regression).updated(*flag_regression)
    if any(k in MODEL_KEYS for k in flags):
        sources.append("command line")
    budgets = Budgets(
        max_size=values.get("max-size"),
        max_params=values.get("max-params"),
        max_latency_ms=values.get("max-latency-ms"),
        latency_batch=values.get("batch", 1),
        min_accuracy=values.get("min-accuracy"),
        min_fidelity=values.get("min-fidelity"),
    )
    settings = ModelSettings(
        model=model,
        key=key,
        budgets=budgets,
        batch=values.get("batch", 1),
        data=values.get("data"),
        reference=values.get("reference"),
        latency=bool(values.get("latency", False)),
        limits=limits,
        sources=tuple(sources),
    )
    if budgets.min_accuracy is not None and settings.data is None:
        raise UsageError(f"{model}: min-accuracy needs labelled data: give --data (or data = in pyproject.toml)")
    if budgets.min_fidelity is not None and settings.reference is None:
        raise UsageError(f"{model}: min-fidelity needs a reference model: give --reference (or reference =)")
    return settings


@dataclass
class ModelOutcome:
    settings: ModelSettings
    report: ModelReport
    metrics: dict[str, MetricValue]
    budgets: list[BudgetResult]
    #: Comparisons with the baseline; None when no baseline was compared.
    regressions: list[RegressionResult] | None
    environment: dict[str, Any] | None
    seconds: float

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.budgets) and all(r.passed for r in self.regressions or [])

    def failures(self) -> list[str]:
        """One line per failed check, e.g. 'm.onnx: max_size 609.7 KB > 300.0 KB'."""
        lines = []
        for budget in self.budgets:
            if not budget.passed:
                sign = ">" if budget.name.startswith("max") else "<"
                lines.append(
                    f"{self.settings.model}: {budget.name} {budget.display_measured} {sign} {budget.display_limit}"
                )
        for reg in self.regressions or []:
            if not reg.passed:
                change = "unknown" if reg.change is None else f"{reg.change:+.1%}"
                lines.append(
                    f"{self.settings.model}: {reg.metric} regressed {change} against the baseline "
                    f"(allowed {reg.allowed:.1%})"
                )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "key": self.settings.key,
            "path": self.report.path,
            "passed": self.passed,
            "settings": self.settings.to_dict(),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "budgets": [b.to_dict() for b in self.budgets],
            "baseline": None if self.regressions is None else [r.to_dict() for r in self.regressions],
            "measurement": self.report.to_dict(),
            "environment": self.environment,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CheckOutcome:
    models: list[ModelOutcome]
    config: Path | None
    baseline: dict[str, Any] | None = None
    history: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.passed else ExitCode.CONSTRAINT_NOT_MET

    def failures(self) -> list[str]:
        return [line for m in self.models for line in m.failures()]

    def counts(self) -> tuple[int, int]:
        """(checks that failed, checks made); skipped comparisons are not counted."""
        checks = [c.passed for m in self.models for c in [*m.budgets, *(m.regressions or [])] if _counted(c)]
        return sum(not c for c in checks), len(checks)

    def to_dict(self) -> dict[str, Any]:
        failed, total = self.counts()
        return {
            "passed": self.passed,
            "checks": total,
            "failed": failed,
            "failures": self.failures(),
            "models": [m.to_dict() for m in self.models],
            "config": None if self.config is None else str(self.config),
            "baseline": self.baseline,
            "history": self.history,
        }


def _counted(check: BudgetResult | RegressionResult) -> bool:
    return not isinstance(check, RegressionResult) or check.status != "skip"


@dataclass
class _Prepared:
    settings: ModelSettings
    artifact: Artifact
    reference: Artifact | None
    dataset: Dataset | None
    entry: BaselineEntry | None


def baseline_path(flag: Path | None, config: ProjectConfig, update: bool) -> Path | None:
    """``--baseline``, else ``baseline =`` from pyproject.toml, else the default file when updating."""
    if flag is not None:
        return flag
    if config.run_value("baseline"):
        return config.resolve(config.run_value("baseline"))
    return config.root / DEFAULT_BASELINE if update else None


def run_checks(
    models: list[ModelSettings],
    run: RunSettings,
    config: ProjectConfig,
    info: Callable[[str], None] = lambda _: None,
) -> CheckOutcome:
    """Check every model; everything that can be refused (models, data, baseline, store) is refused first."""
    baseline = None
    if run.baseline is not None:
        baseline = read_baseline(run.baseline, must_exist=not run.update_baseline)
    prepared = [_prepare(s, run, baseline) for s in models]
    store = None
    if run.history is not None:
        from compressor.history import HistoryStore  # sqlite3: only when recording

        store = HistoryStore(run.history, create=True)
    try:
        outcomes = []
        for item in prepared:
            outcomes.append(_check_one(item, run, info, need_params=baseline is not None or store is not None))
        result = CheckOutcome(outcomes, config.path)
        if baseline is not None:
            result.baseline = _update_baseline(baseline, outcomes, run.update_baseline, info)
        if store is not None:
            commit = current_commit(config.root)
            for outcome in outcomes:
                store.record(outcome.settings.key, outcome.metrics, outcome.environment, commit)
            result.history = {"path": str(run.history), "recorded": len(outcomes), "commit": commit}
            info(f"recorded {len(outcomes)} model(s) in {run.history}")
    finally:
        if store is not None:
            store.close()
    return result


def _prepare(settings: ModelSettings, run: RunSettings, baseline: Baseline | None) -> _Prepared:
    entry = None
    if baseline is not None and not run.update_baseline:
        entry = baseline.entry(settings.key)
    nothing = not settings.budgets.active and baseline is None and run.history is None
    if nothing:
        raise UsageError(
            f"nothing to check for {settings.model}: give a budget (--max-size, --max-params, --max-latency-ms, "
            "--min-accuracy, --min-fidelity), a --baseline or --record, or set them in [tool.compressor.check] "
            "of pyproject.toml"
        )
    artifact = load_model(settings.model, run.loader)
    reference = load_model(settings.reference, run.loader) if settings.reference else None
    dataset = load_dataset(settings.data, artifact) if settings.data else None
    if settings.budgets.min_accuracy is not None and dataset is not None and dataset.labels is None:
        raise DatasetError(f"dataset {settings.data} has no 'labels' array; min-accuracy needs labelled data")
    return _Prepared(settings, artifact, reference, dataset, entry)


def _check_one(item: _Prepared, run: RunSettings, info: Callable[[str], None], need_params: bool) -> ModelOutcome:
    settings = item.settings
    started = time.perf_counter()
    timed_in_baseline = item.entry is not None and latency_metric(settings.batch) in item.entry.metrics
    latency = settings.budgets.needs_latency or settings.latency or timed_in_baseline
    quality = item.dataset is not None or item.reference is not None
    environment = None
    if latency or quality:
        artifacts = [item.reference, item.artifact] if item.reference else [item.artifact]
        labels = [settings.reference or "", settings.model] if item.reference else [settings.model]
        what = " and ".join(
            w for w, on in (("quality", quality), (f"latency at batch {settings.batch}", latency)) if on
        )
        info(f"measuring {settings.model}: {what} ...")
        measure = MeasureSettings(
            batches=(settings.batch,),
            run=run.run,
            plan=run.plan,
            shapes=run.loader.shapes,
            latency=latency,
            quality=quality,
        )
        measurement = measure_models(artifacts, measure, item.dataset, labels=labels)
        report = measurement.models[-1]
        environment = measurement.environment
    else:
        stats = need_params or settings.budgets.max_params is not None
        report = static_report(item.artifact, settings.model, run.run.device, stats=stats)
    metrics = model_metrics(report)
    regressions = None
    if item.entry is not None:
        skip = item.entry.latency_skip_reason(environment)
        regressions = compare_metrics(metrics, item.entry.metrics, settings.limits, skip_latency=skip)
    return ModelOutcome(
        settings,
        report,
        metrics,
        check_budgets(settings.budgets, report),
        regressions,
        environment,
        time.perf_counter() - started,
    )


def _update_baseline(
    baseline: Baseline, outcomes: list[ModelOutcome], update: bool, info: Callable[[str], None]
) -> dict[str, Any]:
    summary: dict[str, Any] = {"path": str(baseline.path), "updated": False}
    if not update:
        return summary
    if not all(all(b.passed for b in o.budgets) for o in outcomes):
        summary["note"] = "not updated: a budget is not met"
        info(f"baseline {baseline.path} not updated: a budget is not met")
        return summary
    entries = {o.settings.key: new_entry(o.metrics, o.environment) for o in outcomes}
    write_baseline(baseline, entries)
    summary.update(updated=True, models=sorted(entries))
    info(f"baseline {baseline.path} updated for {len(entries)} model(s)")
    return summary


def current_commit(root: Path) -> str | None:
    """The commit being checked: from CI variables, else ``git rev-parse``; None outside a repository."""
    for variable in ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION", "GIT_COMMIT"):
        if os.environ.get(variable):
            return os.environ[variable][:12]
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
