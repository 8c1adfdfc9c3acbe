"""The accuracy-aware search: build every candidate, keep those within the allowed quality drop, give
failed quantizations a second chance with sensitive blocks left in float, time the survivors one at a time,
and choose the best for the objective. It never returns a model that breaks the constraint.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, total_size
from compressor.cache import ResultCache, content_hash, dataset_hash, library_versions, make_key
from compressor.data import Dataset, load_dataset
from compressor.errors import CompressorError, ConstraintNotMet, DatasetError, InputError, PassError, UsageError
from compressor.limits import set_activity
from compressor.loaders import LoaderOptions
from compressor.measure.environment import cpu_name, environment
from compressor.measure.latency import LatencyPlan, LatencyStats
from compressor.measure.quality import Accuracy, fidelity
from compressor.measure.runner import RunOptions
from compressor.measure.suite import MeasureSettings, measure_models
from compressor.pyref import call_reference, is_reference
from compressor.search import sensitivity
from compressor.search.executors import Executor
from compressor.search.pareto import Point, best, pareto_front
from compressor.search.space import Candidate, candidates, deployment_steps, final_format
from compressor.search.trials import FAILED, MEETS, REJECTED, OptimizeResult, Trial
from compressor.search.worker import BuildResult, BuildTask, evaluation_outputs

#: Stop building at this share of the time budget, leaving the rest to time the survivors.
BUILD_SHARE_OF_BUDGET = 0.8
#: Failed quantization candidates that get a sensitivity second chance, best quality first.
FALLBACK_CANDIDATES = 2
#: The fewest samples the calibration and the evaluation data may hold: fewer cannot calibrate activation
#: ranges (one sample's ranges are that sample's) nor measure a quality drop worth trusting.
MIN_SAMPLES = 8


def check_samples(dataset: Dataset, option: str) -> None:
    """Refuse data too small to calibrate on or to score candidates with (``option``: the flag that gave it)."""
    if len(dataset) < MIN_SAMPLES:
        raise DatasetError(
            f"{option} {dataset.source} has {len(dataset)} sample{'s' if len(dataset) != 1 else ''}: too few to "
            f"calibrate a quantization or to measure a quality drop (optimize needs at least {MIN_SAMPLES})",
            hint="give more samples; a few hundred representative ones are best",
        )


@dataclass(frozen=True)
class SearchSettings:
    metric: str
    max_drop: float
    objective: str
    batches: tuple[int, ...] = (1,)
    device: str = "cpu"
    threads: int = 0
    budget_s: float | None = None
    max_trials: int | None = None
    plan: LatencyPlan = field(default_factory=lambda: LatencyPlan(min_runs=20, min_seconds=0.5))
    allowed_passes: frozenset[str] | None = None
    fallback: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("plan", "allowed_passes")}
        data["latency_plan"] = self.plan.__dict__
        data["allowed_passes"] = sorted(self.allowed_passes) if self.allowed_passes else None
        data["objective_batch"] = self.batches[0]
        return data


class Reporter:
    """Live progress hooks; the CLI draws them, tests and libraries ignore them."""

    def start(self, total: int) -> None: ...

    def trial_done(self, trial: Trial, done: int, total: int, best: Trial | None, time_left: float | None) -> None: ...

    def phase(self, message: str) -> None: ...


@dataclass
class SearchInputs:
    """The source model and data, by reference (for workers) and loaded (for the driver)."""

    source: Artifact
    source_ref: str
    options: LoaderOptions
    data_ref: str | None
    eval_ref: str | None
    evaluation: Dataset


class Quality:
    """Turns a model's evaluation outputs into the chosen metric, and a drop against the baseline."""

    def __init__(self, metric: str, evaluation: Dataset) -> None:
        self.metric = metric
        self.labels = evaluation.labels
        if metric == "accuracy" and self.labels is None:
            raise DatasetError("--metric accuracy needs labels: the evaluation data has no 'labels' array")
        if metric not in ("accuracy", "fidelity") and not is_reference(metric):
            raise UsageError(f"--metric must be accuracy, fidelity or path/to/module.py:function, not '{metric}'")
        self.baseline_outputs: list[np.ndarray] | None = None
        self.baseline_value = 1.0

    def set_baseline(self, outputs: list[np.ndarray]) -> float:
        self.baseline_outputs = outputs
        self.baseline_value = 1.0 if self.metric == "fidelity" else self(outputs)
        return self.baseline_value

    def __call__(self, outputs: list[np.ndarray]) -> float:
        if self.metric == "accuracy":
            return Accuracy()(outputs, self.labels)  # type: ignore[arg-type]
        if self.metric == "fidelity":
            return fidelity(self.baseline_outputs or [], outputs, classifier=False).cosine_mean
        value = call_reference(self.metric, InputError, outputs, self.labels)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise InputError(f"metric {self.metric} returned {type(value).__name__}, not a number")
        if not math.isfinite(float(value)):
            raise InputError(f"metric {self.metric} returned {value}")
        return float(value)

    def drop(self, value: float) -> float:
        """Quality lost: absolute for accuracy and fidelity, relative to the baseline for custom metrics."""
        lost = self.baseline_value - value
        if self.metric in ("accuracy", "fidelity"):
            return lost
        return lost / abs(self.baseline_value) if self.baseline_value else lost


