"""The pre-commit hook: a commit of an over-budget model is refused, an in-budget one goes through.

The temporary repository uses docs/ci.md's local-hook configuration (``language: system``: it reuses the
installed compressor, so it runs offline), whose hook must match this repository's .pre-commit-hooks.yaml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS, ROOT
from tests.gate.test_gate_ci_docs import ci_examples, shell_env

MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def test_manifest_is_valid_and_the_documented_configs_match_it(tmp_path: Path) -> None:
    assert subprocess.run([*PRE_COMMIT, "validate-manifest", str(MANIFEST)], capture_output=True).returncode == 0
    [hook] = yaml.safe_load(MANIFEST.read_text())
    assert (hook["id"], hook["entry"], hook["files"], hook["require_serial"]) == (
        "compressor-check", "compressor check", r"\.onnx$", True,
    )  # fmt: skip
    examples = ci_examples()
    for name in ("pre-commit-remote", "pre-commit-local"):
        config = tmp_path / f"{name}.yaml"
        config.write_text(examples[name])
        proc = subprocess.run([*PRE_COMMIT, "validate-config", str(config)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    [local] = yaml.safe_load(examples["pre-commit-local"])["repos"][0]["hooks"]
    for key in ("id", "entry", "files", "require_serial"):
        assert local[key] == hook[key], key
    assert yaml.safe_load(examples["pre-commit-remote"])["repos"][0]["hooks"] == [{"id": "compressor-check"}]


@pytest.fixture
def git_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **shell_env(),
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Gate Test",
        "GIT_AUTHOR_EMAIL": "gate@example.com",
        "GIT_COMMITTER_NAME": "Gate Test",
        "GIT_COMMITTER_EMAIL": "gate@example.com",
    }
    env.pop("GIT_DIR", None)
    env.pop("GIT_INDEX_FILE", None)
    git(repo, env, "init", "--quiet", "--initial-branch=main")
    (repo / ".pre-commit-config.yaml").write_text(ci_examples()["pre-commit-local"])
    (repo / "pyproject.toml").write_text('[tool.compressor.check]\nmax-size = "300KB"\n')
    proc = subprocess.run([*PRE_COMMIT, "install"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, env


def git(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_commit_of_an_over_budget_model_is_refused_and_an_in_budget_one_passes(
    git_repo: tuple[Path, dict[str, str]], int8_model: Path
) -> None:
    repo, env = git_repo
    (repo / "models").mkdir()
    model = repo / "models" / "classifier.onnx"
    shutil.copy(DIGITS / "digits_cnn.onnx", model)  # 610 KB, over the 300 KB budget
    git(repo, env, "add", ".")
    refused = git(repo, env, "commit", "-m", "add the classifier")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "compressor check (model budgets)" in output and "Failed" in output
    assert "check failed: models/classifier.onnx: max_size 609.7 KB > 300.0 KB" in output
    assert git(repo, env, "rev-parse", "--verify", "HEAD").returncode != 0  # nothing was committed

    shutil.copy(int8_model, model)  # the INT8 model: 164 KB
    git(repo, env, "add", ".")
    accepted = git(repo, env, "commit", "-m", "add the int8 classifier")
    output = accepted.stdout + accepted.stderr  # git shows a hook's output on stderr
    assert accepted.returncode == 0, output
    assert "compressor check (model budgets)" in output and "Passed" in output
    assert git(repo, env, "ls-files").stdout.split() == [".pre-commit-config.yaml", "models/classifier.onnx",
                                                          "pyproject.toml"]  # fmt: skip
    assert os.path.getsize(model) < 300_000
