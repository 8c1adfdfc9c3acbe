"""Runners execute an artifact on a device, so the same measurement code serves every format."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from compressor.artifacts import Artifact, TensorSpec
from compressor.errors import MissingDependencyError, UsageError, unknown_name_error
from compressor.plugins import get_registry

DEVICES = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class RunOptions:
    """How to run: device, threads, and whether idle threads may spin (off when sessions share a process)."""

    device: str = "cpu"
    threads: int = 0
    allow_spinning: bool = False

    @property
    def resolved_threads(self) -> int:
        return self.threads or default_threads()


def default_threads() -> int:
    """Threads to use when not told: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Session(Protocol):
    """An opened model, ready to run. ``run`` takes feeds by input name and returns outputs in order."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: What actually runs it, e.g. "onnxruntime CPUExecutionProvider".
    backend: str

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class Runner:
    """Base class of runners. ``open`` may import heavy libraries; registering must not."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: Distributions whose versions a measurement with this runner records.
    libraries: ClassVar[tuple[str, ...]] = ()

    def open(self, artifact: Artifact, options: RunOptions) -> Session:
        raise NotImplementedError

    def stats(self, artifact: Artifact) -> dict[str, Any]:
        """Static facts about the model (params, ops, sparsity); size is measured by the caller."""
        return {}


def runner_for(artifact: Artifact, device: str) -> Runner:
    """The registered runner for the artifact's format that supports ``device``."""
    if device not in DEVICES:
        raise unknown_name_error("device", device, DEVICES, UsageError)
    candidates = [cls for cls in get_registry().runners.values() if artifact.format in cls.formats]
    if not candidates:
        raise MissingDependencyError(
            f"no runner can execute '{artifact.format}' models",
            hint="install the plugin for this format (see `compressor plugins`)",
        )
    for cls in candidates:
        if device in cls.devices:
            return cls()
    raise MissingDependencyError(
        f"no runner executes '{artifact.format}' models on device '{device}'",
        hint=f"runners for this format support: {sorted({d for c in candidates for d in c.devices})}",
    )


def open_session(artifact: Artifact, options: RunOptions) -> Session:
    return runner_for(artifact, options.device).open(artifact, options)


def run_batches(session: Session, feeds_batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Run each batch and concatenate every output along the first axis."""
    collected: list[list[np.ndarray]] = []
    for feeds in feeds_batches:
        outputs = session.run(feeds)
        if not collected:
            collected = [[] for _ in outputs]
        for bucket, out in zip(collected, outputs, strict=False):
            bucket.append(np.asarray(out))
    return [np.concatenate(parts) if parts[0].ndim else parts[0] for parts in collected]