class Search:
    """One optimize run."""

    def __init__(
        self,
        inputs: SearchInputs,
        settings: SearchSettings,
        executor: Executor,
        cache: ResultCache,
        reporter: Reporter | None = None,
    ) -> None:
        self.inputs = inputs
        self.settings = settings
        self.executor = executor
        self.cache = cache
        self.reporter = reporter or Reporter()
        self.quality = Quality(settings.metric, inputs.evaluation)
        self.started = time.monotonic()
        self.source_key = content_hash(inputs.source.path)
        calibration = load_dataset(inputs.data_ref, inputs.source) if inputs.data_ref else None
        self.data_key = dataset_hash(calibration)
        self.trials: list[Trial] = []
        self.export = Candidate(())
        self.stopped = ""
        self.verdict = ""

    # -- time -------------------------------------------------------------------------------------
    def time_left(self) -> float | None:
        if self.settings.budget_s is None:
            return None
        return self.settings.budget_s - (time.monotonic() - self.started)

    def may_build(self) -> bool:
        if self.settings.max_trials is not None and len(self.trials) >= self.settings.max_trials:
            self.stopped = self.stopped or f"--max-trials {self.settings.max_trials} reached"
            return False
        left = self.time_left()
        if left is not None and left < self.settings.budget_s * (1 - BUILD_SHARE_OF_BUDGET):  # type: ignore[operator]
            self.stopped = self.stopped or "time budget reached"
            return False
        return True

    # -- building ---------------------------------------------------------------------------------
    def _task(self, index: int, candidate: Candidate, evaluate: bool = True) -> BuildTask:
        return BuildTask(
            index=index,
            source=self.inputs.source_ref,
            source_key=self.source_key,
            loader_options=self.inputs.options.model_dump(mode="json"),
            specs=candidate.specs(),
            data=self.inputs.data_ref,
            eval_data=self.inputs.eval_ref,
            cache_dir=str(self.cache.root),
            device=self.settings.device,
            threads=self.settings.threads or self.executor.threads_per_job(),
            evaluate=evaluate,
        )

    def _trial_key(self, candidate: Candidate) -> str:
        return make_key(
            kind="trial",
            source=self.source_key,
            specs=candidate.specs(),
            evaluation=dataset_hash(self.inputs.evaluation),
            data=self.data_key,
            options=self.inputs.options.model_dump(mode="json"),
            metric=self.settings.metric,
            versions=library_versions(()),
        )

    def _latency_key(self, trial_key: str) -> str:
        run = {"device": self.settings.device, "threads": self.settings.threads, "cpu": cpu_name()}
        plan = self.settings.plan.__dict__
        return make_key(kind="latency", trial=trial_key, batches=self.settings.batches, plan=plan, run=run)

    def build(self, items: list[tuple[Candidate, str, str]], total: int) -> list[Trial]:
        """Build and evaluate candidates (with origin and note), in waves the executor can run at once.
        Returns the trials made, in the order of ``items`` (whatever order the executor finished them in)."""
        made = []
        pending = list(items)
        while pending and self.may_build():
            size = self.executor.jobs
            if self.settings.max_trials is not None:  # a wave must not overshoot --max-trials
                size = min(size, self.settings.max_trials - len(self.trials))
            wave, pending = pending[:size], pending[size:]
            tasks = {}
            for candidate, origin, note in wave:
                index = len(self.trials) + 1
                set_activity(f"building candidate {index} ({candidate.label})")
                trial = Trial(index, candidate.label, candidate.specs(), origin=origin, note=note)
                self.trials.append(trial)
                tasks[index] = (trial, candidate, self._cached_quality(candidate))
            jobs = [self._task(i, c, evaluate=q is None) for i, (_, c, q) in tasks.items()]
            for result in self.executor.run(jobs):
                trial, candidate, cached_quality = tasks[result.index]
                self._record(trial, candidate, result, cached_quality)
                made.append(trial)
                self.reporter.trial_done(trial, len(self.trials), total, self.leader(), self.time_left())
        return sorted(made, key=lambda t: t.index)

    def _record(self, trial: Trial, candidate: Candidate, result: BuildResult, cached_quality: float | None) -> None:
        trial.seconds, trial.steps, trial.cached = result.seconds, result.steps, result.cached
        if result.error is not None or result.artifact is None:
            trial.status, trial.error = FAILED, result.error or "no output"
            return
        trial.artifact = Artifact.from_dict(result.artifact, Path(result.artifact["path"]))
        if result.last_input is not None:
            trial.last_input = Artifact.from_dict(result.last_input, Path(result.last_input["path"]))
        trial.size_bytes = total_size(trial.artifact.path)
        try:
            trial.quality = cached_quality if cached_quality is not None else self._score(candidate, result.outputs)
        except (ValueError, InputError) as exc:  # a metric that fails on one candidate fails that trial only
            trial.status, trial.error = FAILED, f"cannot score it: {getattr(exc, 'message', exc)}"
            return
        trial.drop = self.quality.drop(trial.quality)
        trial.status = MEETS if trial.drop <= self.settings.max_drop + 1e-12 else REJECTED
        trial.latency = self._cached_latency(candidate)

    def leader(self) -> Trial | None:
        meeting = [t for t in self.trials if t.status == MEETS]
        return min(meeting, key=lambda t: t.size_bytes or 0, default=None)

    def _cached_latency(self, candidate: Candidate) -> dict[int, LatencyStats]:
        """Latency stored by an earlier run for this candidate, settings and machine; {} if none or unreadable."""
        cached = self.cache.get_trial(self._latency_key(self._trial_key(candidate))) or {}
        try:
            return {int(b): LatencyStats(**_stats(s)) for b, s in cached.items()}
        except (TypeError, ValueError, AttributeError):
            return {}

    # -- second chance ----------------------------------------------------------------------------
    def fallback(self) -> None:
        """Leave sensitive blocks in float for the most promising failed quantizations."""
        failed = [t for t in self.trials if t.status == REJECTED and t.origin == "search" and _excludable(t)]
        for trial in sorted(failed, key=lambda t: t.drop or 0.0)[:FALLBACK_CANDIDATES]:
            if not self.may_build() or trial.last_input is None or trial.last_input.format != "onnx":
                continue
            if not self._float_meets(trial):
                continue  # the model was already out of bounds before quantization: no block can fix that
            self.reporter.phase(f"finding sensitive blocks of {trial.label}")
            nodes = sensitivity.quantizable_nodes(trial.last_input.path)
            groups = [g for g in sensitivity.blocks(nodes) if len(g) < len(nodes)]  # all in float is no candidate
            singles = self.build([(_excluding(trial, g), "fallback", f"left in float: {sensitivity.block_label(g)}")
                                  for g in groups], len(self.trials) + len(groups))  # fmt: skip
            gains = sorted(
                ((s.quality or -math.inf, g) for s, g in zip(singles, groups, strict=False) if s.quality is not None),
                key=lambda pair: -pair[0],
            )
            self._cumulative(trial, [g for _, g in gains])

    def _quality_key(self, candidate: Candidate) -> str:
        return make_key(kind="quality", trial=self._trial_key(candidate), baseline=self._trial_key(self.export))

    def _cached_quality(self, candidate: Candidate) -> float | None:
        stored = self.cache.get_trial(self._quality_key(candidate)) or {}
        value = stored.get("quality")
        return float(value) if isinstance(value, (int, float)) else None

    def _score(self, candidate: Candidate, outputs: list[np.ndarray] | None) -> float:
        """Score a candidate's evaluation outputs and remember the score for a later identical search."""
        value = self.quality(outputs or [])
        self.cache.put_trial(self._quality_key(candidate), {"quality": value})
        return value

    def _float_meets(self, trial: Trial) -> bool:
        """Whether the float model a quantization received (the candidate without its last pass) meets the
        constraint; the baseline when the quantization was the only pass."""
        head = trial.specs[:-1]
        if not head or trial.last_input is None:
            return True
        final = final_format(self.inputs.source.format, head)
        tail = (deployment_steps(final) or []) if final not in (None, "onnx") else []
        prefix = Candidate.of([*head, *tail])
        value = self._cached_quality(prefix)
        if value is None:
            run = RunOptions(device=self.settings.device, threads=self.settings.threads)
            try:
                value = self._score(prefix, evaluation_outputs(trial.last_input, self.inputs.evaluation, run))
            except (CompressorError, ValueError):
                return False
        return self.quality.drop(value) <= self.settings.max_drop + 1e-12

    def _cumulative(self, trial: Trial, ranked: list[list[str]]) -> None:
        for count in range(2, len(ranked) // 2 + 1):
            if any(t.status == MEETS and t.origin == "fallback" and t.specs[:-1] == trial.specs[:-1]
                   and t.specs[-1][0] == trial.specs[-1][0] for t in self.trials):  # fmt: skip
                return
            nodes = [name for group in ranked[:count] for name in group]
            note = f"left in float: the {count} most sensitive blocks ({len(nodes)} nodes)"
            if not self.build([(_excluding(trial, nodes), "fallback", note)], len(self.trials) + 1):
                return

    # -- timing -----------------------------------------------------------------------------------
    def time_survivors(self, baseline: Trial) -> None:
        """Latency of the baseline and every built trial, one model at a time, interleaved."""
        todo = [t for t in [baseline, *self.trials] if t.built and not t.latency]
        if not todo:
            return
        self.reporter.phase(f"timing {len(todo)} models one at a time (nothing else running)")
        settings = MeasureSettings(
            batches=self.settings.batches,
            run=RunOptions(device=self.settings.device, threads=self.settings.threads),
            plan=self.settings.plan,
            shapes=self.inputs.options.shapes,
            quality=False,
        )
        measured = measure_models([t.artifact for t in todo], settings, self.inputs.evaluation)  # type: ignore[misc]
        for trial, report in zip(todo, measured.models, strict=True):
            trial.latency = dict(report.latency)
            key = self._latency_key(self._trial_key(Candidate.of(trial.specs)))
            self.cache.put_trial(key, {str(b): s.to_dict() for b, s in trial.latency.items()})

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> OptimizeResult:
        export = deployment_steps(self.inputs.source.format) or []
        self.export = Candidate.of(export)
        baseline = self._baseline(self.export)
        target = "onnx" if export else None
        found = candidates(self.inputs.source, set(self.settings.allowed_passes or ()) or None, target)
        if not found:
            raise UsageError("no pass offers a search space for this model; see `compressor plugins --passes`")
        self.reporter.start(len(found))
        self.build([(c, "search", "") for c in found], len(found))
        if self.settings.fallback:
            self.fallback()
        self.time_survivors(baseline)
        return self._result(baseline)

    def _baseline(self, export: Candidate) -> Trial:
        """The source as it would be deployed: as given, or exported to ONNX when a conversion exists, so
        the baseline and the candidates run in the same runtime (ONNX Runtime) and ratios compare like
        with like."""
        if export.steps:
            self.reporter.phase(f"exporting the baseline ({export.label})")
            result = next(iter(self.executor.run([self._task(0, export)])))
            if result.error is not None or result.artifact is None:
                raise PassError(export.label, f"the baseline could not be exported: {result.error}")
            artifact = Artifact.from_dict(result.artifact, Path(result.artifact["path"]))
            label = f"baseline ({export.label})"
        else:
            artifact, label = self.inputs.source, "baseline"
        run = RunOptions(device=self.settings.device, threads=self.settings.threads)
        trial = Trial(0, label, export.specs(), origin="baseline", status=MEETS, artifact=artifact)
        trial.size_bytes = total_size(artifact.path)
        trial.quality = self.quality.set_baseline(evaluation_outputs(artifact, self.inputs.evaluation, run))
        trial.drop = 0.0
        trial.latency = self._cached_latency(export)
        left = self.time_left()
        if left is not None and left <= 0:
            raise ConstraintNotMet(
                f"the time budget ({self.settings.budget_s:.0f} s) was spent measuring the baseline",
                hint="give a larger --budget",
            )
        return trial

    def _result(self, baseline: Trial) -> OptimizeResult:
        batch = self.settings.batches[0]
        timed = [t for t in [baseline, *self.trials] if t.built and batch in t.latency and t.quality is not None]
        points = {t.index: Point(t.index, t.quality, t.latency[batch].p50_ms, t.size_bytes or 0) for t in timed}  # type: ignore[arg-type]
        front = [p.key for p in pareto_front(list(points.values()))]
        meeting = [points[t.index] for t in timed if t.status == MEETS and t.index != 0]
        chosen = best(meeting, points[0], self.settings.objective) if 0 in points else None
        if chosen is None and meeting:
            objective = self.settings.objective
            self.verdict = f"no candidate within the constraint is better than the baseline on {objective}"
        return OptimizeResult(
            baseline=baseline,
            trials=self.trials,
            front=front,
            best=chosen.key if chosen else None,
            settings=self.settings.to_dict(),
            environment=environment(RunOptions(threads=self.settings.threads).resolved_threads, self.settings.device),
            stopped=self.stopped,
            verdict=self.verdict,
            cache={"path": str(self.cache.root), "trials_from_cache": sum(t.cached for t in self.trials)},
            elapsed_s=time.monotonic() - self.started,
        )


def _stats(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in LatencyStats.__dataclass_fields__}


def _excludable(trial: Trial) -> bool:
    from compressor.passes import get_pass

    name = trial.specs[-1][0] if trial.specs else ""
    return bool(name) and "nodes_to_exclude" in get_pass(name).Config.model_fields


def _excluding(trial: Trial, nodes: list[str]) -> Candidate:
    *head, (name, config) = trial.specs
    excluded = sorted({*config.get("nodes_to_exclude", []), *nodes})
    return Candidate.of([*head, (name, {**config, "nodes_to_exclude": excluded})])
