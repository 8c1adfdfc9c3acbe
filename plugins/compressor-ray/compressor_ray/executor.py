"""``--executor ray``: optimizer candidates built as Ray tasks, on a cluster or on a private local instance.

Only building and scoring run on Ray; the optimizer still times every model itself, one at a time, on the
driver. How tasks reach workers and pass results come back is in :mod:`compressor_ray.transport`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from compressor.cache import ResultCache
from compressor.errors import MissingDependencyError, UsageError
from compressor.measure.runner import default_threads
from compressor.outputs import track, untrack
from compressor.search.executors import Executor
from compressor.search.worker import BuildResult, BuildTask
from compressor_ray import transport

#: Seconds to wait for a TCP connection to the cluster's address before giving up.
REACH_TIMEOUT_S = 5.0
#: Seconds ray.init may take to join a cluster (it retries for minutes on its own); $COMPRESSOR_RAY_CONNECT_TIMEOUT.
CONNECT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_ENV = "COMPRESSOR_RAY_CONNECT_TIMEOUT"
#: Seconds to wait for a private instance's processes to exit, and its temporary folder to go.
SHUTDOWN_WAIT_S = 15.0
#: Ray's default GCS port, for an address given without one.
DEFAULT_PORT = 6379
#: Environment for a private local instance: loopback only (Ray binds the machine's address otherwise), no
#: token file in ~/.ray unless RAY_AUTH_MODE says so, no usage reporting.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
LOCAL_ENV_DEFAULTS = {"RAY_AUTH_MODE": "disabled"}


def parse_address(address: str) -> tuple[str, int] | None:
    """``host:port``, ``ray://host:port`` or ``[v6]:port`` -> (host, port); None for ``auto``."""
    if address.strip().lower() == "auto":
        return None
    text = address.strip()
    rest = text.split("://", 1)[1] if "://" in text else text
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or parts.path not in ("", "/"):
        raise UsageError(f"--ray-address '{address}' is not host:port, ray://host:port or auto")
    default = 10001 if text.lower().startswith("ray://") else DEFAULT_PORT
    return host, port or default


