"""One ranking pass of the related-reading index, chunk by chunk (see `related` for the rules).

Per article, candidates come from two cheap first passes over the columns it may link to: the nearest
by float32 LSA cosine, and the nearest by the BM25 dot product over its PRUNED_TERMS heaviest words
(exact ties kept, at most twice as many). Each candidate is then scored in float64, pair by pair (so a
list does not depend on how the rows were chunked):

    hybrid = (1 - LSA_WEIGHT) x lexical + LSA_WEIGHT x latent
    score  = (hybrid + PRF_WEIGHT x latent') / (1 + PRF_WEIGHT)

lexical = cosine of the BM25 rows, latent = cosine of the LSA vectors; latent' is the LSA cosine with
the hybrid-weighted centroid of the article's nearest candidates by hybrid score (pseudo-relevance
feedback, Rocchio-style; a neighbour's own share of the centroid is left out of its score, so being a
neighbour is no bonus by itself). The divisor keeps scores at most about 1. (The same feedback on the
BM25 rows was measured too: no better on either corpus, and it doubles the lexical work.)
Shared tags then add TAG_WEIGHT x their cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

from publisher.enrich import rank_top

Reason = Literal["similarity", "shared tags"]
Floats = NDArray[np.float64]
Floats32 = NDArray[np.float32]
Ints = NDArray[np.int64]
Links = list[tuple[int, list[tuple[int, float, Reason]]]]

CANDIDATES = 32  # neighbours per first pass (LSA and lexical) re-scored per article
PRUNED_TERMS = 16  # the lexical first pass looks only at an article's heaviest words
PRF_MIN, PRF_MAX = 3, 20  # neighbours in the feedback centroid: sqrt(eligible docs) / 3, clamped
LSA_WEIGHT = 0.2  # share of the latent score in the hybrid; the rest is the lexical (BM25 cosine) score
PRF_WEIGHT = 0.5  # weight of the latent score against the feedback centroid
TAG_WEIGHT = 0.1
DECIMALS = 4


def dense_rows(lexical: sp.csr_matrix, rows: Ints) -> Floats:
    """The BM25 rows of `rows` as a dense float64 (c x terms) matrix (only those rows are converted)."""
    picked = lexical[rows]
    out = np.zeros(picked.shape, dtype=np.float64)
    row_of = np.repeat(np.arange(rows.size), np.diff(picked.indptr))
    out[row_of, picked.indices] = picked.data
    return out


def pair_dots(lexical: sp.csr_matrix, dense: Floats, cand: Ints) -> Floats:
    """Dot products of dense row i (c x terms) with the BM25 rows of each column in cand[i] (c x w)."""
    c, w = cand.shape
    other = lexical[cand.ravel()]
    lengths = np.diff(other.indptr)
    at = np.repeat(np.repeat(np.arange(c, dtype=np.int64) * dense.shape[1], w), lengths) + other.indices
    products = dense.ravel()[at] * other.data  # float64 x float32: exact float64 products
    pair = np.repeat(np.arange(c * w), lengths)
    sums: Floats = np.bincount(pair, weights=products, minlength=c * w).astype(np.float64)
    return sums.reshape(c, w)


def _pruned(rows: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's `keep` heaviest entries (ties by column)."""
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    order = np.lexsort((rows.indices, -rows.data, row_of))
    rank = np.arange(order.size) - rows.indptr[row_of[order]]
    kept = order[rank < keep]
    kept.sort()
    return sp.csr_matrix((rows.data[kept], (row_of[kept], rows.indices[kept])), shape=rows.shape)


