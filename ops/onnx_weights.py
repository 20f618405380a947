"""Read an ONNX model's weights without the `onnx` package: a tiny protobuf wire-format decoder.

Only what rebuilding a network in torch needs is decoded: the graph's nodes (name, op type,
inputs, outputs) and its initializers (name, dims, float32 data from `raw_data` or
`float_data`). Field numbers follow onnx.proto3 (ModelProto.graph = 7; GraphProto.node = 1,
initializer = 5; NodeProto.input = 1, output = 2, name = 3, op_type = 4; TensorProto.dims = 1,
data_type = 2, float_data = 4, name = 8, raw_data = 9, data_location = 14).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

FLOAT = 1  # TensorProto.DataType.FLOAT
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5  # protobuf wire types


@dataclass(frozen=True)
class OnnxNode:
    """One graph node: what it computes and which tensors it reads and writes."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one message: ints for varints, bytes views for the rest."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
            yield field, value
        elif wire == LENGTH:
            size, pos = _varint(buf, pos)
            yield field, buf[pos : pos + size]
            pos += size
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            yield field, buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")


def _packed_varints(value: int | memoryview) -> list[int]:
    if isinstance(value, int):  # one unpacked element
        return [value]
    out, pos = [], 0
    while pos < len(value):
        number, pos = _varint(value, pos)
        out.append(number)
    return out


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    name, dims, data_type, raw, floats = "", [], FLOAT, None, []
    for field, value in _fields(buf):
        if field == 1:
            dims.extend(_packed_varints(value))
        elif field == 2:
            data_type = int(value)
        elif field == 4:  # packed (or repeated fixed32) floats
            floats.append(np.frombuffer(bytes(value), dtype="<f4"))
        elif field == 8:
            name = bytes(value).decode()
        elif field == 9:
            raw = bytes(value)
        elif field == 14 and value == 1:
            raise ValueError("initializers stored outside the model file are not supported")
    if data_type != FLOAT:
        raise ValueError(f"initializer {name!r} has data type {data_type}, only float32 is read")
    data = np.frombuffer(raw, dtype="<f4") if raw is not None else np.concatenate(floats or [[]])
    return name, data.astype(np.float32).reshape(dims)


def _node(buf: memoryview) -> OnnxNode:
    inputs, outputs, name, op_type = [], [], "", ""
    for field, value in _fields(buf):
        if isinstance(value, int):
            continue
        if field == 1:
            inputs.append(bytes(value).decode())
        elif field == 2:
            outputs.append(bytes(value).decode())
        elif field == 3:
            name = bytes(value).decode()
        elif field == 4:
            op_type = bytes(value).decode()
    return OnnxNode(name, op_type, tuple(inputs), tuple(outputs))


def read_onnx_graph(model: bytes) -> tuple[list[OnnxNode], dict[str, np.ndarray]]:
    """Nodes (in graph order) and float32 initializers by name of a serialized ModelProto."""
    graph = next((v for f, v in _fields(memoryview(model)) if f == 7), None)
    if graph is None or isinstance(graph, int):
        raise ValueError("not an ONNX model: no graph")
    nodes, weights = [], {}
    for field, value in _fields(graph):
        if field == 1:
            nodes.append(_node(value))
        elif field == 5:
            name, array = _tensor(value)
            weights[name] = array
    return nodes, weights
