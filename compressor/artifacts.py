"""Artifacts: a model on disk, its format and what is known about it.

Passes read one artifact and write a new one; they never change their input. An artifact that is a
folder carries an ``artifact.json`` sidecar so any loader can read it back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import ModelLoadError

SIDECAR_NAME = "artifact.json"
SIDECAR_VERSION = 1

Dim = int | str | None


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of a model input or output. Symbolic dims are strings, unknown ones None."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {self.dtype}[{dims}]"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])


@dataclass(frozen=True)
class PassRecord:
    """One step of an artifact's lineage: which pass made it, with which config and what it noted."""

    name: str
    config: dict[str, Any]
    notes: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PassRecord:
        return cls(name=data["name"], config=dict(data.get("config", {})), notes=tuple(data.get("notes", ())))


@dataclass
class Artifact:
    """A model on disk plus its format and metadata."""

    path: Path
    format: str
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    source: str = ""
    lineage: list[PassRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def derive(self, path: Path, record: PassRecord, fmt: str | None = None, **changes: Any) -> Artifact:
        """A new artifact made from this one by a pass: same source, lineage extended."""
        base = {
            "path": path,
            "format": fmt or self.format,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "source": self.source,
            "lineage": [*self.lineage, record],
            "extra": dict(self.extra),
        }
        base.update(changes)
        return Artifact(**base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SIDECAR_VERSION,
            "path": str(self.path),
            "format": self.format,
            "inputs": [asdict(s) for s in self.inputs],
            "outputs": [asdict(s) for s in self.outputs],
            "source": self.source,
            "lineage": [asdict(r) for r in self.lineage],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> Artifact:
        return cls(
            path=path,
            format=data["format"],
            inputs=[TensorSpec.from_dict(s) for s in data.get("inputs", [])],
            outputs=[TensorSpec.from_dict(s) for s in data.get("outputs", [])],
            source=data.get("source", ""),
            lineage=[PassRecord.from_dict(r) for r in data.get("lineage", [])],
            extra=dict(data.get("extra", {})),
        )


def write_sidecar(artifact: Artifact, folder: Path) -> None:
    """Describe a folder artifact in ``folder/artifact.json`` (paths stored relative to the folder)."""
    data = artifact.to_dict()
    data["path"] = str(artifact.path.relative_to(folder)) if artifact.path != folder else "."
    (folder / SIDECAR_NAME).write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_sidecar(folder: Path) -> Artifact | None:
    """The artifact a folder describes, or None when it has no sidecar."""
    sidecar = folder / SIDECAR_NAME
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
        return Artifact.from_dict(data, (folder / data.get("path", ".")).resolve())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise ModelLoadError(f"{sidecar} is not a valid artifact description ({reason})") from exc


def artifact_files(path: Path) -> list[Path]:
    """Every file that makes up the model at ``path`` (a folder's files, or a file and its external data)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.suffix == ".onnx":
        from compressor.onnx_io import external_data_files

        return [path, *external_data_files(path)]
    return [path]


def total_size(path: Path) -> int:
    """Bytes on disk of the model at ``path``, external data included."""
    return sum(p.stat().st_size for p in artifact_files(path))
