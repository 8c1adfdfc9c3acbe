"""The history store: `check --record`, `compressor history` with anomaly alerts, concurrent writers, bad stores."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from compressor.errors import ExitCode
from compressor.gate import MetricValue
from compressor.history import HistoryStore, Point, analyse
from tests.conftest import ROOT, assert_clean_error, file_digest

MODEL = "models/digits_cnn.onnx"
STORE = Path(".compressor/history.sqlite")


def test_record_then_history_flags_an_injected_outlier(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    for _ in range(6):
        assert cli("check", MODEL, "--max-size", "1MB", "--record").code == ExitCode.OK
    assert (project / STORE).is_file()
    with HistoryStore(project / STORE) as store:  # an outlier: the model suddenly 40% larger
        store.record(MODEL, {"size": MetricValue("size", 609728 * 1.4), "params": MetricValue("params", 151308)})

    result = cli("history", MODEL, "--json")
    assert result.code == ExitCode.OK, result.output
    history = json.loads(result.stdout)["result"]
    size = history["models"][0]["metrics"]["size"]
    assert size["runs"] == 7 and size["latest_anomaly"] == "worse" and size["anomalies"] == 1
    assert [p["anomaly"] for p in size["points"]] == [False] * 6 + [True]
    assert history["models"][0]["metrics"]["params"]["latest_anomaly"] is None
    [alert] = history["alerts"]
    assert (alert["metric"], alert["direction"], alert["latest"], alert["expected"]) == ("size", "worse", True, 609728)

    table = cli("history", MODEL)
    assert "ANOMALY (worse)" in table.stdout and "latest size 853.6 KB is an anomaly" in table.stderr
    assert cli("history", MODEL, "--fail-on-anomaly").code == ExitCode.CONSTRAINT_NOT_MET
    listing = json.loads(cli("history", "--json").stdout)["result"]["models"]
    assert [(m["model"], m["runs"]) for m in listing] == [(MODEL, 7)]


def test_latency_within_its_usual_spread_is_not_an_anomaly() -> None:
    values = [10.0, 10.4, 9.7, 10.2, 9.9, 10.1, 9.8, 10.3]
    points = [Point(i, f"t{i}", None, v, 0.8) for i, v in enumerate([*values, 10.6, 14.0])]
    flags = [a.anomaly for a in analyse(points, "latency@b1")]
    assert flags == [False] * 9 + [True]  # +0.6 ms lies inside the runs' spread; +4 ms does not
    assert analyse(points, "latency@b1")[-1].direction == "worse"
    better = analyse([*points[:8], Point(9, "t9", None, 6.0, 0.8)], "accuracy")
    assert better[-1].direction == "worse"  # for accuracy, lower is worse


def test_recorded_runs_carry_the_commit_and_every_metric(cli, project: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GITHUB_SHA", "0123456789abcdef")
    result = cli("check", MODEL, "--max-size", "1MB", "--latency", "--min-runs", "3", "--min-time", "0", "--record",
                 "--history", "h.sqlite", "--json")  # fmt: skip
    assert result.code == ExitCode.OK, result.output
    assert json.loads(result.stdout)["result"]["history"] == {
        "path": "h.sqlite",
        "recorded": 1,
        "commit": "0123456789ab",
    }
    with HistoryStore(project / "h.sqlite") as store:
        series = store.series(MODEL)
    assert set(series) == {"size", "params", "latency@b1"}
    assert series["latency@b1"][0].spread is not None and series["size"][0].commit == "0123456789ab"


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from compressor.gate import MetricValue
    from compressor.history import HistoryStore

    path, tag, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    print(time.time())
    for i in range(50):
        with HistoryStore(path, create=True) as store:  # a fresh open each time, as separate CI jobs do
            metrics = {"size": MetricValue("size", 1000 + i), "latency@b1": MetricValue("latency@b1", i, 0.1, 30)}
            store.record("shared.onnx", metrics, {"writer": tag}, commit=f"{tag}-{i}")
            store.record(f"{tag}.onnx", metrics, {"writer": tag}, commit=f"{tag}-{i}")
    print(time.time())
    """
)


def test_two_concurrent_writers_leave_a_consistent_store(tmp_path: Path) -> None:
    store_path = tmp_path / "ci" / "history.sqlite"  # neither the folder nor the file exists yet
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store_path), tag, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    windows = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        windows.append([float(t) for t in out.split()])
    assert max(w[0] for w in windows) < min(w[1] for w in windows), f"the writers did not overlap: {windows}"
    with HistoryStore(store_path) as store:
        assert store.integrity() == "ok"
        assert (store.runs("shared.onnx"), store.runs("a.onnx"), store.runs("b.onnx")) == (100, 50, 50)
        shared = store.series("shared.onnx")
        assert len(shared["size"]) == len(shared["latency@b1"]) == 100  # every run has all its points
        for tag in ("a", "b"):
            mine = [p for p in shared["size"] if p.commit and p.commit.startswith(f"{tag}-")]
            assert [p.value for p in mine] == [1000 + i for i in range(50)]  # each writer's order kept
            assert [p.value for p in store.series(f"{tag}.onnx")["latency@b1"]] == list(range(50))
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_sqlite_is_refused_and_untouched(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    bad = project / "notes.txt"
    bad.write_text("these are my notes, not a database\n" * 20)
    before = file_digest(bad)
    result = cli("check", MODEL, "--max-size", "1MB", "--record", "--history", bad)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "notes.txt", "not an SQLite database")
    assert_clean_error(cli("history", MODEL, "--history", bad), ExitCode.INPUT_ERROR, "not an SQLite database")
    assert file_digest(bad) == before
    assert sorted(p.name for p in project.iterdir()) == ["data", "models", "notes.txt"]


def test_a_foreign_sqlite_database_is_refused_and_untouched(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    other = project / "app.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()
    before = file_digest(other)
    result = cli("check", MODEL, "--max-size", "1MB", "--record", "--history", other)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "not a compressor history store", "users")
    assert file_digest(other) == before


def test_history_errors_name_what_exists(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("history", MODEL)
    assert_clean_error(result, ExitCode.INPUT_ERROR, "no history store")
    assert "--record" in result.stderr
    assert cli("check", MODEL, "--max-size", "1MB", "--record").code == ExitCode.OK
    assert_clean_error(cli("history", "models/other.onnx"), ExitCode.INPUT_ERROR, "no history for", MODEL)
    assert_clean_error(cli("history", MODEL, "--metric", "speed"), ExitCode.USAGE_ERROR, "speed", "size")
