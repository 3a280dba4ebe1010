"""Named NumPy arrays as one blob for the state: NumPy's own .npy format, one array after another (the
first holds the names), read back as views of the blob rather than copies.

At 22,250 articles the related-reading index is 43 MB; an .npz (a zip) is read member by member, each
checked by CRC and copied, 25-50 ms a run; the views take under a millisecond. An .npz written by an
earlier version is still read (`np.load`). No pickle either way: every array has a plain dtype.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib import format as npy
from numpy.typing import NDArray

MAGIC = npy.MAGIC_PREFIX  # b"\x93NUMPY": how every .npy array starts (an .npz starts with a zip's "PK")


def pack(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """The arrays, their names first, as consecutive .npy arrays."""
    buffer = io.BytesIO()
    npy.write_array(buffer, np.array(list(arrays), dtype=np.str_), allow_pickle=False)
    for array in arrays.values():
        npy.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def unpack(data: bytes) -> dict[str, NDArray[Any]]:
    """`pack`'s arrays (read-only views of `data`), or an .npz's (copies). ValueError when `data` is
    neither (EOFError, KeyError and zipfile.BadZipFile from a damaged .npz are the caller's to catch)."""
    if not data.startswith(MAGIC):
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    stream = io.BytesIO(data)
    names = _next(stream, data)
    if names.dtype.kind != "U" or names.ndim != 1:
        raise ValueError("the first array does not name the others")
    arrays = {str(name): _next(stream, data) for name in names.tolist()}
    if stream.tell() != len(data):
        raise ValueError("bytes after the last array")
    return arrays


def _next(stream: io.BytesIO, data: bytes) -> NDArray[Any]:
    """The .npy array at the stream's position, as a view of `data`; the stream moves past it."""
    major, _ = npy.read_magic(stream)
    read_header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise ValueError("an array of Python objects")
    start, count = stream.tell(), math.prod(shape)
    if start + count * dtype.itemsize > len(data):
        raise ValueError("an array is cut short")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(shape, order="F" if fortran else "C")
    stream.seek(start + array.nbytes)
    return array
