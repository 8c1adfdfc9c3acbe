"""Running ONNX Runtime's tooling cleanly: in a scratch folder, on a staged copy of the input.

ORT's quantizers write temporary models next to their input and in the working and temp folders,
and leave some behind when they fail (STACK.md). Here the input is linked into a scratch folder, the
working folder and TMPDIR point into it, and the whole folder is removed afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from compressor.artifacts import Artifact, artifact_files

OUTPUT_NAME = "model.onnx"


@contextlib.contextmanager
def scratch_folder(workdir: Path) -> Iterator[Path]:
    """cwd, TMPDIR and ``tempfile.tempdir`` inside a fresh folder under ``workdir``; all restored after."""
    scratch = workdir / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    saved_cwd, saved_tempdir, saved_env = os.getcwd(), tempfile.tempdir, os.environ.get("TMPDIR")
    os.chdir(scratch)
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)
    try:
        yield scratch
    finally:
        os.chdir(saved_cwd)
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(scratch, ignore_errors=True)


def stage_input(artifact: Artifact, scratch: Path) -> Path:
    """Stage the model in ``scratch``, so tools write beside the staged file, never beside the input.

    The ``.onnx`` file is linked (symbolically); its external data files are copied, streamed file to file
    (disk, not memory): onnx refuses external data reached through a symbolic link ("... but it is a symbolic
    link") or a file with several hard links ("... potential hardlink attack"), so a link would make every
    quantization of an external-data model fail.
    """
    staged_dir = scratch / "input"
    staged_dir.mkdir(exist_ok=True)
    model, *data_files = artifact_files(artifact.path)
    os.symlink(model.resolve(), staged_dir / model.name)
    for file in data_files:
        target = staged_dir / file.relative_to(model.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    return staged_dir / artifact.path.name


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence ORT tooling: its Python logging (root-logger warnings, INFO chatter, the basicConfig some
    modules call on import) and its print() calls, which would corrupt ``--json`` output on stdout."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def op_counts(path: Path) -> Counter[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return Counter(node.op_type for node in model.graph.node)


def is_large(artifact: Artifact) -> bool:
    """Whether the model needs external data (over ~1.8 GB of weights)."""
    from compressor.onnx_io import EXTERNAL_DATA_THRESHOLD

    return sum(f.stat().st_size for f in artifact_files(artifact.path)) > EXTERNAL_DATA_THRESHOLD


def onnx_op_types(artifact: Artifact) -> set[str]:
    """The op types of an ONNX artifact (empty for other formats): search spaces adapt to them."""
    return set(op_counts(artifact.path)) if artifact.format == "onnx" else set()
