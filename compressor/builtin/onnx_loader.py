"""The ONNX loader: single-file and external-data models, validated before anything runs."""

from __future__ import annotations

from pathlib import Path

from compressor.artifacts import Artifact, read_sidecar
from compressor.errors import ModelLoadError
from compressor.loaders import Loader, LoaderOptions, sidecar_format


class OnnxLoader(Loader):
    name = "onnx"
    summary = ".onnx files, with external data; folders holding one"
    formats = ("onnx",)
    safety = "data only (protobuf and raw tensor files; nothing is executed)"

    def claims(self, ref: str) -> bool:
        path = Path(ref)
        if path.suffix.lower() == ".onnx":
            return True
        return sidecar_format(path) == "onnx" or (path.is_dir() and len(list(path.glob("*.onnx"))) == 1)

    def load(self, ref: str, options: LoaderOptions) -> Artifact:
        path = Path(ref)
        if path.is_dir():
            described = read_sidecar(path)
            if described:
                path = described.path
            else:
                found = sorted(path.glob("*.onnx"))
                if len(found) != 1:
                    raise ModelLoadError(
                        f"{path} is a directory holding {len(found)} .onnx files, expected an ONNX file "
                        "or a folder with exactly one"
                    )
                path = found[0]
        return load_onnx(path)


def load_onnx(path: Path) -> Artifact:
    """Read, validate and describe an ONNX file (weights are not loaded into memory)."""
    from compressor.onnx_io import graph_specs, read_lineage, read_model, validate

    model = read_model(path)
    validate(path, model)
    inputs, outputs = graph_specs(model)
    if not outputs:
        raise ModelLoadError(f"{path} has no graph outputs")
    return Artifact(
        path=path.resolve(),
        format="onnx",
        inputs=inputs,
        outputs=outputs,
        source=str(path),
        lineage=read_lineage(model),
        extra={"opset": _opset(model), "producer": f"{model.producer_name} {model.producer_version}".strip()},
    )


def _opset(model) -> int:  # type: ignore[no-untyped-def]
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0
