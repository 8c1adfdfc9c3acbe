"""Reading, validating and writing ONNX files, external data included, without loading weights twice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, external_data_helper, numpy_helper

from compressor.artifacts import PassRecord, TensorSpec
from compressor.errors import ModelLoadError

LINEAGE_KEY = "compressor.lineage"
#: TensorRT optimization-profile bounds (JSON: input -> {"min", "opt", "max"} shapes), set by format tensorrt.
TRT_PROFILE_KEY = "compressor.trt_profile"
#: Above this many bytes of weights a model is written with its weights in a ``.data`` file beside it.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def read_model(path: Path, load_weights: bool = False) -> onnx.ModelProto:
    """Parse an ONNX file, with clear errors for missing, empty, corrupt or truncated files."""
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, expected an ONNX file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes), not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"{path} is not a valid ONNX model: cannot be parsed ({reason})") from exc
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{path} is not a valid ONNX model: it has no graph (corrupt or not ONNX)")
    if load_weights:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    return model


def validate(path: Path, model: onnx.ModelProto) -> None:
    """Check external data is complete, every weight holds as many values as its shape says, and the model
    passes the ONNX checker."""
    check_external_data(path, model)
    check_initializers(path, model)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # ValidationError; or e.g. UnicodeDecodeError when a corrupt name is in the message
        lines = str(exc).strip().splitlines() if isinstance(exc, onnx.checker.ValidationError) else []
        first = lines[0] if lines else f"{type(exc).__name__} (the model's names or fields are corrupt)"
        raise ModelLoadError(f"{path} fails the ONNX checker: {first}") from exc


#: Tensor types whose values take whole bytes: values per element in the typed field (``float_data``,
#: ``int32_data``...) used when the tensor has no raw data (two for complex numbers). Strings are left to the
#: checker and the runtime.
_BYTE_TYPES = {
    TensorProto.FLOAT: 1, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 1, TensorProto.INT16: 1,
    TensorProto.INT32: 1, TensorProto.INT64: 1, TensorProto.BOOL: 1, TensorProto.FLOAT16: 1, TensorProto.DOUBLE: 1,
    TensorProto.UINT32: 1, TensorProto.UINT64: 1, TensorProto.COMPLEX64: 2, TensorProto.COMPLEX128: 2,
    TensorProto.BFLOAT16: 1, TensorProto.FLOAT8E4M3FN: 1, TensorProto.FLOAT8E4M3FNUZ: 1, TensorProto.FLOAT8E5M2: 1,
    TensorProto.FLOAT8E5M2FNUZ: 1, TensorProto.FLOAT8E8M0: 1,
}  # fmt: skip
#: Packed types: bits per value in raw (or external) data, which ends on a whole byte.
_PACKED_BITS = {
    TensorProto.UINT4: 4, TensorProto.INT4: 4, TensorProto.FLOAT4E2M1: 4, TensorProto.UINT2: 2, TensorProto.INT2: 2,
    TensorProto.FLOAT6E2M3: 6, TensorProto.FLOAT6E3M2: 6,
}  # fmt: skip


def check_initializers(path: Path, model: onnx.ModelProto) -> None:
    """Every initializer has a known type, no negative dim, and exactly the bytes (or values) its shape needs.

    The checker does not look: a tensor whose data and shape disagree would otherwise fail later, in the
    runtime or when its values are read.
    """
    for tensor in model.graph.initializer:
        where = f"{path}: initializer '{tensor.name}'"
        if any(d < 0 for d in tensor.dims):
            raise ModelLoadError(f"{where} has a negative dimension {list(tensor.dims)} (corrupt model)")
        packed = _PACKED_BITS.get(tensor.data_type)
        if tensor.data_type not in _BYTE_TYPES and packed is None:
            if tensor.data_type not in TensorProto.DataType.values() or tensor.data_type == TensorProto.UNDEFINED:
                raise ModelLoadError(f"{where} has an unknown data type {tensor.data_type} (corrupt model)")
            continue  # strings
        count = int(np.prod(tensor.dims, dtype=object))
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        if packed is not None and not (tensor.HasField("raw_data") or external_data_helper.uses_external_data(tensor)):
            continue  # packed values in int32_data: left to the checker and the runtime
        bytes_needed = -(-count * packed // 8) if packed is not None else count * itemsize
        unit = "bytes"
        if external_data_helper.uses_external_data(tensor):
            info = external_data_helper.ExternalDataInfo(tensor)
            # Without a recorded length the tensor runs from its offset; it must fit in the file.
            available = (path.parent / info.location).stat().st_size - (info.offset or 0)
            have, need = info.length or None, bytes_needed
            if have is None and need > available:
                have = available
        elif tensor.HasField("raw_data"):
            have, need = len(tensor.raw_data), bytes_needed
        else:
            field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
            have, need, unit = len(getattr(tensor, field)), count * _BYTE_TYPES[tensor.data_type], "values"
        if have is not None and have != need:
            raise ModelLoadError(
                f"{where} holds {have} {unit} but its shape {list(tensor.dims)} needs {need} "
                "(corrupt or truncated model)"
            )


def check_external_data(path: Path, model: onnx.ModelProto) -> None:
    """Every external tensor's file exists and is long enough for its offset and length."""
    for tensor in _external_tensors(model):
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except ValueError as exc:  # offset or length not a number
            raise ModelLoadError(f"{path}: external data of '{tensor.name}' is malformed ({exc})") from exc
        if not info.location or "\x00" in info.location or (info.offset or 0) < 0 or (info.length or 0) < 0:
            raise ModelLoadError(f"{path}: external data of '{tensor.name}' is malformed (location, offset, length)")
        data_path = (path.parent / info.location).resolve()
        if not data_path.is_relative_to(path.parent.resolve()):
            raise ModelLoadError(f"{path}: external data of '{tensor.name}' points outside the model's folder")
        if not data_path.is_file():
            raise ModelLoadError(
                f"{path}: external data file '{info.location}' is missing (needed by '{tensor.name}')",
                hint="copy the .data file that was saved with the model next to it",
            )
        end = (info.offset or 0) + (info.length or 0)
        if end > data_path.stat().st_size:
            raise ModelLoadError(
                f"{path}: external data file '{info.location}' is truncated "
                f"('{tensor.name}' needs bytes up to {end}, the file has {data_path.stat().st_size})"
            )


