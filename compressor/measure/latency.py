"""The latency harness: warm-up, then interleaved timed runs until a minimum count and time are met.

Several models are measured in one loop, a short round each in turn, so drift of the machine (heat,
other load) spreads over all of them instead of favouring whichever ran first. Only one model runs at
a time; sessions are opened with intra-op spin-waiting off so an idle one does not steal CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LatencyPlan:
    """How long to measure. The defaults give a stable median for millisecond-scale models."""

    warmup_runs: int = 5
    warmup_seconds: float = 0.2
    min_runs: int = 30
    min_seconds: float = 1.0
    #: Stop a model after this long even if ``min_runs`` is not reached (very slow models).
    max_seconds: float = 60.0
    #: Time each model gets per interleaved round.
    round_seconds: float = 0.05


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one model at one batch size, in milliseconds."""

    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    stdev_ms: float
    iqr_ms: float

    @property
    def spread(self) -> float:
        """Relative spread: inter-quartile range over the median."""
        return self.iqr_ms / self.p50_ms if self.p50_ms else 0.0

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch / (self.p50_ms / 1000) if self.p50_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}
        data["spread"] = round(self.spread, 4)
        data["throughput_per_s"] = round(self.throughput, 2)
        return data

    @classmethod
    def from_samples(cls, batch: int, samples_ns: list[int]) -> LatencyStats:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p25, p50, p75, p90, p99 = np.percentile(ms, [25, 50, 75, 90, 99])
        return cls(
            batch=batch,
            runs=len(ms),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(ms.mean()),
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            stdev_ms=float(statistics.pstdev(ms)) if len(ms) > 1 else 0.0,
            iqr_ms=float(p75 - p25),
        )


def _timed(call: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    call()
    return time.perf_counter_ns() - start


def measure_latency(
    calls: list[Callable[[], object]], batch: int, plan: LatencyPlan | None = None
) -> list[LatencyStats]:
    """Time each zero-argument ``call`` (one model run each), interleaved; returns stats in order."""
    plan = plan or LatencyPlan()
    for call in calls:
        started = time.perf_counter()
        for done in range(10_000):
            call()
            if done + 1 >= plan.warmup_runs and time.perf_counter() - started >= plan.warmup_seconds:
                break
    samples: list[list[int]] = [[] for _ in calls]
    spent = [0.0] * len(calls)

    def finished(i: int) -> bool:
        enough = len(samples[i]) >= plan.min_runs and spent[i] >= plan.min_seconds
        return enough or spent[i] >= plan.max_seconds

    while not all(finished(i) for i in range(len(calls))):
        for i, call in enumerate(calls):
            if finished(i):
                continue
            round_start = time.perf_counter()
            while True:
                samples[i].append(_timed(call))
                if time.perf_counter() - round_start >= plan.round_seconds:
                    break
            spent[i] += time.perf_counter() - round_start
    return [LatencyStats.from_samples(batch, s) for s in samples]
