"""The gate: budgets (absolute limits) and regressions against a baseline, checked against a measurement.

Budgets limit size, parameters, latency, accuracy and fidelity. Regressions compare the same metrics with
a recorded baseline: a metric may get worse by at most its ``max_regression`` (relative to the baseline);
a latency change that lies within the measurement noise of the two runs is never a regression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from compressor.errors import UsageError, unknown_name_error
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


# --- metrics and regressions against a baseline --------------------------------------------------------------

#: Metric families the gate compares, and whether a higher value is worse (costs) or better (quality).
HIGHER_IS_WORSE = {"size": True, "params": True, "latency": True, "accuracy": False, "fidelity": False}
METRIC_FAMILIES = tuple(HIGHER_IS_WORSE)
DEFAULT_MAX_REGRESSION = 0.05


def metric_family(name: str) -> str:
    """'latency@b8' -> 'latency'; 'size' -> 'size'."""
    return name.split("@", 1)[0]


def latency_metric(batch: int) -> str:
    return f"latency@b{batch}"


@dataclass(frozen=True)
class MetricValue:
    """One comparable number about a model. Latency is the median in ms, with its inter-quartile range."""

    name: str
    value: float
    #: Latency only: the inter-quartile range of the timed runs, in ms.
    spread: float | None = None
    runs: int | None = None

    @property
    def family(self) -> str:
        return metric_family(self.name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": _rounded(self.value)}
        if self.spread is not None:
            data["spread"] = _rounded(self.spread)
        if self.runs is not None:
            data["runs"] = self.runs
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> MetricValue:
        spread = data.get("spread")
        runs = data.get("runs")
        return cls(name, float(data["value"]), None if spread is None else float(spread), runs)


def _rounded(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


def display_metric(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    family = metric_family(name)
    if family == "size":
        return format_size(value)
    if family == "params":
        return f"{value:,.0f}"
    if family == "latency":
        return f"{value:.3f} ms"
    if family == "accuracy":
        return f"{value:.2%}"
    return f"{value:.4f}"


def model_metrics(report: ModelReport) -> dict[str, MetricValue]:
    """The comparable metrics of a measured model: size, params, latency by batch, accuracy, fidelity.

    A value that is not finite (the fidelity of a model that produced NaN) is left out: it cannot be compared.
    """
    metrics = {"size": MetricValue("size", float(report.size_bytes))}
    params = report.stats.get("params")
    if isinstance(params, int):
        metrics["params"] = MetricValue("params", float(params))
    for batch, stats in sorted(report.latency.items()):
        name = latency_metric(batch)
        metrics[name] = MetricValue(name, stats.p50_ms, stats.iqr_ms, stats.runs)
    if report.accuracy is not None:
        metrics["accuracy"] = MetricValue("accuracy", report.accuracy)
    if report.fidelity is not None:
        metrics["fidelity"] = MetricValue("fidelity", report.fidelity.cosine_mean)
    return {name: m for name, m in metrics.items() if math.isfinite(m.value)}


@dataclass(frozen=True)
class RegressionLimits:
    """How much worse than the baseline each metric family may get, as a fraction of the baseline value."""

    default: float = DEFAULT_MAX_REGRESSION
    overrides: dict[str, float] = field(default_factory=dict)

    def allowed(self, metric: str) -> float:
        return self.overrides.get(metric_family(metric), self.default)

    def updated(self, default: float | None, overrides: Mapping[str, float]) -> RegressionLimits:
        """These limits with ``default`` (when given) and ``overrides`` laid on top."""
        return RegressionLimits(self.default if default is None else default, {**self.overrides, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return {"default": self.default, **{k: self.overrides[k] for k in sorted(self.overrides)}}


def parse_max_regression(items: str | Iterable[str]) -> tuple[float | None, dict[str, float]]:
    """'5%' -> (0.05, {}); 'latency=10%,size=0%' -> (None, {'latency': 0.1, 'size': 0.0}); both may mix."""
    pieces = [items] if isinstance(items, str) else list(items)
    default: float | None = None
    overrides: dict[str, float] = {}
    for piece in pieces:
        for item in str(piece).split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep:
                default = parse_percent(item, "--max-regression")
                continue
            name = name.strip()
            if name not in HIGHER_IS_WORSE:
                raise unknown_name_error("metric", name, METRIC_FAMILIES, UsageError)
            overrides[name] = parse_percent(value.strip(), f"--max-regression {name}")
    return default, overrides


@dataclass(frozen=True)
class RegressionResult:
    """One metric compared with its baseline value."""

    metric: str
    baseline: float
    measured: float | None
    #: Relative change in the worse direction: +0.12 is 12% worse, -0.05 is 5% better; None if unknown.
    change: float | None
    #: The largest allowed ``change``.
    allowed: float
    #: "pass", "fail" or "skip" (not compared: not measured this run, or measured elsewhere).
    status: str
    #: Latency only: the noise band in ms (half the sum of the two runs' inter-quartile ranges).
    noise_ms: float | None = None
    #: Latency only: the difference is no larger than the noise band, so it is not a regression.
    within_noise: bool = False
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    @property
    def display_result(self) -> str:
        if self.status == "skip":
            return "SKIP"
        word = "PASS" if self.passed else "FAIL"
        return f"{word} (within noise)" if self.within_noise else word

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["display_baseline"] = display_metric(self.metric, self.baseline)
        data["display_measured"] = display_metric(self.metric, self.measured)
        return data


def latency_noise_ms(baseline: MetricValue, measured: MetricValue) -> float:
    """The noise band of a latency comparison: the mean of the two runs' inter-quartile ranges.

    A difference of medians smaller than this lies inside the run-to-run spread of both measurements.
    """
    return ((baseline.spread or 0.0) + (measured.spread or 0.0)) / 2


def compare_metric(baseline: MetricValue, measured: MetricValue | None, allowed: float) -> RegressionResult:
    """Compare one metric with its baseline value; latency differences within noise never fail."""
    name = baseline.name
    if measured is None:
        return RegressionResult(name, baseline.value, None, None, allowed, "skip", note="not measured this run")
    worse_by = (
        measured.value - baseline.value if HIGHER_IS_WORSE[metric_family(name)] else baseline.value - measured.value
    )
    if baseline.value:
        change: float | None = worse_by / abs(baseline.value)
    else:
        change = 0.0 if worse_by <= 0 else None
    over = change is None or change > allowed
    noise = latency_noise_ms(baseline, measured) if metric_family(name) == "latency" else None
    within_noise = noise is not None and abs(measured.value - baseline.value) <= noise
    notes = []
    if within_noise:
        notes.append(f"difference {measured.value - baseline.value:+.4f} ms is within noise (±{noise:.4f} ms)")
    if change is not None and change < 0 and not within_noise:
        notes.append("better than the baseline")
    status = "fail" if over and not within_noise else "pass"
    return RegressionResult(
        name, baseline.value, measured.value, change, allowed, status, noise, within_noise, "; ".join(notes)
    )


def compare_metrics(
    measured: Mapping[str, MetricValue],
    baseline: Mapping[str, MetricValue],
    limits: RegressionLimits,
    skip_latency: str | None = None,
) -> list[RegressionResult]:
    """Every baseline metric compared with this run's value; ``skip_latency`` says why latency is not compared."""
    results = []
    for name in sorted(baseline, key=_metric_order):
        base = baseline[name]
        allowed = limits.allowed(name)
        if skip_latency and metric_family(name) == "latency":
            results.append(
                RegressionResult(name, base.value, _value(measured.get(name)), None, allowed, "skip", note=skip_latency)
            )
            continue
        results.append(compare_metric(base, measured.get(name), allowed))
    return results


def _value(metric: MetricValue | None) -> float | None:
    return None if metric is None else metric.value


def _metric_order(name: str) -> tuple[int, str]:
    family = metric_family(name)
    return (METRIC_FAMILIES.index(family) if family in METRIC_FAMILIES else len(METRIC_FAMILIES), name)
