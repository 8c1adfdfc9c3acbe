"""Budgets: limits on size, parameters, latency, accuracy and fidelity, checked against a measurement."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from compressor.errors import UsageError
from compressor.measure.suite import ModelReport
from compressor.parsing import format_size, parse_percent, parse_size


class Budgets(BaseModel):
    """Limits a model must meet. Unset budgets are not checked."""

    model_config = ConfigDict(extra="forbid")

    max_size: int | None = None
    max_params: int | None = None
    max_latency_ms: float | None = None
    #: Batch size the latency budget applies to.
    latency_batch: int = 1
    min_accuracy: float | None = None
    min_fidelity: float | None = None

    @field_validator("max_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return None if value is None else _usage_to_value(parse_size, value)

    @field_validator("min_accuracy", mode="before")
    @classmethod
    def _accuracy(cls, value: Any) -> Any:
        return None if value is None else _usage_to_value(lambda v: parse_percent(v, "min_accuracy"), value)

    @field_validator("max_params", "max_latency_ms", "min_fidelity", "latency_batch")
    @classmethod
    def _not_negative(cls, value: Any) -> Any:
        if value is not None and value < 0:
            raise ValueError("must not be negative")
        return value

    @property
    def active(self) -> bool:
        return any(v is not None for k, v in self.model_dump().items() if k != "latency_batch")

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None


def _usage_to_value(parser: Any, value: Any) -> Any:
    try:
        return parser(value)
    except UsageError as exc:
        raise ValueError(exc.message) from None


@dataclass(frozen=True)
class BudgetResult:
    name: str
    measured: float | None
    limit: float
    passed: bool
    #: How far inside (+) or outside (-) the limit, relative to it.
    margin: float | None
    display_measured: str
    display_limit: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, measured: float | None, limit: float, upper: bool, show: Any) -> BudgetResult:
    if measured is None:
        return BudgetResult(name, None, limit, False, None, "not measured", show(limit))
    passed = measured <= limit if upper else measured >= limit
    margin = ((limit - measured) if upper else (measured - limit)) / limit if limit else None
    return BudgetResult(name, measured, limit, passed, margin, show(measured), show(limit))


def check_budgets(budgets: Budgets, report: ModelReport) -> list[BudgetResult]:
    """Each set budget, checked against ``report``."""
    results = []
    if budgets.max_size is not None:
        results.append(_check("max_size", report.size_bytes, budgets.max_size, True, format_size))
    if budgets.max_params is not None:
        results.append(
            _check("max_params", report.stats.get("params"), budgets.max_params, True, lambda v: f"{v:,.0f}")
        )
    if budgets.max_latency_ms is not None:
        stats = report.latency.get(budgets.latency_batch)
        results.append(
            _check(
                f"max_latency_ms@b{budgets.latency_batch}",
                stats.p50_ms if stats else None,
                budgets.max_latency_ms,
                True,
                lambda v: f"{v:.3f} ms",
            )
        )
    if budgets.min_accuracy is not None:
        results.append(_check("min_accuracy", report.accuracy, budgets.min_accuracy, False, lambda v: f"{v:.2%}"))
    if budgets.min_fidelity is not None:
        cosine = report.fidelity.cosine_mean if report.fidelity else None
        results.append(_check("min_fidelity", cosine, budgets.min_fidelity, False, lambda v: f"{v:.4f}"))
    return results
