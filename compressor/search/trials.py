"""Trials and the optimizer's result: plain data, rendered elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compressor.artifacts import Artifact
from compressor.measure.latency import LatencyStats

MEETS, REJECTED, FAILED = "meets", "rejected", "failed"


@dataclass
class Trial:
    """One candidate: how it was made, whether it meets the constraint, and what it measured."""

    index: int
    label: str
    specs: list[tuple[str, dict[str, Any]]]
    origin: str = "search"
    status: str = FAILED
    quality: float | None = None
    drop: float | None = None
    size_bytes: int | None = None
    latency: dict[int, LatencyStats] = field(default_factory=dict)
    error: str | None = None
    note: str = ""
    artifact: Artifact | None = None
    last_input: Artifact | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0

    @property
    def built(self) -> bool:
        return self.artifact is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "passes": [{"name": name, "config": config} for name, config in self.specs],
            "origin": self.origin,
            "status": self.status,
            "quality": self.quality,
            "drop": self.drop,
            "size_bytes": self.size_bytes,
            "latency": {str(b): s.to_dict() for b, s in self.latency.items()},
            "error": self.error,
            "note": self.note,
            "steps": self.steps,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class OptimizeResult:
    """Everything a search did: the baseline, all trials, the Pareto front, and the chosen one."""

    baseline: Trial
    trials: list[Trial]
    front: list[int]
    best: int | None
    settings: dict[str, Any]
    environment: dict[str, Any]
    stopped: str = ""
    #: Why nothing was chosen although some candidates met the constraint (none beat the baseline).
    verdict: str = ""
    cache: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def trial(self, index: int) -> Trial:
        return self.baseline if index == 0 else next(t for t in self.trials if t.index == index)

    def closest(self, count: int = 3) -> list[Trial]:
        """Built trials that missed the constraint, smallest quality drop first."""
        rejected = [t for t in self.trials if t.status == REJECTED and t.drop is not None]
        return sorted(rejected, key=lambda t: t.drop or 0.0)[:count]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_dict(),
            "trials": [t.to_dict() for t in self.trials],
            "pareto_front": self.front,
            "best": self.best,
            "settings": self.settings,
            "environment": self.environment,
            "stopped": self.stopped,
            "verdict": self.verdict,
            "cache": self.cache,
            "elapsed_s": round(self.elapsed_s, 2),
        }
