"""publisher.enrich.index_format: the stored related-reading index, read back as writable views; every damaged
or foreign blob is a ValueError (an earlier format's: EarlierFormat), never another exception."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from publisher.enrich import index_format
from publisher.enrich.index_format import MAGIC, EarlierFormat, decode, encode

ARRAYS = {"f4": np.arange(6, dtype=np.float32).reshape(2, 3), "f8": np.array([1.5, -2.0]),
          "i4": np.array([7], dtype=np.int32), "i8": np.arange(5, dtype=np.int64), "u1": np.frombuffer(b"ab", np.uint8),
          "empty": np.zeros((0, 4), dtype=np.float32)}


def _with_header(blob: bytes, change: dict[str, object]) -> bytes:
    """The blob with its JSON header changed (same length field: the header is padded with spaces)."""
    (length,) = index_format.LENGTH.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + index_format.LENGTH.size
    header = json.loads(blob[start:start + length].rstrip(b"\0"))
    header.update(change)
    text = json.dumps(header).encode()
    assert len(text) <= length
    return blob[:start] + text + b" " * (length - len(text)) + blob[start + length:]


def test_arrays_come_back_equal_aligned_and_read_only() -> None:
    stored = decode(encode(12, 3, ARRAYS))
    assert (stored.fitted, stored.changed) == (12, 3)
    assert list(stored.arrays) == list(ARRAYS)
    for name, array in ARRAYS.items():
        back = stored.arrays[name]
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array), name
        assert back.flags.aligned and not back.flags.writeable, name  # views of the stored bytes, not copies


def test_an_earlier_npz_index_is_an_earlier_format_and_junk_is_a_value_error() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, version=np.array([2, 1, 0], dtype=np.int64))
    with pytest.raises(EarlierFormat):
        decode(buffer.getvalue())
    blob = encode(1, 0, ARRAYS)
    with pytest.raises(EarlierFormat):
        decode(_with_header(blob, {"version": index_format.FORMAT_VERSION - 1}))
    damaged = [b"", b"junk", MAGIC, blob[:len(MAGIC) + 4], blob[:-8],
               _with_header(blob, {"version": index_format.FORMAT_VERSION + 1}),
               _with_header(blob, {"arrays": [["f4", "|O", [2], 0]]}),
               _with_header(blob, {"arrays": [["f4", "<f4", [10 ** 9], 0]]}),
               _with_header(blob, {"arrays": [["f4", "<f4", [-1], 0]]}),
               _with_header(blob, {"arrays": "none"}), _with_header(blob, {"fitted": "many"})]
    for data in damaged:
        with pytest.raises(ValueError) as caught:
            decode(data)
        assert not isinstance(caught.value, EarlierFormat), data[:60]


def test_an_earlier_publisher_refuses_the_new_blob_with_a_value_error_and_builds_its_index_again() -> None:
    """Formats 1-2 were read with np.load(allow_pickle=False): that must fail the way it catches."""
    with pytest.raises(ValueError):
        np.load(io.BytesIO(encode(1, 0, ARRAYS)), allow_pickle=False)
