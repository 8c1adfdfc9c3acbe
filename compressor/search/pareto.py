"""The Pareto front over (quality, latency, size) and the choice of the best model for an objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

OBJECTIVES = ("latency", "size", "balanced")
#: Objective scores this close (relative) are a tie, decided by quality: measurement noise decides nothing.
TIE = 1e-3


@dataclass(frozen=True)
class Point:
    """One measured model: higher quality is better, lower latency and size are better."""

    key: int
    quality: float
    latency_ms: float
    size_bytes: int


def dominates(a: Point, b: Point) -> bool:
    no_worse = a.quality >= b.quality and a.latency_ms <= b.latency_ms and a.size_bytes <= b.size_bytes
    better = a.quality > b.quality or a.latency_ms < b.latency_ms or a.size_bytes < b.size_bytes
    return no_worse and better


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates, by latency."""
    front = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: p.latency_ms)


def score(point: Point, baseline: Point, objective: str) -> float:
    """Lower is better: latency or size relative to the baseline, or their geometric mean."""
    latency = point.latency_ms / baseline.latency_ms if baseline.latency_ms else 1.0
    size = point.size_bytes / baseline.size_bytes if baseline.size_bytes else 1.0
    if objective == "latency":
        return latency + 1e-3 * size
    if objective == "size":
        return size + 1e-3 * latency
    return math.sqrt(latency * size)


def best(points: Sequence[Point], baseline: Point, objective: str) -> Point | None:
    """The best point for ``objective`` among those better than the baseline on it, or None.

    Scores within TIE of the lowest tie; among them the most accurate wins.
    """
    reference = score(baseline, baseline, objective)
    scored = [(score(p, baseline, objective), p) for p in points]
    better = [(value, p) for value, p in scored if value < reference]
    if not better:
        return None
    lowest = min(value for value, _ in better)
    tied = [(value, p) for value, p in better if value <= lowest * (1 + TIE)]
    return max(tied, key=lambda pair: (pair[1].quality, -pair[0]))[1]
