"""Helpers for the reliability tests: commands in subprocesses, stopped at chosen moments, and the checks
that whatever they left behind is complete or absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from compressor.outputs import STAGING_PREFIX
from tests.conftest import ROOT, file_digest


@dataclass
class Workspace:
    """A folder with its own result cache and temporary folder (both checked after each kill)."""

    root: Path
    cache: Path
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "COMPRESSOR_CACHE_DIR": str(self.cache), "TMPDIR": str(self.tmp)}

    def command(self, *args: object) -> list[str]:
        return [sys.executable, "-m", "compressor", *(str(a) for a in args)]

    def run(self, *args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def stop_at(self, args: tuple[object, ...], delay: float, sig: int = signal.SIGKILL) -> int:
        """Start the command and send ``sig`` after ``delay`` seconds (unless it ended first); its exit code."""
        proc = subprocess.Popen(
            self.command(*args), cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            return proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            return proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "cache").mkdir()
    (tmp_path / "tmp").mkdir()
    return Workspace(tmp_path, tmp_path / "cache", tmp_path / "tmp")


def kill_delays(seed: int, reference_seconds: float, count: int) -> list[float]:
    """``count`` delays spread over a run of ``reference_seconds``: one drawn at random (seeded) from each of
    ``count`` equal slices, so kills land at start-up, in the pass, in verification and while publishing."""
    rng = np.random.default_rng(seed)
    return [reference_seconds * (i + rng.uniform(0.1, 0.9)) / count for i in range(count)]


def timed(function: Callable[[], subprocess.CompletedProcess[str]]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def staging(folder: Path) -> list[str]:
    """Temporary files and folders of compressor directly in ``folder``."""
    return sorted(p.name for p in folder.glob(f"{STAGING_PREFIX}*"))


def strays(folder: Path) -> list[str]:
    """Temporary files and folders of compressor under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(f"{STAGING_PREFIX}*"))


def assert_model_runs(path: Path) -> None:
    """The ONNX model at ``path`` (a file, or a folder holding model.onnx) loads, validates and runs."""
    import onnxruntime as ort

    from compressor.loaders import load_model

    artifact = load_model(path)
    session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in session.get_inputs():
        shape = [2 if not isinstance(d, int) else d for d in spec.shape]
        feeds[spec.name] = np.zeros(shape, np.float32)
    outputs = session.run(None, feeds)
    assert outputs and all(np.all(np.isfinite(o)) for o in outputs)


def assert_complete_folder(folder: Path, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    names = {p.name for p in folder.iterdir()}
    assert required <= names <= required | optional, f"{folder}: {sorted(names)}"
    if "report.json" in names:
        assert json.loads((folder / "report.json").read_text())["schema"] == "compressor/result"
    if "model.onnx" in names:
        assert_model_runs(folder / "model.onnx")


def assert_cache_consistent(cache: Path) -> int:
    """Every entry left in the cache verifies (ResultCache.get returns it, or removes it when damaged), and no
    staging folder counts as an entry. Returns the number of intact entries."""
    from compressor.cache import ResultCache

    results = ResultCache(cache)
    keys = results.stored_keys()
    assert all(len(k) == 64 and not k.startswith(".") for k in keys), keys
    intact = 0
    for key in keys:
        entry = results.get(key)
        if entry is None:
            assert not (cache / "passes" / key[:2] / key).exists(), "a damaged entry must be removed"
        else:
            intact += 1
            assert entry.artifact.path.is_file()
    for trial in (cache / "trials").glob("*.json"):
        json.loads(trial.read_text())  # trials are written by rename: never half a file
    return intact


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}
