"""Getting a build to a Ray worker and its pass results back, with or without a shared filesystem.

The driver sends each worker a :class:`~compressor.search.worker.BuildTask` (everything by reference, paths made
absolute) and, once per wave, a :class:`Shipment`:

* ``token``: a random id kept in the driver's cache folder. A worker that reads the same id at the same path
  shares the driver's cache (a shared filesystem): it builds straight into it and returns only the small
  BuildResult ("shared").
* ``inputs``: the model, data and ``--weights`` files, each with its size, SHA-256 and (unless the transport is
  ``shared``) an object-store reference to its bytes. A worker that does not see a file at that path, or sees
  other bytes there, fetches the bytes once and keeps them under its own cache folder.
* ``have``: the pass-result keys already in the driver's cache.

A worker that does not share the cache builds into its own (``$COMPRESSOR_RAY_WORKER_CACHE``, else its default
cache folder) and returns, with the BuildResult, every pass result of the candidate that the driver lacks, as
bytes (``ResultCache.export_entry``). The driver checks their checksums as it stores them
(``ResultCache.import_entry``) and points the result at its own copies ("object-store").

``$COMPRESSOR_RAY_TRANSPORT``: ``auto`` (the default, as above), ``shared`` (inputs are not copied to the object
store, and a worker that does not see the cache fails its build) or ``object-store`` (always ship, even over a
shared filesystem: what a remote worker does, and how the tests check it on one machine).

Nothing here imports ray at module level: only a worker fetching an input's bytes does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from compressor.artifacts import artifact_files
from compressor.cache import ResultCache, default_cache_dir, file_digest
from compressor.pyref import is_reference
from compressor.search.worker import BuildResult, BuildTask, build_candidate

TOKEN_FILE = ".compressor-ray-id"
TRANSPORT_ENV = "COMPRESSOR_RAY_TRANSPORT"
WORKER_CACHE_ENV = "COMPRESSOR_RAY_WORKER_CACHE"
AUTO, SHARED, SHIPPED = "auto", "shared", "object-store"
TRANSPORTS = (AUTO, SHARED, SHIPPED)
#: Marks a fully written input folder on a worker.
COMPLETE = ".complete"


# -- references ---------------------------------------------------------------------------------------------
def ref_path(ref: str) -> Path:
    """The file a reference names: ``path`` itself, or the module of ``path/module.py:name``."""
    return Path(ref.rsplit(":", 1)[0] if is_reference(ref) else ref).expanduser()


def with_path(ref: str, path: Path) -> str:
    """``ref`` pointing at ``path`` instead (keeping a reference's ``:name``)."""
    return f"{path}:{ref.rsplit(':', 1)[1]}" if is_reference(ref) else str(path)


def _refs(task: BuildTask) -> dict[str, str | None]:
    weights = task.loader_options.get("weights")
    return {"source": task.source, "data": task.data, "eval_data": task.eval_data, "weights": weights}


def _with_refs(task: BuildTask, refs: dict[str, str | None]) -> BuildTask:
    options = dict(task.loader_options)
    if options.get("weights") is not None:
        options["weights"] = refs["weights"]
    return replace(task, source=refs["source"], data=refs["data"], eval_data=refs["eval_data"], loader_options=options)


def absolute(task: BuildTask) -> BuildTask:
    """The task with every reference that names a file here made absolute (workers have another cwd)."""
    refs = {}
    for slot, ref in _refs(task).items():
        path = ref_path(ref) if ref else None
        refs[slot] = with_path(ref, path.resolve()) if ref and path is not None and path.exists() else ref
    return replace(_with_refs(task, refs), cache_dir=str(Path(task.cache_dir).expanduser().resolve()))


def input_paths(task: BuildTask) -> list[Path]:
    """The files and folders an (absolute) task reads, as the driver sees them."""
    paths = [ref_path(ref) for ref in _refs(task).values() if ref]
    return [p for p in dict.fromkeys(paths) if p.is_absolute() and p.exists()]


# -- inputs -------------------------------------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within a process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def safe_relative(relative: str) -> PurePosixPath:
    pure = PurePosixPath(relative)
    if not pure.parts or pure.is_absolute() or ".." in pure.parts or "\\" in relative:
        raise ValueError(f"refusing the file path {relative!r}")
    return pure


@dataclass(frozen=True)
class InputFiles:
    """A file or folder the driver reads, as it sees it: each file's size and SHA-256, and the bytes."""

    path: str
    is_dir: bool
    #: Path relative to the folder (for a file: to its parent) -> (size, sha256).
    digests: dict[str, tuple[int, str]]
    #: An object-store reference to ``{relative path: bytes}`` (a plain dict works too); None: not shipped.
    blob: Any = None

    @property
    def base(self) -> Path:
        return Path(self.path) if self.is_dir else Path(self.path).parent

    @property
    def digest(self) -> str:
        digest = hashlib.sha256(Path(self.path).name.encode())
        for relative, (size, sha) in sorted(self.digests.items()):
            digest.update(f"{relative}\0{size}\0{sha}\0".encode())
        return digest.hexdigest()

    def visible(self) -> bool:
        """Whether this machine sees the very same files at the same path."""
        try:
            for relative, (size, sha) in self.digests.items():
                path = self.base / relative
                if not path.is_file() or path.stat().st_size != size or _digest(path) != sha:
                    return False
        except OSError:
            return False
        return True

    def materialize(self, root: Path) -> Path:
        """Write the shipped bytes under ``root`` (once per content) and return the local file or folder."""
        folder = root / "inputs" / self.digest[:32]
        name = Path(self.path).name
        if not (folder / COMPLETE).is_file():
            if self.blob is None:
                raise FileNotFoundError(f"{self.path} is not visible on this worker and was not shipped")
            files = _fetch(self.blob)
            folder.parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
            try:
                container = stage / name if self.is_dir else stage
                for relative, data in files.items():
                    target = container / safe_relative(relative)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    if hashlib.sha256(data).hexdigest() != self.digests[relative][1]:
                        raise ValueError(f"{self.path}: {relative} arrived damaged")
                (stage / COMPLETE).write_text("")
                with contextlib.suppress(OSError):  # another task on this node wrote it first
                    os.rename(stage, folder)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        return folder / name


def _fetch(blob: Any) -> dict[str, bytes]:
    if isinstance(blob, dict):
        return blob
    import ray

    return ray.get(blob)


def describe(path: Path, ship: bool, put: Any = None) -> InputFiles:
    """Describe a file or folder the driver reads; with ``ship``, its bytes go to ``put`` (e.g. ray.put)."""
    path = path.resolve()
    base = path if path.is_dir() else path.parent
    files = artifact_files(path) if path.suffix == ".onnx" or path.is_dir() else [path]
    digests = {f.relative_to(base).as_posix(): (f.stat().st_size, _digest(f)) for f in files}
    blob = None
    if ship:
        contents = {f.relative_to(base).as_posix(): f.read_bytes() for f in files}
        blob = put(contents) if put is not None else contents
    return InputFiles(str(path), path.is_dir(), digests, blob)


# -- the cache ----------------------------------------------------------------------------------------------
def cache_token(root: Path) -> str:
    """The random id of the cache folder ``root`` (created once): a worker that reads it shares the cache."""
    path = root / TOKEN_FILE
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        stage = root / f".{TOKEN_FILE}.{uuid.uuid4().hex}"
        stage.write_text(uuid.uuid4().hex)
        try:
            os.link(stage, path)  # atomic create-if-absent: two drivers agree on one id
        except FileExistsError:
            pass
        finally:
            stage.unlink(missing_ok=True)
    return path.read_text().strip()


def shares_cache(cache_dir: str, token: str) -> bool:
    try:
        return (Path(cache_dir) / TOKEN_FILE).read_text().strip() == token
    except OSError:
        return False


def worker_cache_dir() -> Path:
    return Path(os.environ.get(WORKER_CACHE_ENV) or default_cache_dir()).expanduser()


@dataclass(frozen=True)
class Shipment:
    """What every task of a wave shares: the cache id, the inputs, the keys the driver already holds."""

    token: str
    transport: str
    inputs: dict[str, InputFiles]
    have: frozenset[str] = frozenset()


@dataclass
class Delivery:
    """A worker's answer: the BuildResult and, when it did not share the cache, the pass results as bytes."""

    result: BuildResult
    where: str
    entries: dict[str, dict[str, bytes]] = field(default_factory=dict)
    worker: str = ""


# -- the worker ---------------------------------------------------------------------------------------------
def build_on_worker(task: BuildTask, shipment: Shipment) -> Delivery:
    """Run one build on this worker (the Ray task body); errors come back in the BuildResult."""
    host = socket.gethostname()
    shared = shipment.transport != SHIPPED and shares_cache(task.cache_dir, shipment.token)
    where = SHARED if shared else SHIPPED
    if shipment.transport == SHARED and not shared:
        message = (
            f"worker {host} does not see the cache folder {task.cache_dir} "
            f"({TRANSPORT_ENV}=shared needs a filesystem shared with the driver at the same path)"
        )
        return Delivery(BuildResult(task.index, error=message), where, worker=host)
    root = Path(task.cache_dir) if shared else worker_cache_dir()
    local: dict[str, str] = {}  # a materialized path here -> the driver's path
    refs = _refs(task)
    try:
        for slot, ref in refs.items():
            files = shipment.inputs.get(str(ref_path(ref))) if ref else None
            if ref is None or files is None or (shipment.transport != SHIPPED and files.visible()):
                continue
            here = files.materialize(root)
            local[str(here)] = files.path
            refs[slot] = with_path(ref, here)
    except (OSError, ValueError, KeyError) as exc:
        message = f"worker {host} could not get the inputs: {type(exc).__name__}: {exc}"
        return Delivery(BuildResult(task.index, error=message), where, worker=host)
    result = build_candidate(replace(_with_refs(task, refs), cache_dir=str(root)))
    for described in (result.artifact, result.last_input):
        if described is not None and described.get("path") in local:  # the source itself: the driver's path
            described["path"] = local[described["path"]]
    delivery = Delivery(result, where, worker=host)
    if shared or result.error is not None:
        return delivery
    cache = ResultCache(root)
    for key in result.keys:
        if key in shipment.have:
            continue
        exported = cache.export_entry(key)
        if exported is None:
            result.error = f"worker {host}: the pass result {key[:12]} vanished from its cache"
            return delivery
        delivery.entries[key] = exported
    return delivery


# -- the driver ---------------------------------------------------------------------------------------------
def receive(delivery: Delivery, cache: ResultCache) -> BuildResult:
    """Store what a worker shipped in the driver's cache and point the result's paths there."""
    result = delivery.result
    if delivery.where == SHARED or result.error is not None or result.artifact is None:
        return result
    try:
        for key, files in delivery.entries.items():
            if cache.import_entry(key, files) is None:
                result.error = f"the pass result {key[:12]} from worker {delivery.worker} failed its checksums"
                return result
        entries = [cache.get(key) for key in result.keys[-2:]]
    except (OSError, ValueError) as exc:
        result.error = f"storing the pass results from worker {delivery.worker} failed: {exc}"
        return result
    if not result.keys or any(entry is None for entry in entries):
        result.error = f"the pass results of worker {delivery.worker} are missing from the driver's cache"
        return result
    result.artifact["path"] = str(entries[-1].artifact.path)  # type: ignore[union-attr]
    if len(entries) == 2 and result.last_input is not None:
        result.last_input["path"] = str(entries[0].artifact.path)  # type: ignore[union-attr]
    return result