def check_reachable(address: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """A fast, clear failure for an address nothing answers at (ray.init would retry for minutes)."""
    target = parse_address(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise MissingDependencyError(
            f"cannot reach the Ray cluster at {address}: {reason}",
            hint="check the address (the head node's GCS port, 6379 unless `ray start --port` changed it), or leave "
            "--ray-address out to run a private local Ray instance",
        ) from None


class RayExecutor(Executor):
    name = "ray"
    summary = "Ray tasks: on the cluster at --ray-address, else on a private Ray instance bound to 127.0.0.1"

    def __init__(self, jobs: int = 1, address: str | None = None) -> None:
        super().__init__(jobs, address)
        self.transport = os.environ.get(transport.TRANSPORT_ENV, transport.AUTO).strip().lower()
        if self.transport not in transport.TRANSPORTS:
            raise UsageError(
                f"{transport.TRANSPORT_ENV}={self.transport!r}: use one of {', '.join(transport.TRANSPORTS)}"
            )
        self._ray: Any = None
        self._remote: Any = None
        self._owned = False
        self._temp_dir: str | None = None
        self._children_before: set[int] = set()
        self._saved: dict[str, str | None] = {}
        self._loopback = False
        self._inputs: dict[str, transport.InputFiles] = {}
        self._node_cpus = 1.0
        self._connect()

    # -- connecting ---------------------------------------------------------------------------------------
    def _connect(self) -> None:
        if self.address:
            check_reachable(self.address)
        else:
            self._set_local_env()
        try:
            import ray
        except ImportError as exc:
            self._restore_env()
            raise MissingDependencyError(
                f"--executor ray needs the ray package ({exc})", hint="pip install compressor-ray"
            ) from None
        self._ray = ray
        try:
            if ray.is_initialized():  # a library caller connected already: use it, leave it running
                pass
            elif self.address:
                self._join(ray)
            else:
                self._start_local(ray)
            alive = [n for n in ray.nodes() if n.get("Alive")]
            self._node_cpus = max([float(n.get("Resources", {}).get("CPU", 0)) for n in alive] or [1.0]) or 1.0
            self._remote = ray.remote(transport.build_on_worker)
        except BaseException:
            self.close()
            raise

    def _set_local_env(self) -> None:
        """Loopback, no auth token file, no usage stats: for the Ray processes this driver starts."""
        for name, value in {**LOCAL_ENV, **LOCAL_ENV_DEFAULTS}.items():
            self._saved[name] = os.environ.get(name)
            if name in LOCAL_ENV or name not in os.environ:
                os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()
        constants = sys.modules.get("ray._private.ray_constants")
        if self._loopback and constants is not None:  # as ray computes it at import, from the restored environment
            flag = os.environ.get(constants.ENABLE_RAY_CLUSTERS_ENV_VAR)
            default = not constants.IS_WINDOWS_OR_OSX
            constants.ENABLE_RAY_CLUSTER = default if flag is None else flag.lower() in ("true", "1")
            self._loopback = False

    def _start_local(self, ray: Any) -> None:
        # Ray read RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when first imported, maybe before this executor set it.
        sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False
        self._loopback = True
        # A short folder: Ray's socket paths under it must stay under 107 characters.
        self._temp_dir = tempfile.mkdtemp(prefix="compressor-ray-")
        track(Path(self._temp_dir))  # removed on a timeout or Ctrl-C too (compressor.limits.end_process)
        self._children_before = {child.pid for child in psutil.Process().children(recursive=True)}
        self._owned = True
        ray.init(
            num_cpus=max(self.jobs, default_threads()),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=self._temp_dir,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )

    def _join(self, ray: Any) -> None:
        """ray.init(address) bounded by a timeout: it retries an address that answers but is no Ray for minutes."""
        timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT_S)
        outcome: dict[str, BaseException | bool] = {}

        def connect() -> None:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                outcome["ok"] = True
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=connect, name="compressor-ray-connect", daemon=True)
        thread.start()
        thread.join(timeout)
        if "error" in outcome:
            error = outcome["error"]
            raise MissingDependencyError(
                f"cannot join the Ray cluster at {self.address}: {type(error).__name__}: {_first_line(error)}",
                hint="check the address and that this machine runs the cluster's Ray and Python versions",
            ) from None
        if "ok" not in outcome:
            raise MissingDependencyError(
                f"joining the Ray cluster at {self.address} timed out after {timeout:.0f} s: something answers there, "
                "but no Ray head node",
                hint=f"check the address and port; {CONNECT_TIMEOUT_ENV} sets the wait",
            )
        self._owned = True  # our connection: close() disconnects (the cluster keeps running)

    # -- building -----------------------------------------------------------------------------------------
    def _shipment(self, task: BuildTask, cache: ResultCache) -> transport.Shipment:
        ship = self.transport != transport.SHARED
        for path in transport.input_paths(task):
            if str(path) not in self._inputs:
                self._inputs[str(path)] = transport.describe(path, ship, self._ray.put)
        return transport.Shipment(
            token=transport.cache_token(cache.root),
            transport=self.transport,
            inputs=dict(self._inputs),
            have=frozenset(cache.stored_keys()),
        )

    def run(self, tasks: list[BuildTask]) -> Iterator[BuildResult]:
        if not tasks:
            return
        ray = self._ray
        tasks = [transport.absolute(task) for task in tasks]
        cache = ResultCache(Path(tasks[0].cache_dir))
        shipment = ray.put(self._shipment(tasks[0], cache))
        sent = {}
        for task in tasks:
            cpus = min(float(max(task.threads, 1)), self._node_cpus)
            sent[self._remote.options(num_cpus=cpus, max_retries=1).remote(task, shipment)] = task
        pending = list(sent)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        delivery = ray.get(ref)
                    except Exception as exc:  # the worker died, or Ray lost the task
                        message = f"the Ray task failed: {type(exc).__name__}: {_first_line(exc)}"
                        yield BuildResult(sent[ref].index, error=message)
                        continue
                    yield transport.receive(delivery, cache)
        finally:
            for ref in pending:  # the search stopped early
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def close(self) -> None:
        started = self._started_processes()
        if self._ray is not None and self._owned:
            with contextlib.suppress(Exception):
                self._ray.shutdown()
        self._owned = False
        self._inputs.clear()
        self._restore_env()
        if self._temp_dir is not None:
            # Ray's processes stop after shutdown() returns and write logs until then: wait (stopping any that
            # outlive the wait: this instance started them), then remove the folder.
            _, alive = psutil.wait_procs(started, timeout=SHUTDOWN_WAIT_S)
            for stop in ("terminate", "kill"):
                for process in alive:
                    with contextlib.suppress(psutil.Error):
                        getattr(process, stop)()
                _, alive = psutil.wait_procs(alive, timeout=5)
            deadline = time.monotonic() + SHUTDOWN_WAIT_S
            while os.path.exists(self._temp_dir) and time.monotonic() < deadline:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
                if os.path.exists(self._temp_dir):
                    time.sleep(0.2)
            untrack(Path(self._temp_dir))
            self._temp_dir = None

    def _started_processes(self) -> list[psutil.Process]:
        """The processes the private instance started (children that appeared since ray.init)."""
        if self._temp_dir is None:
            return []
        try:
            return [c for c in psutil.Process().children(recursive=True) if c.pid not in self._children_before]
        except psutil.Error:
            return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
