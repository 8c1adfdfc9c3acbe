"""Without a cluster: moving pass results between caches, the Ray worker's two transports run in-process
(a worker that shares the driver's cache, and one that does not), addresses, and the search's waves."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from compressor.cache import ResultCache, content_hash
from compressor.data import load_dataset
from compressor.errors import MissingDependencyError, UsageError
from compressor.loaders import LoaderOptions, load_model
from compressor.search.executors import Executor
from compressor.search.optimize import Search, SearchInputs, SearchSettings
from compressor.search.space import Candidate
from compressor.search.worker import BuildResult, BuildTask, build_candidate
from tests.conftest import ROOT, file_digest
from tests.optimize.search_helpers import CALIB, MODEL, TEST

pytest.importorskip("compressor_ray")
from compressor_ray import transport
from compressor_ray.executor import check_reachable, parse_address

CHAIN = [("graph.slim", {}), ("quantize.dynamic", {})]


def task_for(cache: Path, specs: list, index: int = 1) -> BuildTask:  # type: ignore[type-arg]
    task = BuildTask(index, str(MODEL), content_hash(MODEL), {}, specs, str(CALIB), str(TEST), str(cache), threads=1)
    return transport.absolute(task)


def shipment_for(task: BuildTask, driver: ResultCache, mode: str, ship: bool = True, **changes) -> transport.Shipment:  # type: ignore[no-untyped-def]
    inputs = {str(p): transport.describe(p, ship) for p in transport.input_paths(task)}
    base = transport.Shipment(transport.cache_token(driver.root), mode, inputs, frozenset(driver.stored_keys()))
    return replace(base, **changes)


# -- the cache ----------------------------------------------------------------------------------------------
@pytest.fixture
def built(tmp_path: Path) -> tuple[ResultCache, BuildResult]:
    cache = ResultCache(tmp_path / "one")
    return cache, build_candidate(task_for(cache.root, CHAIN))


def test_export_and_import_move_a_pass_result_between_caches(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one, result = built
    other = ResultCache(tmp_path / "other")
    for key in result.keys:
        entry = other.import_entry(key, one.export_entry(key))  # type: ignore[arg-type]
        assert entry is not None and entry.artifact.path.is_relative_to(other.root)
        assert file_digest(entry.artifact.path) == file_digest(one.get(key).artifact.path)  # type: ignore[union-attr]
    assert other.stored_keys() == one.stored_keys() == set(result.keys)
    assert one.export_entry("0" * 64) is None


def test_import_refuses_damaged_misfiled_or_escaping_entries(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one, result = built
    key = result.keys[-1]
    files = one.export_entry(key)
    assert files is not None
    other = ResultCache(tmp_path / "other")
    model = next(name for name in files if name.endswith(".onnx"))
    damaged = {**files, model: files[model][:-10] + b"\0" * 10}
    assert other.import_entry(key, damaged) is None
    assert other.import_entry(result.keys[0], files) is None  # a manifest for another key
    for bad in ("../evil", "/etc/evil", "files/../../evil", "a\\b", ""):
        with pytest.raises(ValueError, match="refusing"):
            other.import_entry(key, {**files, bad: b"x"})
    victim = tmp_path / "victim"
    victim.mkdir()
    for bad_key in ("../../../victim", key.upper(), key[:-1]):  # keys name folders: never a path
        with pytest.raises(ValueError, match="not a cache key"):
            other.import_entry(bad_key, files)
        with pytest.raises(ValueError, match="not a cache key"):
            other.get(bad_key)
    assert victim.is_dir()
    assert other.stored_keys() == set()
    assert not (tmp_path / "evil").exists()
    assert not [p for p in (other.root / "passes").rglob("*") if p.is_file()]


@pytest.mark.parametrize("damage", ["checksums not a mapping", "artifact outside the entry"])
def test_a_manifest_of_the_wrong_shape_is_a_miss_not_a_crash(built, damage: str) -> None:  # type: ignore[no-untyped-def]
    one, result = built
    key = result.keys[-1]
    manifest_path = next(one.root.glob(f"passes/*/{key}/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    if damage == "checksums not a mapping":
        manifest["checksums"] = 5
    else:
        (one.root / "outside.onnx").write_bytes(MODEL.read_bytes())
        manifest["artifact"]["path"] = "../../../../outside.onnx"
    manifest_path.write_text(json.dumps(manifest))
    assert one.get(key) is None
    assert not manifest_path.exists()  # removed, to be rebuilt


def test_a_worker_cannot_name_a_path_as_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(transport.WORKER_CACHE_ENV, str(tmp_path / "worker"))
    driver = ResultCache(tmp_path / "driver")
    task = task_for(driver.root, CHAIN[1:])
    delivery = transport.build_on_worker(task, shipment_for(task, driver, transport.SHIPPED))
    delivery.result.keys = ["../../elsewhere"]
    assert "not a cache key" in (transport.receive(delivery, driver).error or "")


# -- the worker, in-process ---------------------------------------------------------------------------------
def test_a_worker_without_the_driver_filesystem_ships_its_pass_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(transport.WORKER_CACHE_ENV, str(tmp_path / "worker"))
    driver = ResultCache(tmp_path / "driver")
    task = task_for(driver.root, CHAIN)
    delivery = transport.build_on_worker(task, shipment_for(task, driver, transport.SHIPPED))
    assert delivery.where == transport.SHIPPED and delivery.result.error is None
    assert set(delivery.entries) == set(delivery.result.keys) and len(delivery.result.keys) == 2
    assert len(list((tmp_path / "worker" / "inputs").iterdir())) == 3  # model, calibration and test data
    assert driver.stored_keys() == set()

    result = transport.receive(delivery, driver)
    assert result.error is None
    assert driver.stored_keys() == set(result.keys)
    assert Path(result.artifact["path"]).is_relative_to(driver.root)  # type: ignore[index]
    assert Path(result.last_input["path"]).is_relative_to(driver.root)  # type: ignore[index]

    # What the driver holds is not shipped again; a single step's input is the driver's own source.
    again = transport.build_on_worker(task, shipment_for(task, driver, transport.SHIPPED))
    assert again.result.cached and again.entries == {}
    assert transport.receive(again, driver).artifact == result.artifact
    single = task_for(driver.root, CHAIN[1:], index=2)
    delivery = transport.build_on_worker(single, shipment_for(single, driver, transport.SHIPPED))
    assert transport.receive(delivery, driver).last_input["path"] == str(MODEL.resolve())  # type: ignore[index]


def test_damaged_bytes_from_a_worker_fail_the_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(transport.WORKER_CACHE_ENV, str(tmp_path / "worker"))
    driver = ResultCache(tmp_path / "driver")
    task = task_for(driver.root, CHAIN[1:])
    delivery = transport.build_on_worker(task, shipment_for(task, driver, transport.SHIPPED))
    (key,) = delivery.entries
    model = next(name for name in delivery.entries[key] if name.endswith(".onnx"))
    delivery.entries[key][model] = b"not a model"
    result = transport.receive(delivery, driver)
    assert "failed its checksums" in (result.error or "")
    assert driver.stored_keys() == set()


def test_a_worker_that_shares_the_cache_builds_into_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(transport.WORKER_CACHE_ENV, str(tmp_path / "worker"))
    driver = ResultCache(tmp_path / "driver")
    task = task_for(driver.root, CHAIN)
    delivery = transport.build_on_worker(task, shipment_for(task, driver, transport.AUTO))
    assert delivery.where == transport.SHARED and delivery.entries == {}
    assert Path(delivery.result.artifact["path"]).is_relative_to(driver.root)  # type: ignore[index]
    assert driver.stored_keys() == set(delivery.result.keys)
    assert not (tmp_path / "worker").exists()  # the inputs were visible: nothing copied


def test_shared_transport_fails_a_worker_that_cannot_see_the_cache(tmp_path: Path) -> None:
    driver = ResultCache(tmp_path / "driver")
    task = task_for(driver.root, CHAIN)
    shipment = shipment_for(task, driver, transport.SHARED, ship=False, token="another-cache")
    result = transport.build_on_worker(task, shipment).result
    assert "does not see the cache folder" in (result.error or "")


def test_an_input_the_worker_cannot_see_and_nobody_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(transport.WORKER_CACHE_ENV, str(tmp_path / "worker"))
    driver = ResultCache(tmp_path / "driver")
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(MODEL.read_bytes())
    task = replace(task_for(driver.root, CHAIN), source=str(copy))
    shipment = shipment_for(task, driver, transport.AUTO, ship=False, token="another-cache")
    copy.unlink()
    result = transport.build_on_worker(task, shipment).result
    assert "could not get the inputs" in (result.error or "") and "copy.onnx" in (result.error or "")


# -- addresses and registration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.5:6380", ("10.0.0.5", 6380)),
        ("head", ("head", 6379)),
        ("ray://head:10002", ("head", 10002)),
        ("ray://head", ("head", 10001)),
        ("[::1]:7000", ("::1", 7000)),
        ("auto", None),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["head:port", "head:99999", "", "head:6379/path"])
def test_malformed_addresses(address: str) -> None:
    with pytest.raises(UsageError, match="--ray-address"):
        parse_address(address)


def test_a_closed_port_is_refused_at_once() -> None:
    with pytest.raises(MissingDependencyError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1\b"):
        check_reachable("127.0.0.1:1", timeout=2)


def test_registering_the_plugin_does_not_import_ray() -> None:
    code = (
        "import sys\nfrom compressor.plugins import get_registry\n"
        "assert get_registry().executors['ray'].__module__ == 'compressor_ray.executor'\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


# -- the search's waves -------------------------------------------------------------------------------------
class Backwards(Executor):
    """Finishes each wave's tasks in reverse order, as parallel executors may."""

    name = "backwards"

    def __init__(self, jobs: int) -> None:
        super().__init__(jobs)
        self.waves: list[list[int]] = []

    def run(self, tasks: list[BuildTask]) -> Iterator[BuildResult]:
        self.waves.append([task.index for task in tasks])
        for task in reversed(tasks):
            yield BuildResult(task.index, error=f"not built {task.index}")


def test_waves_respect_max_trials_and_results_keep_their_order(tmp_path: Path) -> None:
    source = load_model(str(MODEL), LoaderOptions())
    inputs = SearchInputs(source, str(MODEL), LoaderOptions(), str(CALIB), None, load_dataset(str(CALIB), source))
    settings = SearchSettings(metric="fidelity", max_drop=0.01, objective="size", max_trials=5)
    executor = Backwards(jobs=3)
    search = Search(inputs, settings, executor, ResultCache(tmp_path / "cache"))
    items = [(Candidate.of([("quantize.static", {"calibration_samples": n})]), "search", f"n={n}") for n in range(1, 9)]
    made = search.build(items, len(items))
    assert executor.waves == [[1, 2, 3], [4, 5]]  # never more than --max-trials, even with 3 jobs
    assert [t.index for t in made] == [1, 2, 3, 4, 5]  # the order of the items, as fallback() relies on
    assert [t.note for t in made] == [f"n={n}" for n in range(1, 6)]
    assert all(t.status == "failed" and t.error == f"not built {t.index}" for t in made)
    assert search.stopped == "--max-trials 5 reached"
