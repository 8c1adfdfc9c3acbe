"""Atomic outputs: everything is written under a temporary name in the target folder, then renamed.

A reader sees a complete file or none; the input is never overwritten; temporary files are removed
even when the work fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from compressor.errors import OutputPathError

STAGING_PREFIX = ".compressor-tmp-"


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
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` so the file is either the old one or the complete new one."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def publish(staged: Path, target: Path) -> Path:
    """Move a staged file or folder to ``target`` atomically, replacing what was there."""
    target = target.expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    if staged.is_dir() and target.exists():
        old = target.parent / f"{STAGING_PREFIX}old-{target.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)
    return target
