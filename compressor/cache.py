"""The result cache: pass outputs and trial measurements, keyed by what produced them.

A pass result is stored under the hash of (its input's key, the pass, its config and config version, the
data it saw, the loader options, and the versions of the libraries involved). The input's key is the
content hash of the source model for the first step and the previous step's key after that, so a chain of
passes is found again without re-hashing intermediate models. Every entry records a checksum of each of
its files; an entry that fails its checksums is deleted and rebuilt, never used. Entries are written to a
temporary folder and renamed into place, so a killed run leaves no half-written entry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from compressor.artifacts import Artifact, artifact_files
from compressor.data import Dataset
from compressor.outputs import remove_stale, staging_prefix, track, untrack, write_text_atomic

CACHE_ENV = "COMPRESSOR_CACHE_DIR"
MANIFEST = "manifest.json"
CACHE_VERSION = 1
_KEY = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$COMPRESSOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/compressor``, else ``~/.cache/compressor``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "compressor"


def file_digest(path: Path, digest: Any | None = None) -> str:
    digest = digest or hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(path: Path) -> str:
    """Hash of every file of the model at ``path``: names relative to it, then bytes."""
    digest = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for file in artifact_files(path):
        digest.update(str(file.relative_to(root)).encode())
        file_digest(file, digest)
    return digest.hexdigest()


def dataset_hash(dataset: Dataset | None) -> str | None:
    if dataset is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(dataset.inputs):
        array = np.ascontiguousarray(dataset.inputs[name])
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    if dataset.labels is not None:
        digest.update(np.ascontiguousarray(dataset.labels).tobytes())
    return digest.hexdigest()


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    return {name: _version(name) for name in ("compressor", "onnx", "onnxruntime", *distributions)}


@functools.cache
def _version(name: str) -> str:
    """A distribution's version, looked up once per process (each lookup scans sys.path: ~4 ms)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def make_key(**parts: Any) -> str:
    payload = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class CacheEntry:
    """A verified cached pass result: the artifact (files inside the cache) and its step report data."""

    artifact: Artifact
    report: dict[str, Any]


def _stage_beside(entry: Path) -> Path:
    """A staging folder for ``entry`` in the same folder (so the final rename is atomic), named by this process:
    one left by a killed process is removed here by the next writer (``outputs.remove_stale``)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(entry.parent)
    stage = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=entry.parent))
    track(stage)
    return stage


def _unstage(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)
    untrack(stage)


class ResultCache:
    """Pass outputs under ``root/passes/``, trial measurements under ``root/trials/``."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()

    def _entry(self, key: str) -> Path:
        if not _KEY.fullmatch(key):  # keys may come from other machines (import_entry): never a path
            raise ValueError(f"not a cache key: {key[:80]!r}")
        return self.root / "passes" / key[:2] / key

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if present and intact; a damaged entry is removed."""
        entry = self._entry(key)
        manifest_path = entry / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            files = entry / "files"
            for relative, checksum in manifest["checksums"].items():
                if file_digest(files / relative) != checksum:
                    raise ValueError(f"checksum mismatch: {relative}")
            artifact = Artifact.from_dict(manifest["artifact"], (files / manifest["artifact"]["path"]).resolve())
            if not artifact.path.is_relative_to(files.resolve()):
                raise ValueError("the artifact lies outside the entry")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return CacheEntry(artifact, manifest["report"])

    def _manifests(self) -> list[Path]:
        """The manifests of stored entries: staging folders (being written, or left by a killed process) and
        anything else that is not named by a key are not entries."""
        return [m for m in (self.root / "passes").glob("*/*/" + MANIFEST) if _KEY.fullmatch(m.parent.name)]

    def remove_stale(self) -> None:
        """Remove the staging folders and files that killed processes of this machine left in the cache."""
        for folder in [*(self.root / "passes").glob("*"), self.root / "trials"]:
            if folder.is_dir():
                remove_stale(folder)

    def stored_keys(self) -> set[str]:
        """The keys of the stored pass results (listed, not verified)."""
        return {manifest.parent.name for manifest in self._manifests()}

    def export_entry(self, key: str) -> dict[str, bytes] | None:
        """A stored pass result as ``{path relative to the entry: bytes}`` (its manifest and files), checked
        first; :meth:`import_entry` stores it in another cache, e.g. on the machine that asked for it."""
        if self.get(key) is None:
            return None
        entry = self._entry(key)
        return {p.relative_to(entry).as_posix(): p.read_bytes() for p in sorted(entry.rglob("*")) if p.is_file()}

    def import_entry(self, key: str, files: dict[str, bytes]) -> CacheEntry | None:
        """Store a pass result exported by another cache. Nothing is kept (None) when it is not a valid entry
        for ``key`` or a file fails its checksum; paths that would leave the entry raise ValueError."""
        present = self.get(key)
        if present is not None:
            return present
        for relative in files:
            parts = PurePosixPath(relative).parts
            if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
                raise ValueError(f"cache entry {key[:12]}: refusing the file path {relative!r}")
        try:
            if json.loads(files[MANIFEST])["key"] != key:
                return None
        except (KeyError, ValueError, TypeError):
            return None
        entry = self._entry(key)
        stage = _stage_beside(entry)
        try:
            for relative, data in files.items():
                target = stage / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            with contextlib.suppress(OSError):  # stored meanwhile by another process
                os.rename(stage, entry)
        finally:
            _unstage(stage)
        return self.get(key)

    def put(self, key: str, artifact: Artifact, workdir: Path, report: dict[str, Any]) -> CacheEntry:
        """Store the pass output written in ``workdir``; returns the entry pointing into the cache."""
        entry = self._entry(key)
        stage = _stage_beside(entry)
        try:
            files = stage / "files"
            files.mkdir()
            for source in artifact_files(artifact.path):
                target = files / source.relative_to(workdir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
            checksums = {str(p.relative_to(files)): file_digest(p) for p in sorted(files.rglob("*")) if p.is_file()}
            described = artifact.to_dict()
            described["path"] = str(artifact.path.relative_to(workdir))
            manifest = {"key": key, "artifact": described, "report": report, "checksums": checksums}
            (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
            try:
                os.rename(stage, entry)
            except OSError:  # another process stored the same key first: theirs is as good as ours
                shutil.rmtree(stage, ignore_errors=True)
        finally:
            _unstage(stage)
        cached = self.get(key)
        if cached is None:
            raise OSError(f"cache entry {key[:12]} could not be read back from {self.root}")
        return cached

    def get_trial(self, key: str) -> dict[str, Any] | None:
        path = self.root / "trials" / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put_trial(self, key: str, data: dict[str, Any]) -> None:
        write_text_atomic(self.root / "trials" / f"{key}.json", json.dumps(data, default=str))

    def info(self) -> dict[str, Any]:
        entries = self._manifests() if self.root.exists() else []
        trials = list((self.root / "trials").glob("*.json")) if self.root.exists() else []
        size = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0
        return {"path": str(self.root), "pass_results": len(entries), "trials": len(trials), "size_bytes": size}

    def clear(self) -> dict[str, Any]:
        before = self.info()
        for sub in ("passes", "trials"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        return before
