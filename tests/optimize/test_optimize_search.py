"""`compressor optimize` end to end on the digits CNN: the choice, its recipe, the reports, the cache
(speed-up, resuming a killed run, damaged entries) and the run where no candidate meets the constraint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compressor.cache import ResultCache
from compressor.cli.main import main
from compressor.errors import ExitCode
from compressor.search.pareto import Point, dominates
from tests.conftest import ROOT, file_digest
from tests.optimize.search_helpers import BASE, FAST, SEARCH, SIZED_SEARCH, built_steps, by_index, cached_models, report


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One search whose choice does not hang on timing noise, with its own cache."""
    root = tmp_path_factory.mktemp("digits-run")
    code = main(["optimize", *SIZED_SEARCH, *FAST, "--cache-dir", str(root / "cache"), "-o", str(root / "out")])
    assert code == 0
    return root / "out"


def test_best_meets_the_constraint_and_everything_is_written(digits_run: Path) -> None:
    result = report(digits_run)
    best = by_index(result)[result["best"]]
    assert best["status"] == "meets"
    assert best["drop"] <= result["settings"]["max_drop"]
    assert best["quality"] >= result["baseline"]["quality"] - result["settings"]["max_drop"]
    assert best["size_bytes"] < result["baseline"]["size_bytes"] / 3  # an INT8 model
    for name in ("model.onnx", "recipe.yaml", "report.json", "report.md", "report.html"):
        assert (digits_run / name).is_file(), name
    assert "Best model meeting the constraint" in (digits_run / "report.md").read_text()
    assert '<circle class="point' in (digits_run / "report.html").read_text()
    assert not list(digits_run.parent.glob(".compressor-tmp-*"))


def test_the_recipe_reproduces_the_model_byte_for_byte(
    digits_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the recipe's paths are relative to its own folder, not to the cwd
    code = main(["run", str(digits_run / "recipe.yaml"), "-o", str(tmp_path / "again")])
    assert code == 0
    assert file_digest(tmp_path / "again" / "model.onnx") == file_digest(digits_run / "model.onnx")


def test_the_chosen_model_is_on_the_pareto_front(digits_run: Path) -> None:
    result = report(digits_run)
    assert result["best"] in result["pareto_front"]
    batch = str(result["settings"]["objective_batch"])
    points = {
        t["index"]: Point(t["index"], t["quality"], t["latency"][batch]["p50_ms"], t["size_bytes"])
        for t in by_index(result).values()
        if t["latency"]
    }
    chosen = points[result["best"]]
    assert not any(dominates(p, chosen) for p in points.values())
    front = set(result["pareto_front"])
    for key, point in points.items():  # off the front means some point dominates it
        assert (key in front) != any(dominates(q, point) for q in points.values())


def test_a_second_identical_run_is_ten_times_faster_from_the_cache(tmp_path: Path) -> None:
    args = ["optimize", *SEARCH, "--objective", "size", "--json"]  # default timing: the cache saves it too
    started = time.perf_counter()
    assert main([*args, "-o", str(tmp_path / "first")]) == 0
    first = time.perf_counter() - started
    started = time.perf_counter()
    assert main([*args, "-o", str(tmp_path / "second")]) == 0
    second = time.perf_counter() - started
    print(f"first run {first:.2f} s, cached run {second:.2f} s: {first / second:.1f}x")
    one, two = report(tmp_path / "first"), report(tmp_path / "second")
    assert first >= 10 * second, f"first {first:.2f} s, second {second:.2f} s"
    assert all(trial["cached"] for trial in two["trials"])
    assert two["cache"]["trials_from_cache"] == len(two["trials"]) == len(one["trials"])
    assert built_steps(two) == 0 and built_steps(one) > 0
    assert "(cached)" in (tmp_path / "second" / "report.md").read_text()
    assert two["best"] == one["best"]
    assert file_digest(tmp_path / "second" / "model.onnx") == file_digest(tmp_path / "first" / "model.onnx")


def test_a_killed_run_resumes_from_the_finished_pass_results(digits_run: Path, tmp_path: Path) -> None:
    cache, out = Path(os.environ["COMPRESSOR_CACHE_DIR"]), tmp_path / "out"
    command = [sys.executable, "-m", "compressor", "optimize", *SIZED_SEARCH, *FAST, "-o", str(out)]
    scratch = tmp_path / "tmp"  # a killed build leaves its temporary folder: keep it out of the system's
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(cache.glob("passes/*/*/manifest.json"))) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no pass result was stored within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    assert not out.exists()
    stored = len(ResultCache(cache).stored_keys())
    assert stored >= 2

    assert main(["optimize", *SIZED_SEARCH, *FAST, "-o", str(out)]) == 0
    resumed, reference = report(out), report(digits_run)
    assert built_steps(resumed) <= built_steps(reference) - stored  # what was finished is not built again
    assert [t["label"] for t in resumed["trials"]] == [t["label"] for t in reference["trials"]]
    assert by_index(resumed)[resumed["best"]]["label"] == by_index(reference)[reference["best"]]["label"]
    assert file_digest(out / "model.onnx") == file_digest(digits_run / "model.onnx")


def test_a_damaged_cache_entry_is_rebuilt_never_used(tmp_path: Path) -> None:
    cache = Path(os.environ["COMPRESSOR_CACHE_DIR"])
    args = ["optimize", *SEARCH, *FAST, "--objective", "size", "--max-trials", "2"]
    assert main([*args, "-o", str(tmp_path / "first")]) == 0
    models = cached_models(cache)
    assert len(models) == 2
    for model in models:  # flip bytes in the middle of every cached model
        data = bytearray(model.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
        model.write_bytes(bytes(data))

    assert main([*args, "-o", str(tmp_path / "second")]) == 0
    first, second = report(tmp_path / "first"), report(tmp_path / "second")
    assert built_steps(second) == built_steps(first) == 2  # both detected and rebuilt
    assert not any(trial["cached"] for trial in second["trials"])
    assert [t["quality"] for t in second["trials"]] == [t["quality"] for t in first["trials"]]
    assert file_digest(tmp_path / "second" / "model.onnx") == file_digest(tmp_path / "first" / "model.onnx")
    assert all(ResultCache(cache).get(key) is not None for key in ResultCache(cache).stored_keys())


def test_no_candidate_meets_the_constraint(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    every_one_loses = ("--passes", "quantize.static", "--metric", "fidelity", "--max-drop", "0%", "--no-fallback")
    result = cli("optimize", *BASE, *FAST, *every_one_loses, "-o", out)
    assert result.code == ExitCode.CONSTRAINT_NOT_MET, result.output
    assert "Traceback" not in result.output
    assert "no candidate meets the constraint" in result.stderr
    assert "no model was written" in result.stderr
    assert "the closest" in result.stdout
    assert not (out / "model.onnx").exists() and not (out / "recipe.yaml").exists()
    for name in ("report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    data = report(out)
    assert data["best"] is None
    assert data["trials"] and all(trial["status"] == "rejected" for trial in data["trials"])
    closest = sorted((t for t in data["trials"] if t["status"] == "rejected"), key=lambda t: t["drop"])[:3]
    markdown = (out / "report.md").read_text()
    assert "No candidate meets the constraint: the closest" in markdown
    for trial in closest:
        assert trial["label"] in markdown
    assert "No candidate meets the constraint" in (out / "report.html").read_text()
