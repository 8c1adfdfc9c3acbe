"""`compressor check`: budgets from flags, the table, the envelope, exit codes and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.gate.conftest import FAST

MODEL = "models/digits_cnn.onnx"


def test_over_budget_exits_with_the_budget_code_and_names_the_broken_budget(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--max-size", "300KB", "--max-params", "5M")
    assert result.code == ExitCode.CONSTRAINT_NOT_MET, result.output
    assert "check failed: models/digits_cnn.onnx: max_size 609.7 KB > 300.0 KB" in result.stderr
    assert "max_params" not in result.stderr  # only the broken one is named
    rows = {line.split("│")[2].strip(): line for line in result.stdout.splitlines() if line.count("│") > 6}
    assert "FAIL" in rows["max_size"] and "-103.2%" in rows["max_size"] and "300.0 KB" in rows["max_size"]
    assert "PASS" in rows["max_params"] and "151,308" in rows["max_params"] and "5,000,000" in rows["max_params"]


def test_in_budget_exits_0(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--max-size", "25MB", "--max-params", "200k")
    assert result.code == ExitCode.OK, result.output
    assert "check passed: all 2 checks passed (1 model)" in result.stderr


def test_json_gives_every_budget_in_the_versioned_envelope(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, "--max-size", "0.5MiB", "--max-latency-ms", "1000", *FAST, "--json")
    assert result.code == ExitCode.CONSTRAINT_NOT_MET
    envelope = json.loads(result.stdout)
    assert (envelope["schema"], envelope["version"], envelope["command"]) == ("compressor/result", 1, "check")
    assert (envelope["ok"], envelope["exit_code"]) == (False, 1)
    check = envelope["result"]
    assert (check["passed"], check["checks"], check["failed"]) == (False, 2, 1)
    model = check["models"][0]
    budgets = {b["name"]: b for b in model["budgets"]}
    assert budgets["max_size"]["limit"] == 524288 and budgets["max_size"]["passed"] is False
    assert budgets["max_latency_ms@b1"]["passed"] is True and budgets["max_latency_ms@b1"]["margin"] > 0.9
    assert model["metrics"]["latency@b1"]["value"] > 0 and "spread" in model["metrics"]["latency@b1"]
    assert model["settings"]["sources"] == ["command line"]


def test_accuracy_and_fidelity_budgets(cli, project: Path, int8_model: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "check", int8_model, "--min-accuracy", "98%", "--data", "data/test.npz",
        "--min-fidelity", "0.999999", "--reference", MODEL, "--json",
    )  # fmt: skip
    check = json.loads(result.stdout)["result"]
    budgets = {b["name"]: b for b in check["models"][0]["budgets"]}
    assert budgets["min_accuracy"]["passed"] and budgets["min_accuracy"]["measured"] >= 0.98
    assert not budgets["min_fidelity"]["passed"] and 0.99 < budgets["min_fidelity"]["measured"] < 0.999999
    assert result.code == ExitCode.CONSTRAINT_NOT_MET


def test_several_models_are_checked_and_each_failure_named(cli, project: Path, int8_model: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("check", MODEL, int8_model, "--max-size", "200KB")
    assert result.code == ExitCode.CONSTRAINT_NOT_MET
    failed = [line for line in result.stderr.splitlines() if line.startswith("check failed")]
    assert failed == ["check failed: models/digits_cnn.onnx: max_size 609.7 KB > 200.0 KB"]
    assert "digits_int8.onnx" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (("--max-size", "-5MB"), ExitCode.USAGE_ERROR, ("--max-size", "-5MB")),
        (("--max-size", "lots"), ExitCode.USAGE_ERROR, ("cannot read size 'lots'",)),
        (("--max-params", "many"), ExitCode.USAGE_ERROR, ("--max-params", "many")),
        (("--max-latency-ms", "-1"), ExitCode.USAGE_ERROR, ("--max-latency-ms", "positive")),
        (("--max-sise", "1MB"), ExitCode.USAGE_ERROR, ("--max-sise",)),
        (("--min-accuracy", "98%"), ExitCode.USAGE_ERROR, ("min-accuracy", "--data")),
        (("--min-fidelity", "0.99"), ExitCode.USAGE_ERROR, ("min-fidelity", "--reference")),
        (("--max-regression", "speed=5%", "--baseline", "b.json"), ExitCode.USAGE_ERROR, ("Unknown metric 'speed'",)),
        ((), ExitCode.USAGE_ERROR, ("nothing to check",)),
        (("--max-size", "1MB", "--junit", "out.txt"), ExitCode.USAGE_ERROR, (".xml",)),
        (("--max-size", "1MB", "--report", "out.html"), ExitCode.USAGE_ERROR, (".md",)),
    ],
)
def test_bad_options_are_one_line_errors(cli, project: Path, args: tuple[str, ...], code: int, fragments) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(cli("check", MODEL, *args), code, *fragments)
    assert sorted(p.name for p in project.iterdir()) == ["data", "models"]  # nothing written


def test_missing_and_corrupt_models_are_input_errors(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(cli("check", "models/nope.onnx", "--max-size", "1MB"), ExitCode.INPUT_ERROR, "not found")
    (project / "models" / "broken.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert_clean_error(cli("check", "models/broken.onnx", "--max-size", "1MB"), ExitCode.INPUT_ERROR, "broken.onnx")


def test_unlabelled_data_for_accuracy_is_a_dataset_error(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    with np.load(project / "data" / "test.npz") as data:
        np.savez(project / "data" / "unlabelled.npz", input=data["input"])
    result = cli("check", MODEL, "--min-accuracy", "0.9", "--data", "data/unlabelled.npz")
    assert_clean_error(result, ExitCode.INPUT_ERROR, "labels")


@pytest.mark.parametrize(("text", "expected"), [("5M", 5_000_000), ("250k", 250_000), ("1.5B", 1_500_000_000),
                                                ("151308", 151_308), (42, 42)])  # fmt: skip
def test_parameter_counts_take_k_m_b_suffixes(text: str | int, expected: int) -> None:
    from compressor.parsing import parse_count

    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["-5", "5MB", "lots", "", 1.5, -1])
def test_bad_parameter_counts_are_usage_errors(text: str | float) -> None:
    from compressor.errors import UsageError
    from compressor.parsing import parse_count

    with pytest.raises(UsageError):
        parse_count(text)
