"""A full disk and a read-only output give one clear error (exit 3) and leave nothing behind.

Where this process may mount (root, here) the cases are real: a tiny tmpfs that fills up, and a read-only
tmpfs (root ignores file modes, so chmod proves nothing). Everywhere, the same failures are also simulated by
making the write itself fail with ENOSPC / EROFS, in the pass, at the final rename, and for a report.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from compressor.errors import ExitCode
from tests.conftest import assert_clean_error, file_digest


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """``tmpfs(name, options)`` mounts a tmpfs under tmp_path (skips where mounting is not allowed)."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        folder = tmp_path / name
        if not _mount(folder, options):
            pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(cli, digits_dir: Path, tmpfs) -> None:  # type: ignore[no-untyped-def]
    full = tmpfs("full", "size=256k")
    model = digits_dir / "digits_cnn.onnx"
    before = file_digest(model)
    for args in (
        ("quantize", model, "-o", full / "q.onnx"),
        ("quantize", model, "--mode", "static", "--data", digits_dir / "calib.npz", "-o", full / "sub" / "q.onnx"),
        ("run", _recipe(digits_dir), "-o", full / "run"),
    ):
        result = cli(*args)
        assert_clean_error(result, ExitCode.INPUT_ERROR, "no space left on the device")
        assert "nothing was written" in result.stderr
        assert [p for p in full.rglob("*") if p.is_file()] == []
    assert file_digest(model) == before


def test_a_read_only_output_is_a_clear_error(cli, digits_dir: Path, tmpfs) -> None:  # type: ignore[no-untyped-def]
    read_only = tmpfs("ro", "ro,size=64k")
    model = digits_dir / "digits_cnn.onnx"
    for args in (
        ("quantize", model, "-o", read_only / "q.onnx"),
        ("run", _recipe(digits_dir), "-o", read_only / "run"),
        ("compare", model, model, "--min-runs", "1", "--min-time", "0", "--report", read_only / "r.md"),
    ):
        assert_clean_error(cli(*args), ExitCode.INPUT_ERROR, str(read_only), "not writable")
    assert list(read_only.iterdir()) == []


def _recipe(folder: Path) -> Path:
    recipe = folder / "recipe.yaml"
    recipe.write_text("version: 1\nmodel: digits_cnn.onnx\npasses: [quantize.dynamic]\nmeasure: {latency: false}\n")
    return recipe


def _failing(code: int, real):  # type: ignore[no-untyped-def]
    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(("code", "message"), [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only")])
@pytest.mark.parametrize("where", ["pass", "publish", "report"])
def test_simulated_write_failures_are_clear_and_leave_nothing(  # type: ignore[no-untyped-def]
    cli, digits_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int, message: str, where: str
) -> None:
    model = digits_dir / "digits_cnn.onnx"
    out = digits_dir / "out"
    if where == "pass":  # the quantizer's own write fails
        import onnx

        monkeypatch.setattr(onnx, "save_model", _failing(code, onnx.save_model))
        args: tuple[object, ...] = ("quantize", model, "-o", out / "q.onnx")
    elif where == "publish":  # the final rename into place fails
        from compressor import outputs

        monkeypatch.setattr(outputs.os, "replace", _failing(code, os.replace))
        args = ("run", _recipe(digits_dir), "-o", out / "run")
    else:
        from compressor import outputs

        monkeypatch.setattr(outputs.os, "fdopen", _failing(code, os.fdopen))
        args = ("compare", model, model, "--min-runs", "1", "--min-time", "0", "--report", out / "r.md")
    before = file_digest(model)
    result = cli(*args)
    monkeypatch.undo()
    assert_clean_error(result, ExitCode.INPUT_ERROR, "cannot write under", message)
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []
    assert file_digest(model) == before
    assert [p.name for p in digits_dir.iterdir() if p.name.startswith(".compressor-tmp-")] == []
