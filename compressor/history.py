"""The local history store: every ``check --record`` measurement in SQLite, and anomaly alerts over it.

The store (``.compressor/history.sqlite`` by default) holds one ``runs`` row per recorded model and one
``points`` row per metric of that run. Several writers (two CI jobs on one runner) are safe: the database is
in WAL mode, waits up to :data:`BUSY_SECONDS` for a lock, and each run is written in one ``BEGIN IMMEDIATE``
transaction, so a reader sees a run with all its metrics or not at all.

A file that is not SQLite, or an SQLite database that is not a compressor store, is refused before anything
is written to it.

Anomalies: a point is flagged when it lies outside the usual spread of the runs just before it (see
:func:`analyse`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compressor.errors import HistoryError
from compressor.gate import HIGHER_IS_WORSE, MetricValue, metric_family

SCHEMA = "compressor/history"
VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
#: How long a writer waits for another to finish before giving up.
BUSY_SECONDS = 30.0
META_TABLE = "compressor_meta"

_TABLES = (
    f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, recorded_at TEXT NOT NULL,"
    " git_commit TEXT, environment TEXT NOT NULL DEFAULT '{}')",
    "CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model, id)",
    "CREATE TABLE IF NOT EXISTS points ("
    " run_id INTEGER NOT NULL REFERENCES runs (id), metric TEXT NOT NULL, value REAL NOT NULL,"
    " spread REAL, runs INTEGER, PRIMARY KEY (run_id, metric))",
)

#: Anomaly rule: compare each point with the median of up to WINDOW runs before it, once MIN_HISTORY exist.
WINDOW = 10
MIN_HISTORY = 5
#: Flag beyond this many robust standard deviations (1.4826 x the median absolute deviation)...
ROBUST_SIGMAS = 3.0
#: ...and never for a change smaller than this share of the median (a perfectly steady series).
RELATIVE_FLOOR = 0.01


@dataclass(frozen=True)
class Point:
    run: int
    recorded_at: str
    commit: str | None
    value: float
    spread: float | None


@dataclass(frozen=True)
class Analysed:
    """A point with what its recent runs led us to expect."""

    run: int
    recorded_at: str
    commit: str | None
    value: float
    spread: float | None
    #: Median of the recent runs before this one (None until MIN_HISTORY runs exist).
    expected: float | None
    #: How far from ``expected`` a value may lie before it is an anomaly.
    tolerance: float | None
    anomaly: bool
    #: "worse" or "better" for an anomaly, else None.
    direction: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyse(points: list[Point], metric: str) -> list[Analysed]:
    """Flag each point that lies outside the usual spread of the runs just before it.

    For point *i*, take the (up to) :data:`WINDOW` points before it; with at least :data:`MIN_HISTORY`,
    the expected value is their median and the tolerance is the largest of: :data:`ROBUST_SIGMAS` robust
    standard deviations of the window (1.4826 x its median absolute deviation), the median measurement
    spread of the window's points (latency: the inter-quartile range of each run's timings), and
    :data:`RELATIVE_FLOOR` of the expected value. Medians make the rule robust to earlier outliers.
    """
    higher_is_worse = HIGHER_IS_WORSE.get(metric_family(metric), True)
    analysed = []
    for index, point in enumerate(points):
        window = points[max(0, index - WINDOW) : index]
        expected = tolerance = None
        anomaly = False
        direction = None
        if len(window) >= MIN_HISTORY:
            values = [p.value for p in window]
            expected = statistics.median(values)
            mad = statistics.median(abs(v - expected) for v in values)
            spreads = [p.spread for p in window if p.spread is not None]
            noise = statistics.median(spreads) if spreads else 0.0
            tolerance = max(ROBUST_SIGMAS * 1.4826 * mad, noise, RELATIVE_FLOOR * abs(expected))
            deviation = point.value - expected
            anomaly = abs(deviation) > tolerance
            if anomaly:
                direction = "worse" if (deviation > 0) == higher_is_worse else "better"
        analysed.append(
            Analysed(
                point.run,
                point.recorded_at,
                point.commit,
                point.value,
                point.spread,
                expected,
                tolerance,
                anomaly,
                direction,
            )
        )
    return analysed


class HistoryStore:
    """An open history store. ``create=True`` makes the file (and its folder) when missing."""

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = path
        if path.is_dir():
            raise HistoryError(f"history store {path} is a folder, expected an SQLite file")
        if not path.exists():
            if not create:
                raise HistoryError(
                    f"no history store at {path}", hint="record measurements with `compressor check --record`"
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"cannot create the history store {path}: {exc.strerror or exc}") from None
        _refuse_non_sqlite(path)
        try:
            self._conn = sqlite3.connect(str(path), timeout=BUSY_SECONDS, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open the history store {path}: {exc}") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
            empty = self._check_schema()
            if create:
                self._initialize()
            self.empty = empty and not create
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise HistoryError(f"{path} is not a usable compressor history store ({exc})") from None
        except HistoryError:
            self._conn.close()
            raise

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _check_schema(self) -> bool:
        """Refuse a database that is not ours (before writing anything); True when it has no tables yet."""
        tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if not tables:
            return True
        if META_TABLE not in tables:
            raise HistoryError(
                f"{self.path} is an SQLite database but not a compressor history store "
                f"(its tables: {', '.join(sorted(tables))})"
            )
        meta = dict(self._conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
        if meta.get("schema") != SCHEMA:
            raise HistoryError(f"{self.path} is not a compressor history store (schema {meta.get('schema')!r})")
        if int(meta.get("version", "0")) > VERSION:
            raise HistoryError(
                f"history store {self.path} has version {meta.get('version')}; this compressor reads version {VERSION}"
            )
        return False

    def _initialize(self) -> None:
        self._retry_busy(lambda: self._conn.execute("PRAGMA journal_mode = WAL").fetchone())
        with self._transaction():
            for statement in _TABLES:
                self._conn.execute(statement)
            self._conn.executemany(
                f"INSERT OR IGNORE INTO {META_TABLE} (key, value) VALUES (?, ?)",
                [("schema", SCHEMA), ("version", str(VERSION))],
            )

    def _retry_busy(self, action: Any) -> Any:
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` (taking the write lock now, waiting for other writers), then commit or roll back."""
        self._retry_busy(lambda: self._conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def record(
        self,
        model: str,
        metrics: dict[str, MetricValue],
        environment: dict[str, Any] | None = None,
        commit: str | None = None,
        recorded_at: str | None = None,
    ) -> int:
        """Append one run of ``model`` with its metrics, in one transaction; returns the run id."""
        when = recorded_at or datetime.now(timezone.utc).isoformat(timespec="microseconds")
        try:
            with self._transaction():
                cursor = self._conn.execute(
                    "INSERT INTO runs (model, recorded_at, git_commit, environment) VALUES (?, ?, ?, ?)",
                    (model, when, commit, json.dumps(environment or {}, sort_keys=True, default=str)),
                )
                run = int(cursor.lastrowid or 0)
                self._conn.executemany(
                    "INSERT INTO points (run_id, metric, value, spread, runs) VALUES (?, ?, ?, ?, ?)",
                    [(run, name, m.value, m.spread, m.runs) for name, m in metrics.items()],
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot write to the history store {self.path}: {exc}") from None
        return run

    def models(self) -> list[dict[str, Any]]:
        """Each model in the store with its number of runs and first and last recording times."""
        if self.empty:
            return []
        rows = self._conn.execute(
            "SELECT model, COUNT(*), MIN(recorded_at), MAX(recorded_at) FROM runs GROUP BY model ORDER BY model"
        )
        return [{"model": m, "runs": n, "first": first, "last": last} for m, n, first, last in rows]

    def runs(self, model: str) -> int:
        if self.empty:
            return 0
        return int(self._conn.execute("SELECT COUNT(*) FROM runs WHERE model = ?", (model,)).fetchone()[0])

    def series(self, model: str) -> dict[str, list[Point]]:
        """Every metric of ``model``, its points in the order they were recorded."""
        result: dict[str, list[Point]] = {}
        if self.empty:
            return result
        rows = self._conn.execute(
            "SELECT p.metric, r.id, r.recorded_at, r.git_commit, p.value, p.spread FROM points p "
            "JOIN runs r ON r.id = p.run_id WHERE r.model = ? ORDER BY r.id",
            (model,),
        )
        for metric, run, when, commit, value, spread in rows:
            result.setdefault(metric, []).append(Point(run, when, commit, value, spread))
        return result

    def integrity(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])


def _refuse_non_sqlite(path: Path) -> None:
    """Refuse, without opening it with SQLite, a non-empty file that does not start with SQLite's header."""
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise HistoryError(f"cannot read the history store {path}: {exc.strerror or exc}") from None
    if head and head != SQLITE_MAGIC:
        raise HistoryError(f"{path} is not a compressor history store (not an SQLite database)")


@dataclass(frozen=True)
class Trend:
    """One metric's recent points, analysed, with a summary of where it stands."""

    metric: str
    runs: int
    points: list[Analysed]

    @property
    def latest(self) -> Analysed:
        return self.points[-1]

    @property
    def alerts(self) -> list[Analysed]:
        return [p for p in self.points if p.anomaly]

    def to_dict(self) -> dict[str, Any]:
        values = [p.value for p in self.points]
        latest = self.latest
        return {
            "runs": self.runs,
            "latest": latest.value,
            "expected": latest.expected,
            "change": _change(latest),
            "min": min(values),
            "max": max(values),
            "latest_anomaly": latest.direction if latest.anomaly else None,
            "anomalies": len(self.alerts),
            "points": [p.to_dict() for p in self.points],
        }


def _change(point: Analysed) -> float | None:
    if point.expected is None or not point.expected:
        return None
    return (point.value - point.expected) / abs(point.expected)


def trends(series: dict[str, list[Point]], last: int) -> list[Trend]:
    """Each metric analysed over its whole history; the last ``last`` points kept for display."""
    order = {name: index for index, name in enumerate(HIGHER_IS_WORSE)}
    names = sorted(series, key=lambda n: (order.get(metric_family(n), len(order)), n))
    return [Trend(name, len(series[name]), analyse(series[name], name)[-last:]) for name in names]
