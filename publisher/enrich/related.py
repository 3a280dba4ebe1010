"""Related reading: rank the archive's other articles by content similarity, deterministically.

Method (content only, no model download, no labels; NumPy and scipy.sparse, see `rank_text` and
`rank_job`):

1. Text = title (3 times: a field boost) + tags + body, as words (lower-cased, 2+ characters, English
   stop words removed).
   The model is fitted on the archive: a vocabulary of at most 20,000 words (on archives of 100+
   articles without words in only one article or in more than half of them), BM25 idf and mean length.
2. Every article gets a BM25-weighted word vector (k1 1.2, b 0.75, unit length) and its fold into an
   LSA space (truncated SVD of the BM25 rows of all articles, or of an evenly spaced sample, by key, of
   exactly FIT_SAMPLE of them on larger archives; randomised with a fixed seed, exact on small
   archives; unit length): 100 dimensions from 500 articles on, one per 5 articles on 101-499, every
   dimension on 100 or fewer (see `rank_text.basis`). An article's vectors depend only on its text
   and the model.
3. Candidates, found in row chunks so that no n x n matrix is ever held: the 32 nearest other
   articles by LSA cosine (float32, plus exact ties) and the 32 with the largest BM25 dot product over
   the article's 16 heaviest words.
4. The candidates are scored in float64, pair by pair (a list does not depend on the chunking), by a
   hybrid: 0.8 x the BM25 cosine (the words both use) + 0.2 x the LSA cosine (the topic, in other
   words), plus pseudo-relevance feedback: 0.5 x the LSA cosine with the hybrid-weighted centroid of
   the article's sqrt(m) / 3 best candidates (clamped to 3..20, where m is the number of articles it
   may link to; a neighbour's own share of the centroid is left out of its score); the sum is divided
   by 1.5 so that scores stay at most about 1. Lexical scores keep forum
   posts on their fine topic; latent scores and the feedback find news articles on the same story in
   other words; neither alone generalises across both kinds (see bench/bench_related.py).
5. Shared tags add 0.1 x the cosine of the two (case-folded) tag sets; such links say "shared tags".
6. Scores are rounded to 4 decimals, non-positive scores are dropped, and ties are broken by
   published (newest first), then key (ascending).

`rank_all` fits a model on the given archive and ranks every article. `RelatedIndex` keeps the fitted
model and the article vectors so that new articles can be ranked without refitting (`rank_new`); it
round-trips through `to_bytes`/`from_bytes` (NumPy arrays, no pickle: `index_format`). The vocabulary, idf, mean length
and LSA basis stay as fitted at `build` time: `rank_new` gives exactly what a full `rank` of the grown
index gives for the new articles, but can differ slightly from `rank_all` over the old and new articles,
which refits. Rebuild when `stale` says the archive has grown well past what the model was fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from publisher.enrich import MODEL_VERSION, heap, index_format, rank_job, rank_text
from publisher.enrich.rank_job import Job, Reason

Step = Callable[[int], None]  # told how many more steps (articles) are done

TITLE_WEIGHT = 3  # a title's words count this many times (MODEL_VERSION 3): 20NG p@5 0.810 -> 0.840, BBC the same
FIT_SAMPLE = 20_000  # larger archives fit the LSA basis on an evenly spaced sample of exactly this many articles
FOLD_CHUNK = 500  # articles folded into the fitted model at a time
CHUNK_ELEMENTS = 1 << 20  # rows are ranked in chunks of about this many similarities (and 1/2 of it candidates x dims)
STALE_SHARE = 0.1  # `stale` once more than this share of the fitted archive was added or changed
ARRAYS = {  # what `to_bytes` stores: name -> (dtype, dimensions)
    "terms": ("|u1", 1), "term_ends": ("<i8", 1), "idf": ("<f8", 1), "avgdl": ("<f8", 1), "basis": ("<f4", 2),
    "keys": ("|u1", 1), "key_ends": ("<i8", 1), "published": ("<f8", 1), "vectors": ("<f4", 2),
    "lex_data": ("<f4", 1), "lex_indices": ("<i4", 1), "lex_indptr": ("<i8", 1), "tags": ("|u1", 1),
    "tag_ends": ("<i8", 1), "tag_counts": ("<i8", 1)}

T = TypeVar("T")
Floats = NDArray[np.float64]
Floats32 = NDArray[np.float32]
Ints = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RankDoc:
    """One article as the ranker sees it."""

    key: str  # the article slug
    title: str
    text: str  # plain text body
    tags: tuple[str, ...]
    published: float  # POSIX timestamp


@dataclass(frozen=True, slots=True)
class Related:
    """One related article: its key, a rounded score, and why it was chosen."""

    key: str
    score: float  # rounded to 4 decimals
    reason: Reason


def rank_all(docs: Sequence[RankDoc], count: int, include_newer: bool) -> dict[str, list[Related]]:
    """For every doc, up to `count` other docs, best first (see the module docstring for the rules).

    With include_newer False a doc only links to docs with `published` <= its own.
    """
    return RelatedIndex.build(docs).rank(None, count, include_newer)


def _norm_tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({" ".join(t.split()).casefold() for t in tags} - {""}))


def _text(doc: RankDoc) -> str:
    """The words ranked: the title TITLE_WEIGHT times (a field boost, as BM25F gives one), tags, body."""
    return "\n".join((*[doc.title] * TITLE_WEIGHT, " ".join(doc.tags), doc.text))



@dataclass(frozen=True)
class _Model:
    """What `build` fits: vocabulary, BM25 idf and mean length, LSA basis (dims x len(terms))."""

    terms: list[str]
    idf: Floats
    avgdl: float
    basis: Floats32

    def embed(self, texts: Sequence[str], vocabulary: dict[str, int]) -> tuple[sp.csr_matrix, Floats32]:
        """BM25 rows (float32) and LSA vectors of some texts, each row from its own text only."""
        if not self.terms:
            return sp.csr_matrix((len(texts), 0), dtype=np.float32), np.zeros((len(texts), self.basis.shape[0]),
                                                                             dtype=np.float32)
        weighted = rank_text.bm25(rank_text.count(texts, vocabulary), self.idf, self.avgdl)
        return sp.csr_matrix(weighted, dtype=np.float32), rank_text.project(weighted, self.basis)


def _bm25_rows(counts: sp.csr_matrix, idf: Floats, avgdl: float) -> sp.csr_matrix:
    """BM25 rows in float32 over the sparsity pattern of `counts` (canonical; its index arrays are shared),
    weighted a chunk at a time into one array (no chunk list to stack: half the memory at the peak)."""
    n, data = counts.shape[0], np.empty(counts.nnz, dtype=np.float32)
    for i in range(0, n, FOLD_CHUNK):
        data[counts.indptr[i]:counts.indptr[min(i + FOLD_CHUNK, n)]] = _bm25_chunk(counts, i, idf, avgdl).data
    return sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)


def _bm25_chunk(counts: sp.csr_matrix, start: int, idf: Floats, avgdl: float) -> sp.csr_matrix:
    """The float64 BM25 rows of counts[start:start + FOLD_CHUNK], entries in the order of `counts`."""
    weighted = rank_text.bm25(counts[start:start + FOLD_CHUNK], idf, avgdl)
    if weighted.nnz != counts.indptr[min(start + FOLD_CHUNK, counts.shape[0])] - counts.indptr[start]:
        raise ValueError("BM25 rows must keep the pattern of the counts")
    return weighted


def _sample(ordered: Sequence[T]) -> Sequence[T]:
    """Exactly FIT_SAMPLE docs, evenly spaced over `ordered` (all of them when there are not more)."""
    n = len(ordered)
    if n <= FIT_SAMPLE:
        return ordered
    return [ordered[i] for i in ((np.arange(FIT_SAMPLE, dtype=np.int64) * n) // FIT_SAMPLE).tolist()]


class RelatedIndex:
    """A fitted model plus two vectors per article; rank new articles without refitting.

    Build with `RelatedIndex.build(docs)`, store with `to_bytes()`, restore with `from_bytes()`.
    `rank_new(docs, ...)` adds (or replaces, by key) articles and ranks only those.
    """

    def __init__(self, *, model: _Model, keys: list[str], published: Floats, tags: list[tuple[str, ...]],
                 vectors: Floats32, lexical: sp.csr_matrix, fitted: int, changed: int) -> None:
        self._model = model
        self._keys = keys
        self._published = published
        self._tags = tags
        self._vectors = vectors  # (n, dims) LSA, rows of unit length (or zero)
        self._lexical = lexical  # (n, len(terms)) BM25, float32, rows of unit length (or zero)
        self._row = {k: i for i, k in enumerate(keys)}
        self._fitted = fitted
        self._changed = changed
        self._vocabulary: dict[str, int] | None = None

    # --- building and folding in -------------------------------------------------------------

    @staticmethod
    def build_steps(n: int) -> int:
        """The progress steps `build` reports for n docs: n for the model, n for the vectors."""
        return 2 * n

    @classmethod
    def build(cls, docs: Iterable[RankDoc], progress: Step | None = None) -> RelatedIndex:
        """Fit the model on `docs` and index them all (input order does not matter): vocabulary, idf and
        mean length on every doc, the LSA basis on an evenly spaced sample of them (by key; see
        FIT_SAMPLE). The vectors are made a chunk at a time, exactly as `add` makes them. The texts are
        let go once counted: pass an iterator (not a list) so that nothing else holds them.
        `progress` is told of `build_steps(len(docs))` steps in all."""
        step = progress or _no_step
        ordered = sorted(_checked(docs), key=lambda d: d.key)
        n, keys, tags = len(ordered), [d.key for d in ordered], [_norm_tags(d.tags) for d in ordered]
        published = np.array([d.published for d in ordered], dtype=np.float64)
        terms, idf, counts = rank_text.fit_vocabulary(_text(d) for d in ordered)
        del ordered  # the texts (when `docs` was an iterator, nothing else holds them): memory for the SVD
        heap.trim()
        avgdl = rank_text.mean_length(counts)
        step(n)
        picked = np.array(_sample(range(n)), dtype=np.int64)
        model = _Model(terms, idf, avgdl, rank_text.basis(_bm25_rows(counts[picked], idf, avgdl)))
        dims, vectors, data = model.basis.shape[0], [], np.empty(counts.nnz, dtype=np.float32)
        for i in range(0, n, FOLD_CHUNK):
            weighted = _bm25_chunk(counts, i, idf, avgdl)
            data[counts.indptr[i]:counts.indptr[min(i + FOLD_CHUNK, n)]] = weighted.data
            vectors.append(rank_text.project(weighted, model.basis) if terms else
                           np.zeros((weighted.shape[0], dims), dtype=np.float32))
            step(weighted.shape[0])
        lexical = sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)  # as `_bm25_rows`
        del counts
        heap.trim()
        return cls(model=model, keys=keys, published=published, tags=tags,
                   vectors=np.concatenate(vectors) if vectors else np.zeros((0, dims), dtype=np.float32),
                   lexical=lexical, fitted=n, changed=0)

    def _words(self) -> dict[str, int]:
        if self._vocabulary is None:
            self._vocabulary = {t: j for j, t in enumerate(self._model.terms)}
        return self._vocabulary

    def _append(self, docs: Sequence[RankDoc], lexical: sp.csr_matrix, vectors: Floats32) -> None:
        for doc in docs:
            self._row[doc.key] = len(self._keys)
            self._keys.append(doc.key)
            self._tags.append(_norm_tags(doc.tags))
        self._published = np.concatenate([self._published, [d.published for d in docs]]).astype(np.float64)
        self._vectors = np.concatenate([self._vectors, vectors])
        self._lexical = rank_text.stacked(self._lexical, lexical)

    def add(self, docs: Sequence[RankDoc]) -> None:
        """Fold `docs` in with the fitted model; a doc whose key is already indexed replaces it."""
        docs = _checked(docs)
        if not docs:
            return
        lexical, vectors = self._model.embed([_text(d) for d in docs], self._words())
        n = len(self._keys)
        fresh = [i for i, d in enumerate(docs) if d.key not in self._row]
        replaced = [(self._row[d.key], i) for i, d in enumerate(docs) if d.key in self._row]
        if replaced:
            self._vectors = index_format.writable(self._vectors)
            self._published = index_format.writable(self._published)
            source = np.arange(n, dtype=np.int64)
            for row, i in replaced:
                source[row] = n + i
                self._vectors[row] = vectors[i]
                self._published[row] = docs[i].published
                self._tags[row] = _norm_tags(docs[i].tags)
            self._lexical = sp.csr_matrix(rank_text.stacked(self._lexical, lexical)[source])
        if fresh:
            self._append([docs[i] for i in fresh], lexical[fresh], vectors[fresh])
        self._changed += len(docs)

    def remove(self, keys: Iterable[str]) -> None:
        """Forget articles (unknown keys are ignored); they are no longer linked to."""
        drop = {self._row[k] for k in keys if k in self._row}
        if not drop:
            return
        keep = np.array([i for i in range(len(self._keys)) if i not in drop], dtype=np.int64)
        self._keys = [self._keys[i] for i in keep.tolist()]
        self._tags = [self._tags[i] for i in keep.tolist()]
        self._published = self._published[keep]
        self._vectors = self._vectors[keep]
        self._lexical = sp.csr_matrix(self._lexical[keep])
        self._row = {k: i for i, k in enumerate(self._keys)}
        self._changed += len(drop)

    def rank_new(self, docs: Sequence[RankDoc], count: int, include_newer: bool) -> dict[str, list[Related]]:
        """Add `docs` (see `add`) and rank only them against the whole index, new docs included.

        The lists of already indexed articles are not recomputed. With include_newer False they stay
        exactly what a full `rank` would give as long as the new docs are strictly newer than the indexed
        ones (a doc may link to one with the same published time). With include_newer True, old lists
        do not see the new docs until they are ranked again.
        """
        self.add(docs)
        return self.rank([d.key for d in docs], count, include_newer)

    # --- ranking -------------------------------------------------------------------------------

    def rank(self, keys: Iterable[str] | None, count: int, include_newer: bool,
             progress: Step | None = None) -> dict[str, list[Related]]:
        """Rank the given indexed keys (all when None) against every indexed article; `progress` is told
        of one step per key (as each chunk of them is ranked)."""
        step = progress or _no_step
        done = [0]

        def counted(k: int) -> None:
            done[0] += k
            step(k)

        result = self._rank(keys, count, include_newer, counted)
        if len(result) > done[0]:  # keys left out of ranking (no word known, nothing to compare)
            step(len(result) - done[0])
        return result

    def _rank(self, keys: Iterable[str] | None, count: int, include_newer: bool,
              step: Step) -> dict[str, list[Related]]:
        if count < 0:
            raise ValueError("count must be >= 0")
        n = len(self._keys)
        if keys is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            wanted = list(dict.fromkeys(keys))
            missing = [k for k in wanted if k not in self._row]
            if missing:
                raise KeyError(f"not indexed: {', '.join(missing[:5])}")
            rows = np.array([self._row[k] for k in wanted], dtype=np.int64)
        result: dict[str, list[Related]] = {self._keys[r]: [] for r in rows.tolist()}
        if n < 2 or count == 0 or rows.size == 0:
            return result
        z = self._vectors
        pub = self._published
        # columns: the docs with a vector (no known word: nothing to compare); by published when only
        # older docs count, so that a chunk of rows (taken in the same order) needs only a prefix of them
        cols = np.flatnonzero(np.einsum("ij,ij->i", z, z, dtype=np.float64) > 0)
        rows = rows[np.isin(rows, cols)]
        if not include_newer:
            cols = cols[np.argsort(pub[cols], kind="stable")]
            rows = rows[np.lexsort((rows, pub[rows]))]
        if cols.size < 2:
            return result
        col_of_row = np.full(n, -1, dtype=np.int64)
        col_of_row[cols] = np.arange(cols.size)
        key_rank = np.empty(n, dtype=np.int64)
        key_rank[np.argsort(np.array(self._keys), kind="stable")] = np.arange(n)
        lexical = self._lexical
        dims = max(1, self._vectors.shape[1])
        chunk = max(1, min(CHUNK_ELEMENTS // cols.size, CHUNK_ELEMENTS // (2 * dims * max(rank_job.CANDIDATES, count))))
        transposed = sp.csr_matrix(lexical.T) if rows.size > chunk else None  # one chunk: not worth it
        job = Job(z, lexical, pub, key_rank, cols, np.ascontiguousarray(self._vectors[cols]),
                  transposed, pub[cols], col_of_row, self._tag_matrix(), count, include_newer)
        for start in range(0, rows.size, chunk):
            part = rows[start:start + chunk]
            for row, links in job.run(part):
                result[self._keys[row]] = [Related(self._keys[j], s, reason) for j, s, reason in links]
            step(int(part.size))
        return result

    def _tag_matrix(self) -> sp.csr_matrix | None:
        """Rows of unit length over the tag vocabulary, or None when no article has tags."""
        names = sorted({t for tags in self._tags for t in tags})
        if not names:
            return None
        col = {t: j for j, t in enumerate(names)}
        indptr = np.cumsum([0, *(len(t) for t in self._tags)])
        indices = np.array([col[t] for tags in self._tags for t in tags], dtype=np.int64)
        data = np.concatenate([np.full(len(t), 1.0 / math.sqrt(len(t))) for t in self._tags if t])
        return sp.csr_matrix((data, indices, indptr), shape=(len(self._tags), len(names)))

    # --- facts and storage ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def stale(self) -> bool:
        """True once more than 10% of the fitted archive was added, replaced or removed since `build`."""
        return self._changed > STALE_SHARE * max(self._fitted, 1)

    def to_bytes(self) -> bytes:
        """The index as stored in the state (`index_format`: arrays only, no pickle; the ARRAYS)."""
        model, lexical = self._model, self._lexical
        terms, term_ends = index_format.pack(model.terms)
        keys, key_ends = index_format.pack(self._keys)
        tags, tag_ends = index_format.pack([t for tags in self._tags for t in tags])
        return index_format.encode(MODEL_VERSION, self._fitted, self._changed, {
            "terms": terms, "term_ends": term_ends, "idf": model.idf, "avgdl": np.array([model.avgdl]),
            "basis": model.basis, "keys": keys, "key_ends": key_ends, "published": self._published,
            "vectors": self._vectors, "lex_data": lexical.data.astype(np.float32),
            "lex_indices": lexical.indices.astype(np.int32), "lex_indptr": lexical.indptr.astype(np.int64),
            "tags": tags, "tag_ends": tag_ends,
            "tag_counts": np.array([len(t) for t in self._tags], dtype=np.int64)})

    @classmethod
    def from_bytes(cls, data: bytes) -> RelatedIndex:
        """Restore `to_bytes()` output; index_format.EarlierFormat for an index of an earlier model, else
        ValueError when it is not an index of this one. The article arrays stay read-only views of `data`
        until changed (`add` and `remove` make new ones; nothing may change them in place, and SciPy's
        in-place clean-ups such as `eliminate_zeros` would fail on them); the model's are copied."""
        arrays = (stored := index_format.decode(data, MODEL_VERSION, ARRAYS)).arrays
        try:
            flat = iter(index_format.unpack(arrays["tags"], arrays["tag_ends"]))
            tags = [tuple(next(flat) for _ in range(k)) for k in arrays["tag_counts"].tolist()]
            terms = index_format.unpack(arrays["terms"], arrays["term_ends"])
            model = _Model(terms, arrays["idf"].copy(), float(arrays["avgdl"][0]), arrays["basis"].copy())
            keys = index_format.unpack(arrays["keys"], arrays["key_ends"])
            lexical = sp.csr_matrix((arrays["lex_data"], arrays["lex_indices"], arrays["lex_indptr"]),
                                    shape=(len(keys), len(terms)))
            index = cls(model=model, keys=keys, published=arrays["published"], tags=tags, vectors=arrays["vectors"],
                        lexical=lexical, fitted=stored.fitted, changed=stored.changed)
        except (ValueError, IndexError, StopIteration) as e:  # every array is there: decode checked them
            raise ValueError(f"not a related-reading index: {e}") from e
        n, (dims, width) = len(index._keys), model.basis.shape
        if (index._vectors.shape != (n, dims) or index._published.shape != (n,) or len(index._tags) != n
                or model.idf.shape != (width,) or len(model.terms) != width or len(index._row) != n):
            raise ValueError("not a related-reading index: inconsistent shapes")
        return index


def _checked(docs: Iterable[RankDoc]) -> list[RankDoc]:
    docs = list(docs)
    seen: set[str] = set()
    for d in docs:
        if d.key in seen:
            raise ValueError(f"duplicate key: {d.key!r}")
        if not math.isfinite(d.published):
            raise ValueError(f"published of {d.key!r} is not a finite timestamp")
        seen.add(d.key)
    return docs


def _no_step(_done: int) -> None:
    return None
