"""The gate runs on every commit: a size-only check opens no session and imports no framework, and the CLI
imports commands (and plugins' commands) only when they are used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import DIGITS

FRAMEWORKS = ("torch", "transformers", "tensorflow", "neural_compressor", "optimum", "sklearn", "tensorrt")


def imported(*args: str, cwd: Path) -> set[str]:
    """Every module (full dotted name) ``python -m compressor ARGS`` imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "compressor", *args], capture_output=True, text=True, cwd=cwd,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_size_only_check_imports_no_runtime_and_no_framework(tmp_path: Path) -> None:
    modules = imported("check", str(DIGITS / "digits_cnn.onnx"), "--max-size", "25MB", cwd=tmp_path)
    assert "onnx" in top_level(modules)  # the check sees real imports
    assert "onnxruntime" not in top_level(modules)
    assert not top_level(modules) & set(FRAMEWORKS), top_level(modules) & set(FRAMEWORKS)
    other_commands = {"compressor.cli.quantize", "compressor.cli.compare", "compressor.cli.bench",
                      "compressor.cli.run_cmd", "compressor.cli.history_cmd"}  # fmt: skip
    assert not modules & other_commands


def test_params_check_needs_onnx_only(tmp_path: Path) -> None:
    modules = imported("check", str(DIGITS / "digits_cnn.onnx"), "--max-params", "5M", cwd=tmp_path)
    assert "onnxruntime" not in top_level(modules)


def test_version_loads_no_plugin_and_no_command(tmp_path: Path) -> None:
    modules = imported("--version", cwd=tmp_path)
    assert not {
        m
        for m in modules
        if m.startswith("compressor.cli.") and m not in ("compressor.cli.main", "compressor.cli.lazy")
    }
    assert "compressor.plugins" not in modules and "onnx" not in top_level(modules)


def test_help_still_lists_built_in_and_plugin_commands(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "compressor", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("check", "history", "inspect", "plugins", "quantize", "run"):
        assert f"\n  {command} " in proc.stdout, command
