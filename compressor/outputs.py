"""Atomic outputs: everything is written under a temporary name in the target folder, then renamed.

A reader sees a complete file or none; the input is never overwritten; temporary files are removed
even when the work fails. Temporary names carry the process id and the machine: one left by a process that was
killed (SIGKILL, power loss) is removed by the next run on the same machine that writes in the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from compressor.errors import OutputPathError

STAGING_PREFIX = ".compressor-tmp-"
#: Temporary files and folders of this process, removed by :func:`remove_active` (e.g. on a timeout).
_ACTIVE: set[Path] = set()
#: errno values that mean "the output cannot be written here", reported as a clear error.
_WRITE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}  # fmt: skip


@functools.cache
def _host() -> str:
    """This machine, as 8 hex digits: a folder shared between machines (NFS) holds other machines' files,
    whose process ids mean nothing here."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _prefix() -> str:
    return f"{STAGING_PREFIX}{os.getpid()}-{_host()}-"


def staging_prefix() -> str:
    """The name prefix of this process's temporary files and folders."""
    return _prefix()


def track(path: Path) -> None:
    """Count ``path`` among this process's temporary files (removed by :func:`remove_active`)."""
    _ACTIVE.add(path)


def untrack(path: Path) -> None:
    _ACTIVE.discard(path)


def _owner(name: str) -> int | None:
    """The process id that made a temporary file of this machine (None: not ours to judge)."""
    pid, _, rest = name.removeprefix(STAGING_PREFIX).partition("-")
    return int(pid) if pid.isdigit() and rest.startswith(f"{_host()}-") else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path) -> None:
    """Remove temporary files and folders that processes no longer running left in ``folder``."""
    with contextlib.suppress(OSError):
        for entry in folder.glob(STAGING_PREFIX + "*"):
            pid = _owner(entry.name)
            if pid is not None and pid != os.getpid() and not _alive(pid):
                _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


#: Pause between the rounds of :func:`remove_active`.
REMOVAL_PAUSE_S = 0.05


def remove_active() -> None:
    """Remove this process's temporary files and folders now (before an abrupt exit).

    When a timeout's thread ends the process (the main thread stuck in native code), the main thread may
    still be writing into a folder (a file appearing during ``rmtree`` leaves it behind) or may just have made
    one it has not tracked yet: repeat, a short pause apart, until a round after the first finds nothing left.
    """
    for attempt in range(20):
        leftovers = [path for path in list(_ACTIVE) if path.exists() or path.is_symlink()]
        if not leftovers and attempt > 0:
            return
        for path in leftovers:
            _remove(path)
        time.sleep(REMOVAL_PAUSE_S)


def write_error(exc: OSError, where: Path) -> OutputPathError | None:
    """A clear error for an OSError that means the output cannot be written (disk full, read-only...)."""
    reason = _WRITE_ERRORS.get(exc.errno or 0)
    if reason is None:
        return None
    return OutputPathError(f"cannot write under {where}: {reason}", hint="nothing was written; free space or pick -o")


#: Less free space than this where a step failed means the disk filled up (tools in C++ often report a full disk
#: only by writing a truncated file that then fails to parse).
NEARLY_FULL_BYTES = 1 << 20


def full_disk_error(where: Path) -> OutputPathError | None:
    """The disk-full error, if the file system holding ``where`` has (nearly) no space left."""
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return None
    if usage.free >= NEARLY_FULL_BYTES:
        return None
    return write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), where)


def check_output_path(output: Path, inputs: Iterable[Path]) -> Path:
    """Refuse an output that is, or would overwrite, one of the inputs; make sure its folder is usable."""
    output = output.expanduser()
    resolved = output.resolve()
    for item in inputs:
        item_resolved = Path(item).expanduser().resolve()
        if resolved == item_resolved or item_resolved.is_relative_to(resolved):
            raise OutputPathError(
                f"output path {output} would overwrite the input {item}",
                hint="choose another -o; compressor never changes its input",
            )
    existing = _first_existing(resolved.parent)
    if not existing.is_dir():
        raise OutputPathError(f"cannot write {output}: {existing} is not a folder")
    if not os.access(existing, os.W_OK):
        raise OutputPathError(f"cannot write {output}: {existing} is not writable")
    return output


def _first_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


@contextlib.contextmanager
def staging_dir(near: Path) -> Iterator[Path]:
    """A temporary folder beside ``near`` (same filesystem, so renames are atomic), always removed."""
    parent = near.expanduser().resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=_prefix(), dir=parent))
    _ACTIVE.add(path)
    try:
        yield path
    except OSError as exc:
        raise (write_error(exc, parent) or exc) from exc
    finally:
        shutil.rmtree(path, ignore_errors=True)
        _ACTIVE.discard(path)


@contextlib.contextmanager
def scratch_dir(label: str, parent: Path | None = None) -> Iterator[Path]:
    """A private working folder in ``parent`` (default: the system's temporary folder), always removed.

    Named like staging folders, so one a killed process left is removed by the next run (``remove_stale``)
    and a ``--timeout`` removes it (``remove_active``), which ``tempfile.TemporaryDirectory`` does not.
    """
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{_prefix()}{label}-", dir=parent))
    _ACTIVE.add(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        _ACTIVE.discard(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so the file is either the old one or the complete new one."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(), dir=path.parent)
    _ACTIVE.add(Path(tmp))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (error := write_error(exc, path.parent)):
            raise error from exc
        raise
    finally:
        _ACTIVE.discard(Path(tmp))
    return path


def publish(staged: Path, target: Path) -> Path:
    """Move a staged file or folder to ``target`` atomically, replacing what was there."""
    target = target.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    if staged.is_dir() and target.exists():
        old = target.parent / f"{_prefix()}old-{target.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)
    return target
