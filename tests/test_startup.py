"""Start-up discipline: commands on ONNX models never import torch or other frameworks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "tensorflow", "neural_compressor", "optimum", "sklearn")


def imported_modules(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "compressor", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_inspect_on_onnx_imports_no_framework(digits_dir: Path) -> None:
    modules = imported_modules("inspect", str(digits_dir / "digits_cnn.onnx"))
    assert "onnx" in modules  # the check sees real imports
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_help_and_version_import_no_framework() -> None:
    assert not imported_modules("--help") & set(HEAVY)
    proc = subprocess.run([sys.executable, "-m", "compressor", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "compressor, version" in proc.stdout
