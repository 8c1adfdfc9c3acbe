"""Atomic outputs: everything is written under a temporary name in the target folder, then renamed.

A reader sees a complete file or none; the input is never overwritten; temporary files are removed
even when the work fails. Temporary names carry the process id: one left by a process that was killed
(SIGKILL, power loss) is removed by the next run that writes in the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from compressor.errors import OutputPathError

STAGING_PREFIX = ".compressor-tmp-"
#: Temporary files and folders of this process, removed by :func:`remove_active` (e.g. on a timeout).
_ACTIVE: set[Path] = set()
#: errno values that mean "the output cannot be written here", reported as a clear error.
_WRITE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}  # fmt: skip


def _prefix() -> str:
    return f"{STAGING_PREFIX}{os.getpid()}-"


def _owner(name: str) -> int | None:
    pid = name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


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


def remove_active() -> None:
    """Remove this process's temporary files and folders now (before an abrupt exit)."""
    for path in list(_ACTIVE):
        _remove(path)
    _ACTIVE.clear()


def write_error(exc: OSError, where: Path) -> OutputPathError | None:
    """A clear error for an OSError that means the output cannot be written (disk full, read-only...)."""
    reason = _WRITE_ERRORS.get(exc.errno or 0)
    if reason is None:
        return None
    return OutputPathError(f"cannot write under {where}: {reason}", hint="nothing was written; free space or pick -o")


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


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so the file is either the old one or the complete new one."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
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
