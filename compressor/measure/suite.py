"""Measure several models side by side: static facts, memory, quality, then interleaved latency."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, total_size
from compressor.data import Dataset
from compressor.errors import DatasetError
from compressor.limits import set_activity
from compressor.measure.environment import environment
from compressor.measure.inputs import dataset_batch, make_inputs
from compressor.measure.latency import LatencyPlan, LatencyStats, measure_latency
from compressor.measure.memory import PeakMemory
from compressor.measure.quality import Accuracy, Fidelity, fidelity, looks_like_classifier
from compressor.measure.runner import Runner, RunOptions, Session, run_batches, runner_for

EVAL_BATCH = 64
#: Without a dataset, fidelity is measured on this many generated samples.
GENERATED_SAMPLES = 8


@dataclass(frozen=True)
class MeasureSettings:
    batches: tuple[int, ...] = (1,)
    run: RunOptions = field(default_factory=RunOptions)
    plan: LatencyPlan = field(default_factory=LatencyPlan)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    latency: bool = True
    quality: bool = True


@dataclass
class ModelReport:
    """Everything measured about one model."""

    label: str
    path: str
    format: str
    backend: str
    size_bytes: int
    stats: dict[str, Any]
    #: RSS growth while the model was opened and run once; None when it was not run (:func:`static_report`).
    peak_memory_bytes: int | None
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    accuracy: float | None = None
    fidelity: Fidelity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": self.path,
            "format": self.format,
            "backend": self.backend,
            "size_bytes": self.size_bytes,
            "stats": self.stats,
            "peak_memory_bytes": self.peak_memory_bytes,
            "latency": {str(b): s.to_dict() for b, s in self.latency.items()},
            "accuracy": self.accuracy,
            "fidelity": self.fidelity.to_dict() if self.fidelity else None,
        }


@dataclass
class Measurement:
    """Models measured together; the first is the base that ratios and fidelity refer to."""

    models: list[ModelReport]
    settings: dict[str, Any]
    environment: dict[str, Any]
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": [m.to_dict() for m in self.models],
            "settings": self.settings,
            "environment": self.environment,
            "dataset": self.dataset,
        }


def _open(artifact: Artifact, settings: MeasureSettings, dataset: Dataset | None) -> tuple[Session, int]:
    """Open and run the model once, measuring how much memory that took."""
    runner = runner_for(artifact, settings.run.device)
    with PeakMemory() as memory:
        session = runner.open(artifact, settings.run)
        session.run(_feeds(session, dataset, max(settings.batches), settings.shapes))
    return session, memory.delta


def _evaluate(session: Session, dataset: Dataset | None, shapes: dict[str, tuple[int, ...]]) -> list[np.ndarray]:
    if dataset is None:
        return session.run(make_inputs(session.inputs, batch=GENERATED_SAMPLES, shapes=shapes, seed=1))
    matched = dataset.matched_to(session.inputs)
    return run_batches(session, list(matched.batches(EVAL_BATCH)))


def _feeds(
    session: Session, dataset: Dataset | None, batch: int, shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    if dataset is not None:
        return dataset_batch(dataset.matched_to(session.inputs), batch)
    return make_inputs(session.inputs, batch=batch, shapes=shapes)


def measure_models(
    artifacts: list[Artifact],
    settings: MeasureSettings,
    dataset: Dataset | None = None,
    labels: list[str] | None = None,
) -> Measurement:
    """Measure ``artifacts`` one at a time for memory and quality, then their latency interleaved."""
    labels = labels or [a.path.name for a in artifacts]
    runners = [runner_for(a, settings.run.device) for a in artifacts]
    reports = []
    _warm_runtimes(artifacts, runners, settings, dataset)
    with contextlib.ExitStack() as stack:
        sessions = []
        for artifact, runner, label in zip(artifacts, runners, labels, strict=True):
            session, memory = _open(artifact, settings, dataset)
            stack.callback(session.close)
            sessions.append(session)
            reports.append(
                ModelReport(
                    label=label,
                    path=str(artifact.path),
                    format=artifact.format,
                    backend=session.backend,
                    size_bytes=total_size(artifact.path),
                    stats=runner.stats(artifact),
                    peak_memory_bytes=memory,
                )
            )
        if settings.quality:
            _measure_quality(sessions, reports, dataset, settings)
        if settings.latency:
            for batch in settings.batches:
                set_activity(f"timing {len(sessions)} model(s) at batch {batch}")
                calls = [_runner_call(s, _feeds(s, dataset, batch, settings.shapes)) for s in sessions]
                for report, stats in zip(reports, measure_latency(calls, batch, settings.plan), strict=True):
                    report.latency[batch] = stats
    libraries = tuple(sorted({lib for r in runners for lib in r.libraries}))
    return Measurement(
        models=reports,
        settings={
            "batches": list(settings.batches),
            "device": settings.run.device,
            "threads": settings.run.resolved_threads,
            "intra_op_spinning": settings.run.allow_spinning,
            "interleaved": True,
            "latency_plan": settings.plan.__dict__,
            "shapes": {k: list(v) for k, v in settings.shapes.items()},
        },
        environment=environment(settings.run.resolved_threads, settings.run.device, libraries),
        dataset=dataset.source if dataset else None,
    )


def _warm_runtimes(
    artifacts: list[Artifact], runners: list[Runner], settings: MeasureSettings, dataset: Dataset | None
) -> None:
    """Open and run one model per runner once, unmeasured, so one-time runtime set-up (libraries, thread
    pools) is not counted as the first model's memory."""
    warmed: set[str] = set()
    for artifact, runner in zip(artifacts, runners, strict=True):
        if runner.name not in warmed:
            warmed.add(runner.name)
            session, _ = _open(artifact, settings, dataset)
            session.close()


def static_report(artifact: Artifact, label: str | None = None, device: str = "cpu", stats: bool = True) -> ModelReport:
    """What is known without running the model: size on disk and, with ``stats``, the runner's static facts
    (parameters, ops). No session is opened, so no runtime library (onnxruntime, torch) is imported for it."""
    return ModelReport(
        label=label or artifact.path.name,
        path=str(artifact.path),
        format=artifact.format,
        backend="not run",
        size_bytes=total_size(artifact.path),
        stats=runner_for(artifact, device).stats(artifact) if stats else {},
        peak_memory_bytes=None,
    )


def _runner_call(session: Session, feeds: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    return lambda: session.run(feeds)


def _measure_quality(
    sessions: list[Session], reports: list[ModelReport], dataset: Dataset | None, settings: MeasureSettings
) -> None:
    base_outputs = None
    labelled = dataset is not None and dataset.labels is not None
    classifier = looks_like_classifier(sessions[0].outputs[0].name if sessions[0].outputs else "", labelled)
    for index, (session, report) in enumerate(zip(sessions, reports, strict=True)):
        outputs = _evaluate(session, dataset, settings.shapes)
        if dataset is not None and dataset.labels is not None:
            report.accuracy = _accuracy(outputs, dataset.labels, report.label)
        if index == 0:
            base_outputs = outputs
        else:
            try:
                report.fidelity = fidelity(base_outputs or [], outputs, classifier)
            except ValueError as exc:
                raise DatasetError(f"cannot compare {report.label} with {reports[0].label}: {exc}") from exc


def _accuracy(outputs: list[np.ndarray], labels: np.ndarray, label: str) -> float:
    try:
        return Accuracy()(outputs, labels)
    except DatasetError as exc:
        raise DatasetError(f"accuracy of {label}: {exc.message}") from exc
