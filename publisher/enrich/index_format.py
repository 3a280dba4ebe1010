"""How a related-reading index is stored in the state: named NumPy arrays behind one small header.

    MAGIC, 8-byte little-endian header length, JSON header, then each array's bytes at a 64-byte
    aligned offset (little-endian, C order).

The header holds the container's version, the model's (`publisher.enrich.MODEL_VERSION`), the index's
`fitted` and `changed` counts, and per array its name, dtype, shape and offset; the reader names the
arrays it expects with their dtype and number of dimensions, and anything else is refused. Reading makes
every array a read-only view into the stored bytes: no parsing of a zip and no copy (the 43 MB index of
22,250 articles is read on every run that ranks something); whoever changes an array in place copies it
first, and whoever keeps one beyond the index's own arrays copies it too (else the whole blob stays).
Nothing is unpickled. An earlier publisher reads this as a file it cannot use (NumPy refuses it as
pickled data: a ValueError) and builds its index again; an index stored before (an .npz, a zip file)
or by an earlier model is `EarlierFormat` here, built again without a warning.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

CONTAINER_VERSION = 1
MAGIC = b"publisher related-reading index\n"
ZIP_MAGIC = b"PK\x03\x04"  # indexes of models 1-2 were .npz files
ALIGN = 64
DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1"})  # what an index holds; anything else is refused
LENGTH = struct.Struct("<Q")
Spec = Mapping[str, tuple[str, int]]  # array name -> (dtype, number of dimensions)


class EarlierFormat(ValueError):
    """An index stored by an earlier version of the ranker: built again once, as expected after an upgrade."""


@dataclass(frozen=True)
class Stored:
    """What a stored index holds: its counts and its arrays (read-only views into the stored bytes)."""

    fitted: int
    changed: int
    arrays: Mapping[str, NDArray[Any]]


def encode(model: int, fitted: int, changed: int, arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """The stored form of an index (see the module docstring); ValueError for an array of another dtype."""
    parts: list[bytes] = []
    table: list[tuple[str, str, list[int], int]] = []
    offset = 0
    for name, array in arrays.items():
        dtype = array.dtype if array.dtype.byteorder == "|" else array.dtype.newbyteorder("<")
        if dtype.str not in DTYPES:
            raise ValueError(f"array {name!r} is {dtype.str}: an index holds only {sorted(DTYPES)}")
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        pad = -offset % ALIGN
        parts += [b"\0" * pad, data]
        offset += pad
        table.append((name, dtype.str, list(array.shape), offset))
        offset += len(data)
    header = json.dumps({"container": CONTAINER_VERSION, "model": model, "fitted": fitted, "changed": changed,
                         "arrays": table}, separators=(",", ":")).encode()
    start = len(MAGIC) + LENGTH.size + len(header)
    lead = b"\0" * (-start % ALIGN)
    return b"".join([MAGIC, LENGTH.pack(len(header) + len(lead)), header, lead, *parts])


def decode(data: bytes, model: int, spec: Spec) -> Stored:
    """The counts and the `spec` arrays of a stored index of `model`: EarlierFormat for one stored before
    (by an earlier model, or as an .npz), ValueError for anything else that is not such an index."""
    if data.startswith(ZIP_MAGIC):
        raise EarlierFormat("an .npz index (model 2 or earlier)")
    header, body = _header(data)
    if header["container"] != CONTAINER_VERSION:
        raise ValueError(f"not a related-reading index: container {header['container']}, expected {CONTAINER_VERSION}")
    if header["model"] < model:
        raise EarlierFormat(f"model {header['model']}, this ranker's is {model}")
    if header["model"] != model:
        raise ValueError(f"not a related-reading index of this version: model {header['model']}, expected {model}")
    table = _table(header["arrays"])
    if sorted(table) != sorted(spec):
        raise ValueError(f"not a related-reading index: arrays {sorted(table)}, expected {sorted(spec)}")
    buffer = memoryview(data)[body:]
    return Stored(header["fitted"], header["changed"],
                  {name: _view(buffer, name, spec[name], *table[name]) for name in spec})


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header (its numbers checked to be whole numbers) and where the arrays start."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + LENGTH.size:
        raise ValueError("not a related-reading index")
    (length,) = LENGTH.unpack_from(data, len(MAGIC))
    body = len(MAGIC) + LENGTH.size + length
    try:
        header = json.loads(data[len(MAGIC) + LENGTH.size:body].rstrip(b"\0"))
    except (ValueError, RecursionError) as e:  # json.JSONDecodeError and bad UTF-8 are ValueErrors
        raise ValueError(f"not a related-reading index: its header cannot be read ({type(e).__name__})") from e
    numbers = ("container", "model", "fitted", "changed")
    if not isinstance(header, dict) or not all(type(header.get(k)) is int and header[k] >= 0 for k in numbers):
        raise ValueError("not a related-reading index: its header is not one")
    return header, body


def _table(arrays: object) -> dict[str, tuple[str, list[int], int]]:
    """name -> (dtype, shape, offset) of the header's array list, each checked for its kind."""
    if not isinstance(arrays, list):
        raise ValueError("not a related-reading index: no list of arrays")
    table: dict[str, tuple[str, list[int], int]] = {}
    for item in arrays:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str) and isinstance(item[1], str)
                and isinstance(item[2], list) and all(type(n) is int and n >= 0 for n in [*item[2], item[3]])):
            raise ValueError(f"not a related-reading index: an array entry is {str(item)[:80]}")
        table[item[0]] = (item[1], item[2], item[3])
    return table


def _view(buffer: memoryview, name: str, expected: tuple[str, int], dtype: str, shape: Sequence[int],
          offset: int) -> NDArray[Any]:
    if (dtype, len(shape)) != expected:
        raise ValueError(f"not a related-reading index: array {name!r} is {dtype} in {len(shape)} dimensions, "
                         f"expected {expected[0]} in {expected[1]}")
    count = math.prod(shape)  # Python integers: no overflow
    if offset + count * np.dtype(dtype).itemsize > len(buffer):
        raise ValueError(f"not a related-reading index: array {name!r} runs past the end")
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)


def writable(array: NDArray[Any]) -> Any:
    """The array itself, or a copy of it when it is a read-only view of stored bytes (`decode`): what to
    change in place."""
    return array if array.flags.writeable else array.copy()


def pack(strings: Sequence[str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Strings -> (UTF-8 bytes, end offsets): storable as arrays."""
    encoded = [s.encode("utf-8") for s in strings]
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    ends = np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)))
    return blob, ends.astype(np.int64)


def unpack(blob: NDArray[Any], ends: NDArray[Any]) -> list[str]:
    """The strings of `pack`; ValueError when the offsets do not fit the bytes or the bytes are not UTF-8."""
    data = blob.tobytes()
    bounds = ends.tolist()
    if bounds != sorted(bounds) or (bounds and (bounds[0] < 0 or bounds[-1] > len(data))):
        raise ValueError("not a related-reading index: string offsets out of order")
    starts = [0, *bounds[:-1]] if bounds else []
    return [data[a:b].decode("utf-8") for a, b in zip(starts, bounds, strict=True)]
