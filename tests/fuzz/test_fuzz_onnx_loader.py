"""Property tests for the ONNX loader: mutated copies of the digits model (bit flips, truncations, random edits
of its fields through the protobuf API) either load or are refused with a CompressorError; `inspect` on them
never ends in an internal error (exit 70) and never leaves a traceback."""

from __future__ import annotations

from pathlib import Path

import onnx
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto

from compressor.errors import CompressorError, ExitCode
from compressor.loaders import load_model
from tests.conftest import DIGITS

ORIGINAL = (DIGITS / "digits_cnn.onnx").read_bytes()
TENSOR_TYPES = st.integers(-1, 30)
NAMES = st.one_of(st.text(max_size=12), st.sampled_from(["input", "output", "", "../x", "/etc/passwd", "a\x00b"]))
DIMS = st.lists(st.one_of(st.integers(-3, 70), st.integers(-(2**63), 2**63 - 1)), max_size=5)


def edit(model: onnx.ModelProto, which: str, data: st.DataObject) -> None:
    """One random edit of ``model``."""
    graph = model.graph
    pick = lambda items: items[data.draw(st.integers(0, len(items) - 1))] if len(items) else None  # noqa: E731
    if which == "op_type" and (node := pick(graph.node)):
        node.op_type = data.draw(st.one_of(st.sampled_from(["Conv", "MatMul", "Gemm", "If", "Loop", "Scan"]), NAMES))
    elif which == "node_io" and (node := pick(graph.node)):
        target = node.input if data.draw(st.booleans()) else node.output
        if len(target) and data.draw(st.booleans()):
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(NAMES)
        elif len(target):
            del target[data.draw(st.integers(0, len(target) - 1))]
        else:
            target.append(data.draw(NAMES))
    elif which == "attribute" and (node := pick(graph.node)) and (attr := pick(node.attribute)):
        attr.type = data.draw(st.integers(0, 14))
        attr.ints[:] = data.draw(st.lists(st.integers(-(2**31), 2**31), max_size=4))
    elif which == "dims" and (tensor := pick(graph.initializer)):
        tensor.dims[:] = data.draw(DIMS)
    elif which == "data_type" and (tensor := pick(graph.initializer)):
        tensor.data_type = data.draw(TENSOR_TYPES)
    elif which == "raw_data" and (tensor := pick(graph.initializer)):
        raw = tensor.raw_data
        tensor.raw_data = raw[: data.draw(st.integers(0, len(raw)))] + data.draw(st.binary(max_size=16))
    elif which == "external" and (tensor := pick(graph.initializer)):
        tensor.data_location = TensorProto.EXTERNAL
        keys = st.sampled_from(["location", "offset", "length", "checksum", "basepath", ""])
        for key, value in data.draw(st.lists(st.tuples(keys, st.one_of(NAMES, st.integers().map(str))), max_size=4)):
            tensor.external_data.add(key=key, value=value)
    elif which == "value_type" and (value := pick([*graph.input, *graph.output])):
        value.type.tensor_type.elem_type = data.draw(TENSOR_TYPES)
        for dim in value.type.tensor_type.shape.dim:
            if data.draw(st.booleans()):
                dim.dim_value = data.draw(st.integers(-5, 2**40))
            else:
                dim.dim_param = data.draw(NAMES)
    elif which == "opset":
        entry = pick(model.opset_import)
        if entry is not None:
            entry.version = data.draw(st.integers(-1, 1000))
            entry.domain = data.draw(st.one_of(st.just(entry.domain), NAMES))
    elif which == "ir_version":
        model.ir_version = data.draw(st.integers(-1, 100))
    elif which == "lineage":
        model.metadata_props.add(key="compressor.lineage", value=data.draw(st.text(max_size=60)))
    elif which == "drop":
        field = data.draw(st.sampled_from([graph.node, graph.initializer, graph.input, graph.output]))
        if len(field):
            del field[data.draw(st.integers(0, len(field) - 1))]
    elif which == "duplicate" and (node := pick(graph.node)):
        graph.node.append(node)


EDITS = [
    "op_type", "node_io", "attribute", "dims", "data_type", "raw_data", "external", "value_type", "opset",
    "ir_version", "lineage", "drop", "duplicate",
]  # fmt: skip


def check(path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    try:
        load_model(path)
    except CompressorError as exc:
        assert exc.message
    result = cli("inspect", path, "--json")
    assert result.code != ExitCode.INTERNAL_ERROR, result.stderr
    assert "Traceback" not in result.output


@given(flips=st.lists(st.tuples(st.integers(0, len(ORIGINAL) - 1), st.integers(0, 7)), min_size=1, max_size=20))
def test_bit_flips(tmp_path: Path, cli, flips: list[tuple[int, int]]) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(ORIGINAL)
    for position, bit in flips:
        data[position] ^= 1 << bit
    path = tmp_path / "flipped.onnx"
    path.write_bytes(bytes(data))
    check(path, cli)


@given(length=st.integers(0, len(ORIGINAL) - 1))
def test_truncations(tmp_path: Path, cli, length: int) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "truncated.onnx"
    path.write_bytes(ORIGINAL[:length])
    check(path, cli)


@given(edits=st.lists(st.sampled_from(EDITS), min_size=1, max_size=4), data=st.data())
def test_field_edits(tmp_path: Path, cli, edits: list[str], data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    model = onnx.load_from_string(ORIGINAL)
    for which in edits:
        edit(model, which, data)
    path = tmp_path / "edited.onnx"
    path.write_bytes(model.SerializeToString())
    check(path, cli)
