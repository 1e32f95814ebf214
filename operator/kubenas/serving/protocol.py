"""Open Inference Protocol (V2) REST requests and responses, checked against a model's
signature: pure functions, no HTTP.

A request is JSON (``{"id", "parameters", "inputs": [{"name", "shape", "datatype",
"data"}], "outputs": [{"name", "parameters"}]}``; ``data`` flat or nested, row-major),
or, with the binary tensor extension that tritonclient uses by default, that JSON
followed by the raw little-endian tensor bytes: the ``Inference-Header-Content-Length``
header gives the JSON's length, each binary input says ``parameters.binary_data_size``.
Every problem is an ``InferenceError`` (status 400, or 413 past a size bound) whose
message names the tensor and what was expected.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from .signature import DATATYPE_OF, DATATYPES, Signature, TensorSpec

HEADER_LENGTH = "Inference-Header-Content-Length"


class InferenceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    id: str | None
    array: np.ndarray
    outputs: list[tuple[str, bool]]  # (name, as binary)


def _bad(message: str) -> InferenceError:
    return InferenceError(400, message)


def shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def decode(body: bytes, header_length: str | None, signature: Signature, max_elements: int) -> Request:
    """The request in ``body`` as the model's input array; InferenceError if it is not one."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise _bad(f"header {HEADER_LENGTH} is {header_length!r}, expected the JSON part's length in bytes") \
                from None
        if not 0 <= n <= len(body):
            raise _bad(f"header {HEADER_LENGTH} is {n}, but the body has {len(body)} bytes")
        body, binary = body[:n], body[n:]
    try:
        request = json.loads(body)
    except RecursionError:
        raise _bad("the request body nests JSON arrays or objects too deeply to read; send \"data\" flat "
                   "(row-major), as the protocol allows") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise _bad(f"the request body is not JSON ({err}); send an inference request object "
                   '{"inputs": [{"name", "shape", "datatype", "data"}]}') from None
    if not isinstance(request, dict):
        raise _bad(f"the request body is JSON {type(request).__name__}, expected an object with \"inputs\"")
    rid = request.get("id")
    if rid is not None and not isinstance(rid, str):
        raise _bad(f"\"id\" is {json.dumps(rid)}, expected a string")
    params = request.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("\"parameters\" must be an object")
    spec = signature.input
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad(f"\"inputs\" must be a list holding the tensor {spec.name} ({spec.datatype} "
                   f"{shape_text(spec.shape)})")
    array, offset = None, 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _bad(f"inputs[{i}] must be an object with a string \"name\" (expected {spec.name})")
        if tensor["name"] != spec.name:
            raise _bad(f"unexpected input {tensor['name']!r}: the model takes one input, {spec.name} "
                       f"({spec.datatype} {shape_text(spec.shape)})")
        if array is not None:
            raise _bad(f"input {spec.name} is given twice")
        array, offset = _tensor(tensor, spec, binary, offset, max_elements)
    if offset != len(binary):
        raise _bad(f"the body holds {len(binary) - offset} bytes of binary data after the inputs' "
                   "binary_data_size")
    return Request(rid, array, _outputs(request.get("outputs"), signature, bool(params.get("binary_data_output"))))


def _tensor(tensor: dict, spec: TensorSpec, binary: bytes, offset: int, max_elements: int) -> tuple[np.ndarray, int]:
    name = spec.name
    shape, datatype = tensor.get("shape"), tensor.get("datatype")
    if datatype != spec.datatype:
        known = "" if datatype in DATATYPES else f" (not a V2 datatype: {', '.join(DATATYPES)})"
        raise _bad(f"input {name}: datatype {json.dumps(datatype)}, expected {spec.datatype}{known}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise _bad(f"input {name}: shape {json.dumps(shape)} is not a list of integers; expected "
                   f"{shape_text(spec.shape)} (-1: any size)")
    if len(shape) != len(spec.shape) or any(w != -1 and d != w for d, w in zip(shape, spec.shape)) \
            or any(d < 1 for d in shape):
        raise _bad(f"input {name}: shape {shape_text(shape)}, expected {shape_text(spec.shape)} "
                   "(-1: any size of at least 1)")
    count = math.prod(shape)
    if count > max_elements:
        raise InferenceError(413, f"input {name}: shape {shape_text(shape)} holds {count} elements, more than "
                                  f"this server's limit of {max_elements} (--max-elements); send smaller batches")
    size = (tensor.get("parameters") or {}).get("binary_data_size") if isinstance(tensor.get("parameters"), dict) \
        else None
    if size is not None:
        expected = count * spec.dtype.itemsize
        if size != expected:
            raise _bad(f"input {name}: binary_data_size {size}, expected {expected} ({count} {spec.datatype} "
                       f"elements of shape {shape_text(shape)})")
        if offset + size > len(binary):
            raise _bad(f"input {name}: binary_data_size {size}, but only {len(binary) - offset} bytes follow "
                       "the JSON")
        array = np.frombuffer(binary, dtype=spec.dtype.newbyteorder("<"), count=count, offset=offset)
        return array.astype(spec.dtype).reshape(shape), offset + size
    if "data" not in tensor:
        raise _bad(f"input {name}: no \"data\" (nor parameters.binary_data_size)")
    data = tensor["data"]
    try:
        values = np.array(data)
    except (ValueError, TypeError):
        raise _bad(f"input {name}: \"data\" is not a (nested) list of numbers") from None
    kinds = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}[spec.dtype.kind]
    if values.size != count:
        raise _bad(f"input {name}: \"data\" holds {values.size} values, but shape {shape_text(shape)} "
                   f"needs {count}")
    if values.dtype.kind not in kinds:
        raise _bad(f"input {name}: \"data\" holds {_kind_text(values)}, expected {spec.datatype} numbers")
    return values.astype(spec.dtype).reshape(shape), offset


def _kind_text(values: np.ndarray) -> str:
    return {"f": "non-integer numbers", "b": "booleans", "U": "strings"}.get(values.dtype.kind, "values that are "
                                                                             "not all numbers")


def _outputs(requested, signature: Signature, binary_default: bool) -> list[tuple[str, bool]]:
    if requested is None:
        return [(name, binary_default) for name in signature.output_names]
    if not isinstance(requested, list):
        raise _bad(f"\"outputs\" must be a list of {{\"name\"}} objects (outputs: "
                   f"{', '.join(signature.output_names)})")
    chosen = []
    for i, out in enumerate(requested):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in signature.output_names:
            raise _bad(f"outputs[{i}]: unknown output {json.dumps(name)}; the model gives "
                       f"{', '.join(signature.output_names)}")
        params = out.get("parameters") if isinstance(out.get("parameters"), dict) else {}
        chosen.append((name, bool(params.get("binary_data", binary_default))))
    return chosen


def encode(model_name: str, version: str, request: Request, tensors: dict[str, np.ndarray]) -> tuple[bytes, int | None]:
    """(the response body, the JSON part's length when binary outputs follow it, else None)."""
    outputs, blobs = [], []
    for name, as_binary in request.outputs:
        value = np.ascontiguousarray(tensors[name])
        entry = {"name": name, "datatype": _datatype(value), "shape": list(value.shape)}
        if as_binary:
            blob = value.astype(value.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = value.reshape(-1).tolist()
        outputs.append(entry)
    response = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _datatype(value: np.ndarray) -> str:
    return DATATYPE_OF[value.dtype]
