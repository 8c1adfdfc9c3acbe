"""Fixtures for the gate: a project folder (the cwd) holding the digits model, and its INT8 quantization."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import DIGITS

#: Latency options that keep a timed check short.
FAST = ("--min-runs", "5", "--min-time", "0.05", "--warmup", "1", "--threads", "1")


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN quantized to static INT8 (about 164 KB), made once per session."""
    from compressor.cli.main import main

    out = tmp_path_factory.mktemp("int8") / "digits_int8.onnx"
    code = main(
        ["quantize", str(DIGITS / "digits_cnn.onnx"), "--mode", "static", "--data", str(DIGITS / "calib.npz"),
         "-o", str(out)]
    )  # fmt: skip
    assert code == 0 and out.is_file()
    return out


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (the cwd, no pyproject.toml above it) with models/ and data/ from the example."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(DIGITS / "digits_cnn.onnx", root / "models" / "digits_cnn.onnx")
    shutil.copy(DIGITS / "test.npz", root / "data" / "test.npz")
    monkeypatch.chdir(root)
    return root


def write_pyproject(root: Path, body: str) -> Path:
    path = root / "pyproject.toml"
    path.write_text('[project]\nname = "models"\nversion = "0"\n\n' + textwrap.dedent(body))
    return path
