"""`[tool.compressor.check]` in pyproject.toml: defaults, per-model globs, flags on top, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.config import load_config, model_key
from compressor.errors import ExitCode
from tests.conftest import assert_clean_error, file_digest
from tests.gate.conftest import write_pyproject

MODEL = "models/digits_cnn.onnx"


def budgets_of(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {b["name"]: b for b in json.loads(result.stdout)["result"]["models"][0]["budgets"]}


def test_defaults_then_matching_model_sections_then_flags(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    write_pyproject(
        project,
        """
        [tool.compressor.check]
        max-size = "25MB"
        max_params = "1M"

        [tool.compressor.check.models."models/*.onnx"]
        max-size = "700KB"

        [tool.compressor.check.models."digits_*"]
        max-size = "650KB"

        [tool.compressor.check.models."other/*.onnx"]
        max-size = "1KB"
        """,
    )
    result = cli("check", MODEL, "--json")
    assert result.code == ExitCode.OK, result.output
    budgets = budgets_of(result)
    assert budgets["max_size"]["limit"] == 650_000  # the last matching section wins
    assert budgets["max_params"]["limit"] == 1_000_000
    sources = json.loads(result.stdout)["result"]["models"][0]["settings"]["sources"]
    assert sources == [
        "[tool.compressor.check]",
        '[tool.compressor.check.models."models/*.onnx"]',
        '[tool.compressor.check.models."digits_*"]',
    ]
    flagged = cli("check", MODEL, "--max-size", "600KB", "--json")  # a flag beats every section
    assert flagged.code == ExitCode.CONSTRAINT_NOT_MET
    assert budgets_of(flagged)["max_size"]["limit"] == 600_000


def test_nearest_pyproject_is_found_from_a_subfolder_and_paths_are_relative_to_it(
    cli, project: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    write_pyproject(
        project,
        """
        [tool.compressor.check]
        min-accuracy = "98%"
        data = "data/test.npz"
        """,
    )
    monkeypatch.chdir(project / "models")
    result = cli("check", "digits_cnn.onnx", "--json")
    assert result.code == ExitCode.OK, result.output
    model = json.loads(result.stdout)["result"]["models"][0]
    assert model["key"] == "models/digits_cnn.onnx"
    assert model["settings"]["data"] == str(project / "data" / "test.npz")


def test_explicit_config_file(cli, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "gate.toml"
    other.write_text('[tool.compressor.check]\nmax-size = "100KB"\n')
    result = cli("check", MODEL, "--config", other)
    assert result.code == ExitCode.CONSTRAINT_NOT_MET


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ('max-size = "lots"', ("[tool.compressor.check] max-size", "cannot read size 'lots'")),
        ("max-size = -5", ("max-size", "negative")),
        ('max-szie = "1MB"', ("unknown key 'max-szie'", "max-size")),
        ("record = 1", ("record", "true or false")),
        ('max-regression = "speed=5%"', ("max-regression", "Unknown metric 'speed'")),
        ('max-regression = {latency = "120%"}', ("max-regression", "between 0% and 100%")),
        ('[tool.compressor.check.models."*.onnx"]\nmin-accuracy = "lots"', ('models."*.onnx"] min-accuracy',)),
        ('[tool.compressor.check.models."*.onnx"]\ndevice = "cpu"', ("device", "whole run")),
        ('[tool.compressor.check.models."*.onnx"]\nmax-size = [1]', ('models."*.onnx"] max-size',)),
        ("max-size = = 1", ("not valid TOML",)),
    ],
)
def test_malformed_section_is_a_clear_error_naming_the_key(cli, project: Path, body: str, fragments) -> None:  # type: ignore[no-untyped-def]
    path = write_pyproject(project, "[tool.compressor.check]\n" + body + "\n")
    before = file_digest(path)
    assert_clean_error(cli("check", MODEL), ExitCode.INPUT_ERROR, "pyproject.toml", *fragments)
    assert file_digest(path) == before


def test_pyproject_without_the_section_means_no_defaults(project: Path) -> None:
    write_pyproject(project, "[tool.ruff]\nline-length = 100\n")
    config = load_config()
    assert config.path is None and config.root == project.resolve() and config.values == {}


def test_model_keys_are_relative_to_the_project_root(project: Path) -> None:
    assert model_key("models/digits_cnn.onnx", project) == "models/digits_cnn.onnx"
    assert model_key(project / "models" / ".." / "models" / "digits_cnn.onnx", project) == "models/digits_cnn.onnx"
    assert model_key("/elsewhere/m.onnx", project) == "/elsewhere/m.onnx"
