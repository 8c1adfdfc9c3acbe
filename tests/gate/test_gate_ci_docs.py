"""docs/ci.md's examples are the ones that run: its pyproject section, baseline command, and the gate commands
of its GitHub Actions workflow and GitLab CI job, run in a project laid out as the page describes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from compressor.errors import ExitCode
from tests.conftest import DIGITS, ROOT

CI_DOC = ROOT / "docs" / "ci.md"
_BLOCK = re.compile(r"<!-- ci-example: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.S)


def ci_examples() -> dict[str, str]:
    """The blocks of docs/ci.md marked ``<!-- ci-example: NAME -->``, by name."""
    return {name: body for name, _lang, body in _BLOCK.findall(CI_DOC.read_text())}


def shell_env() -> dict[str, str]:
    """This environment with the venv's ``compressor`` first on PATH, as after ``pip install compressor``."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=shell_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def gate_commands() -> dict[str, str]:
    """The `compressor check` line of the GitHub workflow and of the GitLab job."""
    examples = ci_examples()
    workflow = yaml.safe_load(examples["github-actions"])
    steps = workflow["jobs"]["gate"]["steps"]
    github = [s["run"] for s in steps if "compressor check" in s.get("run", "")]
    gitlab = [line for line in yaml.safe_load(examples["gitlab-ci"])["model-gate"]["script"] if "compressor" in line]
    assert len(github) == 1 and len(gitlab) == 1
    return {"github": github[0].strip(), "gitlab": gitlab[0].strip()}


def test_every_marked_example_is_present_and_parses() -> None:
    examples = ci_examples()
    assert set(examples) == {
        "pyproject", "create-baseline", "github-actions", "gitlab-ci", "pre-commit-remote", "pre-commit-local",
    }  # fmt: skip
    for name in ("github-actions", "gitlab-ci", "pre-commit-remote", "pre-commit-local"):
        assert isinstance(yaml.safe_load(examples[name]), dict), name
    workflow = yaml.safe_load(examples["github-actions"])
    assert workflow["permissions"]["pull-requests"] == "write"
    gitlab = yaml.safe_load(examples["gitlab-ci"])["model-gate"]
    assert gitlab["artifacts"]["reports"]["junit"] == "gate.xml"


def test_the_documented_gate_runs_as_written(tmp_path: Path, int8_model: Path) -> None:
    project = tmp_path / "repo"
    (project / "models").mkdir(parents=True)
    (project / "data").mkdir()
    examples = ci_examples()
    (project / "pyproject.toml").write_text('[project]\nname = "models"\nversion = "0"\n\n' + examples["pyproject"])
    shutil.copy(DIGITS / "test.npz", project / "data" / "test.npz")
    shutil.copy(DIGITS / "digits_cnn.onnx", project / "models" / "digits.onnx")
    int8 = project / "models" / "digits-int8.onnx"
    shutil.copy(int8_model, int8)

    for line in examples["create-baseline"].splitlines():
        if line.startswith("compressor "):
            created = sh(line, project)
            assert created.returncode == ExitCode.OK, created.stderr
    assert (project / "compressor-baseline.json").is_file()

    commands = gate_commands()
    assert commands["github"] == commands["gitlab"]  # both CI systems run the very same gate
    passing = sh(commands["github"], project)
    assert passing.returncode == ExitCode.OK, passing.stdout + passing.stderr
    assert "## compressor check: PASS" in (project / "gate.md").read_text()
    suites = ET.parse(project / "gate.xml").getroot()
    assert {s.get("name") for s in suites.iter("testsuite")} == {"models/digits.onnx", "models/digits-int8.onnx"}
    int8_cases = {c.get("name") for c in suites.iter("testcase") if c.get("classname", "").endswith("int8.onnx")}
    assert {"max_size", "min_accuracy", "baseline size", "baseline accuracy"} <= int8_cases

    shutil.copy(DIGITS / "digits_cnn.onnx", int8)  # someone commits the fp32 model as the int8 one
    failing = sh(commands["gitlab"], project)
    assert failing.returncode == ExitCode.CONSTRAINT_NOT_MET, failing.stdout + failing.stderr
    assert "check failed: models/digits-int8.onnx: max_size 609.7 KB > 200.0 KB" in failing.stderr
    report = (project / "gate.md").read_text()
    assert "## compressor check: FAIL" in report and "size regressed" in report
