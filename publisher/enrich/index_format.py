"""How a related-reading index is stored in the state: named NumPy arrays behind one small header.

    MAGIC, 8-byte little-endian header length, JSON header, then each array's bytes at a 64-byte
    aligned offset (little-endian, C order).

The header holds the format version, the index's `fitted` and `changed` counts, and per array its name,
dtype, shape and offset. Reading makes every array a read-only view into the stored bytes: no parsing
of a zip and no copy (the 43 MB index of 22,250 articles is read on every run that ranks something);
whoever changes an array in place copies it first. Nothing is unpickled. An earlier publisher reads
this as a file it cannot use (NumPy refuses it as pickled data: a ValueError) and builds its index
again; an index stored before format 3 (an .npz, a zip file) is `EarlierFormat` here, built again
without a warning.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FORMAT_VERSION = 3  # 3: titles weighted (related.TITLE_WEIGHT) and this container; another is built again
MAGIC = b"publisher related-reading index\n"
ZIP_MAGIC = b"PK\x03\x04"  # formats 1-2 were .npz files
ALIGN = 64
DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1"})  # what an index holds; anything else is refused
LENGTH = struct.Struct("<Q")


class EarlierFormat(ValueError):
    """An index stored by an earlier version of the ranker: built again once, as expected after an upgrade."""


@dataclass(frozen=True)
class Stored:
    """What a stored index holds: its counts and its arrays (read-only views into the stored bytes)."""

    fitted: int
    changed: int
    arrays: Mapping[str, NDArray[np.generic]]


def encode(fitted: int, changed: int, arrays: Mapping[str, NDArray[np.generic]]) -> bytes:
    """The stored form of an index (see the module docstring)."""
    parts: list[bytes] = []
    table: list[tuple[str, str, list[int], int]] = []
    offset = 0
    for name, array in arrays.items():
        dtype = array.dtype if array.dtype.byteorder == "|" else array.dtype.newbyteorder("<")
        data = np.ascontiguousarray(array, dtype=dtype).tobytes()
        pad = -offset % ALIGN
        parts += [b"\0" * pad, data]
        offset += pad
        table.append((name, dtype.str, list(array.shape), offset))
        offset += len(data)
    header = json.dumps({"version": FORMAT_VERSION, "fitted": fitted, "changed": changed, "arrays": table},
                        separators=(",", ":")).encode()
    start = len(MAGIC) + LENGTH.size + len(header)
    lead = b"\0" * (-start % ALIGN)
    return b"".join([MAGIC, LENGTH.pack(len(header) + len(lead)), header, lead, *parts])


def decode(data: bytes) -> Stored:
    """The counts and arrays of a stored index; EarlierFormat for an index of an earlier format, ValueError
    for anything else that is not an index of this one."""
    if data.startswith(ZIP_MAGIC):
        raise EarlierFormat("an .npz index (format 2 or earlier)")
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + LENGTH.size:
        raise ValueError("not a related-reading index")
    (length,) = LENGTH.unpack_from(data, len(MAGIC))
    body = len(MAGIC) + LENGTH.size + length
    try:
        header = json.loads(data[len(MAGIC) + LENGTH.size:body].rstrip(b"\0"))
        version, fitted, changed = int(header["version"]), int(header["fitted"]), int(header["changed"])
        table = [(str(name), str(dtype), [int(n) for n in shape], int(offset))
                 for name, dtype, shape, offset in header["arrays"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a related-reading index: its header cannot be read ({e})") from e
    if version < FORMAT_VERSION:
        raise EarlierFormat(f"format {version}, this ranker's is {FORMAT_VERSION}")
    if version != FORMAT_VERSION:
        raise ValueError(f"not a related-reading index of this version: format {version}, expected {FORMAT_VERSION}")
    buffer = memoryview(data)[body:]
    return Stored(fitted, changed, {name: _view(buffer, name, dtype, shape, offset)
                                    for name, dtype, shape, offset in table})


def pack(strings: Sequence[str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Strings -> (UTF-8 bytes, end offsets): storable as arrays."""
    encoded = [s.encode("utf-8") for s in strings]
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    ends = np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)))
    return blob, ends.astype(np.int64)


def unpack(blob: NDArray[np.generic], ends: NDArray[np.generic]) -> list[str]:
    data = blob.tobytes()
    starts = [0, *ends[:-1].tolist()] if ends.size else []
    return [data[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist(), strict=True)]


def _view(buffer: memoryview, name: str, dtype: str, shape: Sequence[int], offset: int) -> NDArray[np.generic]:
    if dtype not in DTYPES or any(n < 0 for n in shape) or offset < 0:
        raise ValueError(f"not a related-reading index: array {name!r} is {dtype} {list(shape)} at {offset}")
    count = int(np.prod(shape, dtype=np.int64))
    if offset + count * np.dtype(dtype).itemsize > len(buffer):
        raise ValueError(f"not a related-reading index: array {name!r} runs past the end")
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
