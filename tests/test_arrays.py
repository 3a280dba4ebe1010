"""publisher.enrich.arrays: named arrays as consecutive .npy arrays, read back as views; an .npz of an
earlier version still read; damaged data refused with ValueError."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from publisher.enrich import arrays
from publisher.enrich.related import RankDoc, RelatedIndex


def sample() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"version": np.array([2, 7, 0], dtype=np.int64), "vectors": rng.standard_normal((4, 3)).astype(np.float32),
            "fortran": np.asfortranarray(rng.standard_normal((3, 5))), "empty": np.zeros((0, 3), dtype=np.float32),
            "bytes": np.frombuffer("größe".encode(), dtype=np.uint8), "none": np.array([], dtype=np.int64)}


def test_packed_arrays_come_back_equal_in_order_and_as_views_of_the_blob() -> None:
    named = sample()
    data = arrays.pack(named)
    back = arrays.unpack(data)
    assert list(back) == list(named)
    for name, array in named.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        assert np.array_equal(back[name], array)
    assert not back["vectors"].flags.writeable and back["vectors"].base is not None  # no copy was made


def test_an_npz_of_an_earlier_version_is_still_read() -> None:
    named = sample()
    buffer = io.BytesIO()
    loose: dict[str, Any] = named  # savez takes any keyword (mypy sees its allow_pickle: bool)
    np.savez(buffer, **loose)
    back = arrays.unpack(buffer.getvalue())
    assert set(back) == set(named) and all(np.array_equal(back[n], a) for n, a in named.items())


def test_an_index_stored_as_npz_before_this_format_gives_the_same_index() -> None:
    docs = [RankDoc(f"k{i}", f"Title {i}", f"words about topic {i % 3} and more {i}", (), float(i)) for i in range(12)]
    index = RelatedIndex.build(docs)
    buffer = io.BytesIO()
    loose: dict[str, Any] = arrays.unpack(index.to_bytes())
    np.savez(buffer, **loose)
    restored = RelatedIndex.from_bytes(buffer.getvalue())
    assert restored.to_bytes() == index.to_bytes()
    assert restored.rank(None, 3, include_newer=False) == index.rank(None, 3, include_newer=False)


@pytest.mark.parametrize("cut", [1, 10, 200, -1])
def test_damaged_data_is_refused(cut: int) -> None:
    data = arrays.pack(sample())
    with pytest.raises(ValueError):
        arrays.unpack(data[:cut])
    with pytest.raises(ValueError):
        arrays.unpack(data + b"\0")  # bytes after the last array


def test_object_arrays_are_refused() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array(["names"], dtype=np.str_))
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        arrays.unpack(buffer.getvalue())