def _external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            yield tensor


def external_data_files(path: Path) -> list[Path]:
    """The external data files an ONNX file refers to (empty when it is self-contained)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # an unreadable file has no known external data; the loader reports why
        return []
    locations = {external_data_helper.ExternalDataInfo(t).location for t in _external_tensors(model)}
    return sorted(path.parent / loc for loc in locations if (path.parent / loc).is_file())


def iter_initializers(model: onnx.ModelProto, folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield each initializer as an array; external ones are memory-mapped, one at a time."""
    for tensor in model.graph.initializer:
        yield tensor.name, tensor_array(tensor, folder)


def tensor_array(tensor: onnx.TensorProto, folder: Path) -> np.ndarray:
    """A tensor's values; external data is memory-mapped from ``folder``, not read into memory."""
    if external_data_helper.uses_external_data(tensor):
        return _map_external(tensor, folder)
    return numpy_helper.to_array(tensor)


def _map_external(tensor: onnx.TensorProto, folder: Path) -> np.ndarray:
    info = external_data_helper.ExternalDataInfo(tensor)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    shape = tuple(tensor.dims)
    return np.memmap(folder / info.location, dtype=dtype, mode="r", offset=info.offset or 0, shape=shape)


def tensor_specs(values: list[onnx.ValueInfoProto], skip: set[str] | None = None) -> list[TensorSpec]:
    """Graph inputs or outputs as TensorSpecs (names in ``skip``, e.g. initializers, are left out)."""
    specs = []
    for value in values:
        if skip and value.name in skip:
            continue
        ttype = value.type.tensor_type
        dims = tuple(_dim(d) for d in ttype.shape.dim)
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type).name if ttype.elem_type else "unknown"
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(
                f"'{value.name}' has an unknown element type {ttype.elem_type} (corrupt model)"
            ) from exc
        specs.append(TensorSpec(value.name, dims, dtype))
    return specs


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return dim.dim_param
    return None


def graph_specs(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's real inputs (initializers excluded) and its outputs."""
    initializers = {t.name for t in model.graph.initializer}
    return tensor_specs(list(model.graph.input), initializers), tensor_specs(list(model.graph.output))


def weights_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all initializers, counting external ones by their recorded length."""
    total = 0
    for tensor in model.graph.initializer:
        if external_data_helper.uses_external_data(tensor):
            total += external_data_helper.ExternalDataInfo(tensor).length or 0
        else:
            total += len(tensor.raw_data) or tensor.ByteSize()
    return total


def read_lineage(model: onnx.ModelProto) -> list[PassRecord]:
    for prop in model.metadata_props:
        if prop.key == LINEAGE_KEY:
            try:
                return [PassRecord.from_dict(r) for r in json.loads(prop.value)]
            except (ValueError, KeyError, TypeError):
                return []
    return []


def set_lineage(model: onnx.ModelProto, lineage: list[PassRecord]) -> None:
    """Record which passes made the model in its metadata, replacing an older record."""
    value = json.dumps([{"name": r.name, "config": r.config, "notes": list(r.notes)} for r in lineage], default=str)
    _set_prop(model, LINEAGE_KEY, value)


def _set_prop(model: onnx.ModelProto, key: str, value: str) -> None:
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=key, value=value)


def get_metadata(model: onnx.ModelProto, key: str) -> str | None:
    return next((p.value for p in model.metadata_props if p.key == key), None)


def set_metadata(path: Path, key: str, value: str) -> None:
    """Set one metadata entry of the ONNX file at ``path`` in place (its external data is left as it is)."""
    model = onnx.load(str(path), load_external_data=False)
    _set_prop(model, key, value)
    onnx.save_model(model, str(path))


def write_model(model: onnx.ModelProto, path: Path, external: bool | None = None) -> Path:
    """Save ``model`` (weights loaded) to ``path``; weights go to ``<name>.data`` when large or asked."""
    if external is None:
        external = weights_bytes(model) > EXTERNAL_DATA_THRESHOLD
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))
    return path


def copy_model(src: Path, dst: Path, lineage: list[PassRecord]) -> Path:
    """Copy an ONNX model to ``dst`` with its lineage recorded; external data is renamed to match ``dst``.

    Weights are streamed file to file, never loaded into memory.
    """
    model = onnx.load(str(src), load_external_data=False)
    set_lineage(model, lineage)
    tensors = list(_external_tensors(model))
    locations = sorted({external_data_helper.ExternalDataInfo(t).location for t in tensors})
    renamed = {
        loc: f"{dst.name}.data" if len(locations) == 1 else f"{dst.name}.{i}.data" for i, loc in enumerate(locations)
    }
    for old, new in renamed.items():
        shutil.copyfile(src.parent / old, dst.parent / new)
    for tensor in tensors:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = renamed[entry.value]
    onnx.save_model(model, str(dst))
    return dst
