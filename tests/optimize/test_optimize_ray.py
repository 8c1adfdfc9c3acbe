"""`--executor ray` on a private local Ray instance: the same results as the local executor, pass results
brought back through the object store as a remote worker without the driver's filesystem would, loopback
only, and nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest

from compressor.cache import ResultCache, content_hash
from compressor.cli.main import main
from compressor.errors import ExitCode
from compressor.search.worker import BuildTask, build_candidate
from tests.conftest import assert_clean_error, file_digest, interrupt_when
from tests.optimize.search_helpers import BASE, CALIB, FAST, MODEL, TEST, by_index, report

pytest.importorskip("ray")
from compressor_ray.executor import RayExecutor

pytestmark = pytest.mark.timeout(300)
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def ray_temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("compressor-ray-*")}


def listening(process: psutil.Process) -> list[str]:
    try:
        return [c.laddr.ip for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:  # it exited meanwhile
        return []


def assert_nothing_left(processes: list[psutil.Process], temp_dirs: set[str], own_listeners: int) -> None:
    """No Ray process, listening socket or temporary folder is left (waiting a while: exits are asynchronous)."""
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, [p.pid for p in alive]
    deadline = time.monotonic() + 30
    while True:
        leftovers = {
            "processes": [p.name() for p in psutil.Process().children(recursive=True) if "ray" in p.name().lower()],
            "temp folders": sorted(ray_temp_dirs() - temp_dirs),
            "listening": len(listening(psutil.Process())) - own_listeners,
        }
        if not leftovers["processes"] and not leftovers["temp folders"] and leftovers["listening"] <= 0:
            return
        assert time.monotonic() < deadline, f"left behind: {leftovers}"
        time.sleep(0.5)


def test_ray_finds_the_same_candidates_qualities_and_best_as_the_local_executor(tmp_path: Path) -> None:
    temp_dirs, own = ray_temp_dirs(), len(listening(psutil.Process()))
    # Dynamic and static INT8 candidates; sizes differ where settings do, so the choice is deterministic.
    args = ["optimize", *BASE, *FAST, "--objective", "size", "--passes", "quantize.dynamic,quantize.static"]
    assert main([*args, "--cache-dir", str(tmp_path / "local-cache"), "-o", str(tmp_path / "local")]) == 0
    assert main([*args, "--cache-dir", str(tmp_path / "ray-cache"), "--executor", "ray", "--jobs", "2",
                 "-o", str(tmp_path / "ray")]) == 0  # fmt: skip
    local, ray = report(tmp_path / "local"), report(tmp_path / "ray")

    def summary(result: dict) -> list:  # type: ignore[type-arg]
        fields = ("index", "label", "passes", "status", "quality", "drop", "size_bytes", "error")
        return [{k: trial[k] for k in fields} for trial in result["trials"]]

    assert len(ray["trials"]) == 4
    assert summary(ray) == summary(local)
    assert by_index(ray)[ray["best"]]["label"] == by_index(local)[local["best"]]["label"]
    assert file_digest(tmp_path / "ray" / "model.onnx") == file_digest(tmp_path / "local" / "model.onnx")
    assert json.loads((tmp_path / "ray" / "report.json").read_text())["exit_code"] == 0
    assert_nothing_left([], temp_dirs, own)


def test_pass_results_come_back_through_the_object_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that does not share the driver's filesystem: simulated with a worker-only cache folder."""
    monkeypatch.setenv("COMPRESSOR_RAY_TRANSPORT", "object-store")
    monkeypatch.setenv("COMPRESSOR_RAY_WORKER_CACHE", str(tmp_path / "worker-cache"))
    driver_cache = Path(os.environ["COMPRESSOR_CACHE_DIR"])
    chain = [("graph.slim", {}), ("quantize.static", {})]
    tasks = [
        BuildTask(
            index, str(MODEL), content_hash(MODEL), {}, specs, str(CALIB), str(TEST), str(driver_cache), threads=1
        )
        for index, specs in ((1, chain), (2, [("quantize.static", {})]))
    ]
    temp_dirs, own = ray_temp_dirs(), len(listening(psutil.Process()))

    executor = RayExecutor(jobs=2)
    try:
        ray_processes = psutil.Process().children(recursive=True)
        assert ray_processes, "no local Ray instance was started"
        addresses = [ip for p in [psutil.Process(), *ray_processes] for ip in listening(p)]
        assert addresses and set(addresses) <= LOOPBACK, addresses
        results = {result.index: result for result in executor.run(tasks)}
        ray_processes = psutil.Process().children(recursive=True)  # workers started for the tasks
        addresses = [ip for p in ray_processes for ip in listening(p)]
        assert set(addresses) <= LOOPBACK, addresses
    finally:
        executor.close()
    assert_nothing_left(ray_processes, temp_dirs, own)

    local = {t.index: build_candidate(replace(t, cache_dir=str(tmp_path / "local-cache"))) for t in tasks}
    for index, result in results.items():
        assert result.error is None, result.error
        artifact = Path(result.artifact["path"])
        assert artifact.is_relative_to(driver_cache.resolve())  # the driver's own copy
        assert file_digest(artifact) == file_digest(Path(local[index].artifact["path"]))
        for ours, theirs in zip(result.outputs, local[index].outputs, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert result.keys == local[index].keys
    assert Path(results[1].last_input["path"]).is_relative_to(driver_cache.resolve())  # the graph.slim output
    assert Path(results[2].last_input["path"]) == MODEL.resolve()  # the source, as the driver sees it
    worker_cache = ResultCache(tmp_path / "worker-cache")
    assert ResultCache(driver_cache).stored_keys() == worker_cache.stored_keys() == {*results[1].keys, *results[2].keys}
    assert len(list((tmp_path / "worker-cache" / "inputs").iterdir())) == 3  # model, calibration and test data


def test_ctrl_c_ends_a_ray_search_with_130_and_stops_every_ray_process(tmp_path: Path) -> None:
    """Ray's agents do not share the driver's fate: an abrupt end must stop them itself."""
    temp_dirs = ray_temp_dirs()
    command = [sys.executable, "-m", "compressor", "optimize", *BASE, "--passes", "quantize.dynamic,quantize.static",
               "--executor", "ray", "--jobs", "2", "--cache-dir", str(tmp_path / "cache"),
               "-o", str(tmp_path / "out")]  # fmt: skip
    started: list[psutil.Process] = []

    def ray_is_up(proc: subprocess.Popen[str]) -> bool:
        started[:] = psutil.Process(proc.pid).children(recursive=True)
        return any("RuntimeEnvAgent" in p.name() for p in started)  # the last of Ray's processes to start

    assert_clean_error(interrupt_when(command, ray_is_up), ExitCode.INTERRUPTED, "interrupted")
    _, alive = psutil.wait_procs(started, timeout=10)  # Ray's agents outlive the driver unless it stops them
    assert not alive, [p.name() for p in alive]
    assert ray_temp_dirs() == temp_dirs
    assert not (tmp_path / "out").exists()
