"""publisher.enrich.index_format: the stored related-reading index, read back as read-only views of the
stored bytes; every damaged or foreign blob is a ValueError (an earlier model's or an .npz: EarlierFormat),
never another exception."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from publisher.enrich import index_format
from publisher.enrich.index_format import MAGIC, EarlierFormat, decode, encode

ARRAYS: dict[str, NDArray[Any]] = {
    "f4": np.arange(6, dtype=np.float32).reshape(2, 3), "f8": np.array([1.5, -2.0]),
    "i4": np.array([7], dtype=np.int32), "i8": np.arange(5, dtype=np.int64), "u1": np.frombuffer(b"ab", np.uint8),
    "empty": np.zeros((0, 4), dtype=np.float32)}
SPEC = {name: (array.dtype.str, array.ndim) for name, array in ARRAYS.items()}
MODEL = 7


def _header_of(blob: bytes) -> tuple[dict[str, Any], int, int]:
    (length,) = index_format.LENGTH.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + index_format.LENGTH.size
    header: dict[str, Any] = json.loads(blob[start:start + length].rstrip(b"\0"))
    return header, start, length


def _with_header(blob: bytes, change: dict[str, object] | None = None, raw: bytes | None = None) -> bytes:
    """The blob with its JSON header changed, or replaced by `raw` (the arrays after it as they were)."""
    header, start, length = _header_of(blob)
    text = raw if raw is not None else json.dumps({**header, **(change or {})}, separators=(",", ":")).encode()
    lead = b"\0" * (-(start + len(text)) % index_format.ALIGN)
    return MAGIC + index_format.LENGTH.pack(len(text) + len(lead)) + text + lead + blob[start + length:]


def _with_array(blob: bytes, name: str, **entry: object) -> bytes:
    """The blob with one array's header entry changed (dtype, shape or offset)."""
    header, _, _ = _header_of(blob)
    arrays = [[n, entry.get("dtype", d), entry.get("shape", s), entry.get("offset", o)] if n == name else [n, d, s, o]
              for n, d, s, o in header["arrays"]]
    return _with_header(blob, {"arrays": arrays})


def test_arrays_come_back_equal_aligned_and_read_only() -> None:
    stored = decode(encode(MODEL, 12, 3, ARRAYS), MODEL, SPEC)
    assert (stored.fitted, stored.changed) == (12, 3)
    assert sorted(stored.arrays) == sorted(ARRAYS)
    for name, array in ARRAYS.items():
        back = stored.arrays[name]
        assert back.dtype == array.dtype and back.shape == array.shape and np.array_equal(back, array), name
        assert back.flags.aligned and not back.flags.writeable, name  # views of the stored bytes, not copies


def test_an_array_of_another_kind_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match="an index holds only"):
        encode(MODEL, 1, 0, {"objects": np.array(["a", "b"])})


def test_an_earlier_npz_index_or_model_is_an_earlier_format() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, version=np.array([2, 1, 0], dtype=np.int64))
    blob = encode(MODEL, 1, 0, ARRAYS)
    for earlier in (buffer.getvalue(), _with_header(blob, {"model": MODEL - 1})):
        with pytest.raises(EarlierFormat):
            decode(earlier, MODEL, SPEC)


@pytest.mark.parametrize("change", [
    {"model": MODEL + 1}, {"container": 2}, {"fitted": "many"}, {"fitted": True}, {"changed": -1}, {"arrays": "none"},
    {"arrays": [["f4", "<f4", [2, 3]]]}, {"arrays": [[1, "<f4", [2, 3], 0]]}], ids=str)
def test_a_header_that_is_not_this_one_is_a_value_error(change: dict[str, object]) -> None:
    with pytest.raises(ValueError) as caught:
        decode(_with_header(encode(MODEL, 1, 0, ARRAYS), change), MODEL, SPEC)
    assert not isinstance(caught.value, EarlierFormat)


@pytest.mark.parametrize("raw", [b'{"container":1,"model":7,"fitted":Infinity,"changed":0,"arrays":[]}',
                                 b'{"container":1,"model":7,"fitted":1e400,"changed":0,"arrays":[]}',
                                 b"[" * 100_000, b"\xff\xfe", b"[]", b"null"], ids=["infinity", "1e400", "deep", "utf8",
                                                                             "list", "null"])
def test_a_header_that_cannot_be_read_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        decode(_with_header(encode(MODEL, 1, 0, ARRAYS), raw=raw), MODEL, SPEC)
    assert not isinstance(caught.value, EarlierFormat)


@pytest.mark.parametrize(("name", "entry"), [
    ("f4", {"dtype": "|O"}), ("f4", {"dtype": "<f8"}), ("f4", {"shape": [6]}), ("i8", {"shape": [10 ** 23]}),
    ("i8", {"shape": [-1]}), ("f8", {"offset": 10 ** 9}), ("u1", {"offset": -3})], ids=str)
def test_an_array_entry_that_does_not_fit_is_a_value_error(name: str, entry: dict[str, object]) -> None:
    with pytest.raises(ValueError) as caught:
        decode(_with_array(encode(MODEL, 1, 0, ARRAYS), name, **entry), MODEL, SPEC)
    assert not isinstance(caught.value, EarlierFormat)


@pytest.mark.parametrize("data", [b"", b"junk", MAGIC, MAGIC + b"\1\2"], ids=["empty", "junk", "magic", "short"])
def test_junk_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data, MODEL, SPEC)


def test_a_cut_blob_or_a_missing_or_extra_array_is_a_value_error() -> None:
    blob = encode(MODEL, 1, 0, ARRAYS)
    for data, spec in ((blob[:-8], SPEC), (blob, {**SPEC, "more": ("<f4", 1)}), (blob, dict(list(SPEC.items())[1:]))):
        with pytest.raises(ValueError):
            decode(data, MODEL, spec)


def test_strings_out_of_order_are_a_value_error() -> None:
    blob, ends = index_format.pack(["ab", "c"])
    assert index_format.unpack(blob, ends) == ["ab", "c"]
    for bad in (np.array([3, 2]), np.array([2, 9]), np.array([-1, 3])):
        with pytest.raises(ValueError):
            index_format.unpack(blob, bad)


def test_an_earlier_publisher_refuses_the_new_blob_with_a_value_error_and_builds_its_index_again() -> None:
    """Models 1-2 were read with np.load(allow_pickle=False): that must fail the way they catch."""
    with pytest.raises(ValueError):
        np.load(io.BytesIO(encode(MODEL, 1, 0, ARRAYS)), allow_pickle=False)
