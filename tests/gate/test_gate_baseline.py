"""Baselines: written atomically, regressions detected per metric, latency noise allowed for, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.baseline import SCHEMA
from compressor.errors import ExitCode
from compressor.gate import MetricValue, RegressionLimits, compare_metric, compare_metrics, parse_max_regression
from compressor.outputs import STAGING_PREFIX
from tests.conftest import assert_clean_error, file_digest
from tests.gate.conftest import FAST

MODEL = "models/digits_cnn.onnx"
KEY = "models/digits_cnn.onnx"


def regressions(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["metric"]: r for r in json.loads(result.stdout)["result"]["models"][0]["baseline"]}


def edit_baseline(path: Path, **metrics: dict) -> None:
    data = json.loads(path.read_text())
    data["models"][KEY]["metrics"].update(metrics)
    path.write_text(json.dumps(data))


def test_update_baseline_writes_every_measured_metric(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--max-size", "1MB", "--latency", *FAST, "--update-baseline")
    assert result.code == ExitCode.OK, result.output
    data = json.loads((project / "compressor-baseline.json").read_text())
    assert (data["schema"], data["version"]) == (SCHEMA, 1)
    metrics = data["models"][KEY]["metrics"]
    assert metrics["size"] == {"value": 609728} and metrics["params"] == {"value": 151308}
    assert metrics["latency@b1"]["value"] > 0 and metrics["latency@b1"]["spread"] >= 0
    assert data["models"][KEY]["environment"]["threads"] == 1
    assert not list(project.glob(f"{STAGING_PREFIX}*"))
    assert "baseline" in result.stderr and "updated" in result.stderr


def test_size_regression_beyond_the_allowed_share_fails(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--update-baseline").code == ExitCode.OK  # a baseline alone needs no budget
    baseline = project / "compressor-baseline.json"
    edit_baseline(baseline, size={"value": 500000})  # the model is now 22% larger than its baseline
    result = cli("check", MODEL, "--baseline", baseline, "--json")
    assert result.code == ExitCode.CONSTRAINT_NOT_MET
    size = regressions(result)["size"]
    assert (size["status"], round(size["change"], 3), size["allowed"]) == ("fail", 0.219, 0.05)
    assert regressions(result)["params"]["status"] == "pass"
    # a per-metric override lets it through; the default still applies to the others
    assert cli("check", MODEL, "--baseline", baseline, "--max-regression", "size=25%").code == ExitCode.OK
    text = cli("check", MODEL, "--baseline", baseline)
    assert "check failed: models/digits_cnn.onnx: size regressed +21.9% against the baseline (allowed 5.0%)" in (
        text.stderr
    )


def test_latency_change_within_noise_is_not_flagged_but_a_real_one_is(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--latency", *FAST, "--update-baseline").code == ExitCode.OK
    baseline = project / "compressor-baseline.json"
    measured = json.loads(baseline.read_text())["models"][KEY]["metrics"]["latency@b1"]["value"]
    # the baseline says 15% faster, but its runs spread far wider than that: within noise
    edit_baseline(baseline, **{"latency@b1": {"value": measured / 1.15, "spread": measured * 3, "runs": 50}})
    noisy = cli("check", MODEL, "--baseline", baseline, *FAST, "--json")
    assert noisy.code == ExitCode.OK, noisy.output
    latency = regressions(noisy)["latency@b1"]
    assert latency["status"] == "pass" and latency["within_noise"] is True
    assert "within noise" in latency["note"]
    table = cli("check", MODEL, "--baseline", baseline, *FAST)
    assert "PASS (within noise)" in table.stdout
    # a tight baseline far below anything this model can do: a real regression
    edit_baseline(baseline, **{"latency@b1": {"value": measured / 20, "spread": 0.0, "runs": 50}})
    slow = cli("check", MODEL, "--baseline", baseline, *FAST, "--json")
    assert slow.code == ExitCode.CONSTRAINT_NOT_MET
    latency = regressions(slow)["latency@b1"]
    assert latency["status"] == "fail" and latency["within_noise"] is False and latency["change"] > 5


def test_latency_measured_elsewhere_is_skipped_not_failed(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", MODEL, "--latency", *FAST, "--update-baseline").code == ExitCode.OK
    baseline = project / "compressor-baseline.json"
    data = json.loads(baseline.read_text())
    data["models"][KEY]["environment"]["cpu"] = "Some Other CPU"
    data["models"][KEY]["metrics"]["latency@b1"] = {"value": 0.000001, "spread": 0.0, "runs": 50}
    baseline.write_text(json.dumps(data))
    result = cli("check", MODEL, "--baseline", baseline, *FAST, "--json")
    assert result.code == ExitCode.OK
    latency = regressions(result)["latency@b1"]
    assert latency["status"] == "skip" and "Some Other CPU" in latency["note"]


def test_update_is_refused_when_a_budget_fails(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--max-size", "1KB", "--update-baseline")
    assert result.code == ExitCode.CONSTRAINT_NOT_MET
    assert not (project / "compressor-baseline.json").exists()
    assert "not updated" in result.stderr


def test_update_keeps_other_models_entries(cli, project: Path, int8_model: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("check", int8_model, "--update-baseline").code == ExitCode.OK
    assert cli("check", MODEL, "--update-baseline").code == ExitCode.OK
    models = json.loads((project / "compressor-baseline.json").read_text())["models"]
    assert len(models) == 2 and KEY in models


BAD_BASELINES = [
    ("{not json", ("not valid JSON", "line 1")),
    ('{"schema": "something/else", "version": 1, "models": {}}', ("not a compressor baseline",)),
    (f'{{"schema": "{SCHEMA}", "version": 99, "models": {{}}}}', ("version 99",)),
    (f'{{"schema": "{SCHEMA}", "version": 1, "models": {{"other.onnx": {{"metrics": {{}}}}}}}}', (
        "no entry for model 'models/digits_cnn.onnx'", "other.onnx")),
    (f'{{"schema": "{SCHEMA}", "version": 1, "models": {{"{KEY}": {{"metrics": {{"speed": {{"value": 1}}}}}}}}}}',
     ("unknown metric 'speed'",)),
    (f'{{"schema": "{SCHEMA}", "version": 1, "models": {{"{KEY}": {{"metrics": {{"size": {{"value": "x"}}}}}}}}}}',
     ("metric 'size'", "numeric")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "fragments", "update"),
    # updating a baseline that lacks this model's entry adds it: that one is not an error
    [(c, f, u) for c, f in BAD_BASELINES for u in (False, True) if not (u and "no entry" in f[0])],
)
def test_bad_baseline_is_an_input_error_and_never_overwritten(
    cli, project: Path, content: str, fragments, update
) -> None:  # type: ignore[no-untyped-def]
    baseline = project / "compressor-baseline.json"
    baseline.write_text(content)
    before = file_digest(baseline)
    args = ["--update-baseline"] if update else []
    assert_clean_error(cli("check", MODEL, "--max-size", "1MB", "--baseline", baseline, *args), ExitCode.INPUT_ERROR,
                       *fragments)  # fmt: skip
    assert file_digest(baseline) == before
    assert not list(project.glob(f"{STAGING_PREFIX}*"))


def test_missing_baseline_is_an_input_error_with_a_hint(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--baseline", "nope.json")
    assert_clean_error(result, ExitCode.INPUT_ERROR, "nope.json", "not found")
    assert "--update-baseline" in result.stderr


# --- the rule itself ------------------------------------------------------------------------------------------


def test_regressions_are_relative_and_direction_aware() -> None:
    allowed = 0.05
    assert compare_metric(MetricValue("size", 100), MetricValue("size", 105), allowed).status == "pass"
    assert compare_metric(MetricValue("size", 100), MetricValue("size", 106), allowed).status == "fail"
    assert compare_metric(MetricValue("accuracy", 0.9), MetricValue("accuracy", 0.95), allowed).change < 0
    assert compare_metric(MetricValue("accuracy", 0.9), MetricValue("accuracy", 0.85), allowed).status == "fail"
    assert compare_metric(MetricValue("size", 100), None, allowed).status == "skip"


def test_latency_noise_band_is_the_mean_of_the_two_iqrs() -> None:
    base = MetricValue("latency@b1", 10.0, spread=2.0)
    inside = compare_metric(base, MetricValue("latency@b1", 12.0, spread=2.0), 0.05)
    assert inside.status == "pass" and inside.within_noise and inside.noise_ms == 2.0
    outside = compare_metric(base, MetricValue("latency@b1", 12.1, spread=2.0), 0.05)
    assert outside.status == "fail" and not outside.within_noise


def test_max_regression_parsing_and_overrides() -> None:
    assert parse_max_regression("5%") == (0.05, {})
    assert parse_max_regression(["2%", "latency=10%,size=0%"]) == (0.02, {"latency": 0.1, "size": 0.0})
    limits = RegressionLimits().updated(0.02, {"latency": 0.1})
    assert (limits.allowed("latency@b8"), limits.allowed("size")) == (0.1, 0.02)
    results = compare_metrics({"size": MetricValue("size", 100)}, {"size": MetricValue("size", 101)}, limits)
    assert [r.status for r in results] == ["pass"]