def _union(a: Ints, b: Ints) -> Ints:
    """Per row, the columns in a or b (c x wa, c x wb, -1 padded), each once, -1 padded."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    both[:, 1:][both[:, 1:] == both[:, :-1]] = -1
    return both


@dataclass(frozen=True)
class Job:
    """One ranking pass over the index, run chunk by chunk."""

    z: Floats32  # LSA unit vectors (or zero), by row (scored in float64)
    lexical: sp.csr_matrix  # BM25 unit rows (float32), by row
    published: Floats  # by row
    key_rank: Ints  # position of each row's key in key order
    cols: Ints  # the rows that can be linked to (those with a vector), in column order
    col_vectors: Floats32  # their LSA vectors in float32, for the fast first pass
    lexical_t: sp.csr_matrix | None  # the BM25 rows transposed (terms x rows), for the lexical first pass of
    # many chunks (None for one chunk: `lexical` times the query instead, the same sums in the same order)
    col_published: Floats  # their published times (ascending when include_newer is False)
    col_of_row: Ints  # column of each row, -1 for none
    tags: sp.csr_matrix | None
    count: int
    include_newer: bool

    def feedback(self, rows: Ints) -> Ints:
        """How many neighbours feed each row's centroid: grows with the docs it may link to."""
        if self.include_newer:
            eligible = np.full(rows.size, self.cols.size - 1, dtype=np.int64)
        else:
            eligible = np.searchsorted(self.col_published, self.published[rows], side="right") - 1
        size = np.rint(np.sqrt(np.maximum(eligible, 0)) / 3).astype(np.int64)
        return np.clip(size, PRF_MIN, PRF_MAX)

    def candidates(self, rows: Ints) -> Ints:
        """(c, w) columns worth scoring per row, -1 padded: the union of the two first passes. Rows come in
        published order when newer docs are excluded, so only a prefix of the columns is needed."""
        limit = self.cols.size
        if not self.include_newer:
            limit = int(np.searchsorted(self.col_published, self.published[rows].max(), side="right"))
        latent = self.col_vectors[self.col_of_row[rows]] @ self.col_vectors[:limit].T
        first = self.nearest(latent, rows, limit)
        del latent
        query = _pruned(self.lexical[rows], PRUNED_TERMS)
        sims = query @ self.lexical_t if self.lexical_t is not None else (self.lexical @ query.T).T
        return _union(first, self.nearest_sparse(sims, rows, limit))

    def nearest_sparse(self, sims: sp.spmatrix, rows: Ints, limit: int) -> Ints:
        """The best `width` columns per row (ties by row number) among the positive entries of `sims`
        (c x rows), -1 padded; self, rows that are no column or past `limit`, and (optionally) newer docs
        excluded."""
        c = rows.size
        width = min(self.cols.size - 1, max(CANDIDATES, self.count))
        dense = np.asarray(sims.toarray(), dtype=np.float32)
        allowed = (self.col_of_row >= 0) & (self.col_of_row < limit)
        dense *= allowed[None, :]
        dense[np.arange(c), rows] = 0
        if not self.include_newer:
            np.copyto(dense, np.float32(0), where=self.published[None, :] > self.published[rows][:, None])
        hit_r, hit_c = rank_top.best(dense, width)
        place = np.arange(hit_r.size) - np.searchsorted(hit_r, hit_r)
        cand = np.full((c, int(place.max(initial=-1)) + 1), -1, dtype=np.int64)
        cand[hit_r, place] = hit_c
        return cand

    def nearest(self, sims: Floats32, rows: Ints, limit: int) -> Ints:
        """The best columns of `sims` (c x limit) per row, exact ties kept (at most 2 x the width, ties by
        row number), -1 padded; self and (optionally) newer docs excluded. `sims` is overwritten."""
        pub, col_pub, c = self.published, self.col_published, rows.size
        width = min(self.cols.size - 1, max(CANDIDATES, self.count))
        sims[np.arange(c), self.col_of_row[rows]] = -np.inf
        if not self.include_newer:
            low = int(np.searchsorted(col_pub, pub[rows].min(), side="right"))
            np.copyto(sims[:, low:limit], np.float32(-np.inf), where=col_pub[None, low:limit] > pub[rows][:, None])
        if limit > width:
            threshold = rank_top.kth_largest(sims, width)
            flat = np.flatnonzero(sims >= threshold[:, None])  # 1-D: much faster than a 2-D nonzero
        else:
            flat = np.arange(sims.size)
        hit_sims = sims.ravel()[flat]
        alive = np.isfinite(hit_sims)
        flat, hit_sims = flat[alive], hit_sims[alive]
        hit_r, hit_c = np.divmod(flat, limit)
        hit_c = self.cols[hit_c]
        per_row = np.bincount(hit_r, minlength=c)
        cap = 2 * width
        if per_row.max(initial=0) > cap:  # many exact ties: keep the best `cap`, ties by row number
            order = np.lexsort((hit_c, -hit_sims, hit_r))
            hit_r, hit_c = hit_r[order], hit_c[order]
            keep = np.arange(hit_r.size) - np.searchsorted(hit_r, hit_r) < cap
            hit_r, hit_c = hit_r[keep], hit_c[keep]
            per_row = np.minimum(per_row, cap)
        starts = np.cumsum(per_row) - per_row
        cand = np.full((c, int(per_row.max(initial=0))), -1, dtype=np.int64)
        cand[hit_r, np.arange(hit_r.size) - starts[hit_r]] = hit_c
        return cand

    def neighbours(self, rows: Ints, safe: Ints, valid: NDArray[np.bool_], hybrid: Floats) -> tuple[Ints, Floats]:
        """Positions (in each row's candidates) of its feedback neighbours, best first by hybrid score, and
        their weights: the positive hybrid scores, summing to 1 per row (0 for unused positions)."""
        near = np.lexsort((self.key_rank[safe], -self.published[safe], -hybrid), axis=-1)[:, :PRF_MAX]
        used = np.take_along_axis(valid, near, axis=1) & (np.arange(near.shape[1]) < self.feedback(rows)[:, None])
        weights = np.where(used, np.maximum(np.take_along_axis(hybrid, near, axis=1), 0.0), 0.0)
        total = weights.sum(axis=1)
        total[total == 0] = 1.0
        out: Floats = weights / total[:, None]
        return near, out

    def scores(self, rows: Ints, safe: Ints, valid: NDArray[np.bool_]) -> Floats:
        """The hybrid score with feedback of each row against its candidates (see the module docstring)."""
        vectors = self.z[safe].astype(np.float64)
        lexical = pair_dots(self.lexical, dense_rows(self.lexical, rows), safe)
        latent = np.einsum("cwd,cd->cw", vectors, self.z[rows].astype(np.float64))
        hybrid = (1.0 - LSA_WEIGHT) * lexical + LSA_WEIGHT * latent
        hybrid[~valid] = -np.inf
        near, weights = self.neighbours(rows, safe, valid, hybrid)
        near_vectors = np.take_along_axis(vectors, near[:, :, None], axis=1)
        feedback = np.einsum("cwd,cd->cw", vectors, np.einsum("cp,cpd->cd", weights, near_vectors))
        own = np.zeros_like(feedback)
        np.put_along_axis(own, near, weights * np.einsum("cpd,cpd->cp", near_vectors, near_vectors), axis=1)
        out: Floats = (hybrid + PRF_WEIGHT * (feedback - own)) / (1.0 + PRF_WEIGHT)
        return out

    def shared_tags(self, rows: Ints, safe: Ints) -> Floats:
        """Cosine of the tag sets of each row and its candidates (zeros when no article has tags)."""
        c, wide = safe.shape
        if self.tags is None:
            return np.zeros((c, wide), dtype=np.float64)
        left = self.tags[np.repeat(rows, wide)]
        right = self.tags[safe.ravel()]
        return np.asarray(left.multiply(right).sum(axis=1), dtype=np.float64).reshape(c, wide)

    def run(self, rows: Ints) -> Links:
        """(row, [(row linked to, score, reason), ...]) for each of `rows`, best first."""
        cand = self.candidates(rows)
        if cand.shape[1] == 0:
            return []
        valid = cand >= 0
        safe = np.where(valid, cand, 0)
        shared = self.shared_tags(rows, safe)
        scores = np.round(self.scores(rows, safe, valid) + TAG_WEIGHT * shared, DECIMALS) + 0.0
        scores[~valid] = -np.inf
        # score desc, published desc, key asc; positive scores only
        order = np.lexsort((self.key_rank[safe], -self.published[safe], -scores), axis=-1)[:, : self.count]
        top_c = np.take_along_axis(safe, order, axis=1).tolist()
        top_s = np.take_along_axis(scores, order, axis=1).tolist()
        top_t = np.take_along_axis(shared, order, axis=1).tolist()
        return [(row, [(j, s, "shared tags" if t > 0 else "similarity")
                       for j, s, t in zip(top_c[i], top_s[i], top_t[i], strict=True) if s > 0])
                for i, row in enumerate(rows.tolist())]

