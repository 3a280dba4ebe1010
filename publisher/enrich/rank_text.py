"""Text to vectors for related reading: words, the fitted vocabulary, BM25 weights and the LSA basis.

NumPy and scipy.sparse only (no scikit-learn: importing it cost 2 s of a cold publish). Words are
lower-cased runs of 2+ word characters, without the 318 English stop words below (the Glasgow list
that scikit-learn also ships). A model is fitted on the archive (the LSA basis on a sample of it):

- vocabulary: words in at least MIN_DF and at most MAX_DF of the articles (every word in archives
  below SMALL_ARCHIVE articles), at most MAX_FEATURES of them (the most frequent; ties by word);
- BM25 weights: w = tf (K1 + 1) / (tf + K1 (1 - B + B dl / avgdl)) x idf, with idf = ln(1 + (N - df +
  0.5) / (df + 0.5)), dl the article's count of vocabulary words and avgdl the archive's mean; rows L2
  normalised. A row depends only on its own text and the fitted model;
- LSA basis: a truncated SVD of a sample's BM25 rows (randomised with a fixed seed, exact on small
  samples): of every dimension on samples of at most DIMS articles (there the latent cosine is the
  lexical one, and the feedback of `rank_job` does the topic work), else of min(DIMS, articles //
  DIMS_SHARE) dimensions (DIMS from 500 articles on). With DIMS dimensions for 101-499 articles the
  space keeps almost every direction and finds no topics: p@5 dropped by 0.01-0.02 on 200-300 article
  samples of both corpora.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

TOKEN = re.compile(r"(?u)\b\w\w+\b")
MAX_FEATURES = 20_000  # vocabulary cap (most frequent words); the LSA temporaries grow with it
SMALL_ARCHIVE = 100  # below this, keep rare and very common words (min_df=1, max_df=1.0)
MIN_DF = 2
MAX_DF = 0.5
K1, B = 1.2, 0.75  # BM25 term-frequency saturation and length normalisation
DIMS = 100  # LSA dimensions (at most)
DIMS_SHARE = 5  # above DIMS articles, at most one dimension per this many of them (so DIMS from 500 on)
SVD_ITER = 2  # power iterations of the randomised SVD
SVD_OVERSAMPLE = 10
SVD_SEED = 0

Floats = NDArray[np.float64]
Floats32 = NDArray[np.float32]

STOP_WORDS = frozenset(" ".join([
    "a about above across after afterwards again against all almost alone along already also although always am",
    "among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere are around as at back",
    "be became because become becomes becoming been before beforehand behind being below beside besides between",
    "beyond bill both bottom but by call can cannot cant co con could couldnt cry de describe detail do done down",
    "due during each eg eight either eleven else elsewhere empty enough etc even ever every everyone everything",
    "everywhere except few fifteen fifty fill find fire first five for former formerly forty found four from front",
    "full further get give go had has hasnt have he hence her here hereafter hereby herein hereupon hers herself",
    "him himself his how however hundred i ie if in inc indeed interest into is it its itself keep last latter",
    "latterly least less ltd made many may me meanwhile might mill mine more moreover most mostly move much must my",
    "myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now nowhere of",
    "off often on once one only onto or other others otherwise our ours ourselves out over own part per perhaps",
    "please put rather re same see seem seemed seeming seems serious several she should show side since sincere six",
    "sixty so some somehow someone something sometime sometimes somewhere still such system take ten than that the",
    "their them themselves then thence there thereafter thereby therefore therein thereupon these they thick thin",
    "third this those though three through throughout thru thus to together too top toward towards twelve twenty",
    "two un under until up upon us very via was we well were what whatever when whence whenever where whereafter",
    "whereas whereby wherein whereupon wherever whether which while whither who whoever whole whom whose why will",
    "with within without would yet you your yours yourself yourselves",
]).split())


def words(text: str) -> Counter[str]:
    """The text's words and how often each occurs: lower-cased, stop words removed."""
    found = Counter(TOKEN.findall(text.lower()))
    for stop in STOP_WORDS.intersection(found):
        dict.__delitem__(found, stop)  # Counter's own __delitem__ is Python code: 1 s at 22,250 articles
    return found


def _rows(rows: Iterable[tuple[list[int], list[int]]], width: int | None) -> sp.csr_matrix:
    """One row of counts per (word ids, their counts); `width` None: the largest id + 1."""
    indptr, cols, data = [0], [], []
    for ids, counts in rows:
        cols.append(np.array(ids, dtype=np.int32))
        data.append(np.array(counts, dtype=np.float32))
        indptr.append(indptr[-1] + len(ids))
    columns = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int32)
    del cols
    if width is None:
        width = int(columns.max()) + 1 if columns.size else 0
    values = np.concatenate(data) if data else np.zeros(0, dtype=np.float32)
    m = sp.csr_matrix((values, columns, np.array(indptr)), shape=(len(indptr) - 1, width))
    m.sort_indices()
    return m


def _known(found: Counter[str], vocabulary: dict[str, int]) -> tuple[list[int], list[int]]:
    pairs = [(vocabulary[w], k) for w, k in found.items() if w in vocabulary]
    return [j for j, _ in pairs], [k for _, k in pairs]


def count(texts: Iterable[str], vocabulary: dict[str, int]) -> sp.csr_matrix:
    """Counts of the vocabulary's words per text (other words are ignored)."""
    return _rows((_known(words(t), vocabulary) for t in texts), len(vocabulary))


def _numbered(found: Counter[str], seen: dict[str, int]) -> tuple[list[int], list[int]]:
    return [seen.setdefault(w, len(seen)) for w in found], list(found.values())


def _counted(texts: Iterable[str]) -> tuple[sp.csr_matrix, list[str]]:
    """Counts of every word of the texts (words numbered in order of first use, numbered in C), and the
    words. The entries are gathered in two flat arrays (4 bytes an entry, no array object per text)."""
    seen: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    ids, values, ends = array("i"), array("f"), [0]
    for text in texts:
        found = words(text)
        ids.extend(map(seen.__getitem__, found))
        values.extend(found.values())
        ends.append(len(ids))
    raw = sp.csr_matrix((np.frombuffer(values, dtype=np.float32), np.frombuffer(ids, dtype=np.intc),
                         np.array(ends, dtype=np.int64)), shape=(len(ends) - 1, len(seen)))
    raw.sort_indices()
    return raw, list(seen)


def _frequencies(raw: sp.csr_matrix) -> tuple[NDArray[np.int64], Floats]:
    """Per column, the rows it occurs in and its total count, a slice of entries at a time (bincount
    would otherwise copy all the indices to int64 and the counts to float64 at once)."""
    width, step = raw.shape[1], 1 << 20
    df, total = np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.float64)
    for start in range(0, raw.nnz, step):
        part = raw.indices[start:start + step]
        df += np.bincount(part, minlength=width)
        total += np.bincount(part, weights=raw.data[start:start + step], minlength=width)  # whole numbers: exact
    return df, total


def fit_vocabulary(texts: Iterable[str]) -> tuple[list[str], Floats, sp.csr_matrix]:
    """The texts' vocabulary (sorted), its BM25 idf, and the texts' counts over it (float32)."""
    raw, names = _counted(texts)
    n = raw.shape[0]
    df, total = _frequencies(raw)
    low, high = (1, n) if n < SMALL_ARCHIVE else (MIN_DF, MAX_DF * n)
    kept = [j for j in range(len(names)) if low <= df[j] <= high]
    kept.sort(key=lambda j: (-total[j], names[j]))
    chosen = sorted(kept[:MAX_FEATURES], key=lambda j: names[j])
    columns = np.array(chosen, dtype=np.int64)
    counts = _columns(raw, columns)
    del raw
    idf = np.log1p((n - df[columns] + 0.5) / (df[columns] + 0.5)) if chosen else np.zeros(0)
    return [names[j] for j in chosen], idf.astype(np.float64), counts


def _columns(raw: sp.csr_matrix, columns: NDArray[np.int64]) -> sp.csr_matrix:
    """raw[:, columns] (canonical), made in place of scipy's column indexing and its large temporaries."""
    renumber = np.full(raw.shape[1], -1, dtype=np.int32)
    renumber[columns] = np.arange(columns.size, dtype=np.int32)
    new = renumber[raw.indices]
    kept = new >= 0
    before = np.zeros(kept.size + 1, dtype=np.int64 if kept.size >= 2**31 else np.int32)
    np.cumsum(kept, out=before[1:])  # kept entries before each position
    indptr = before[raw.indptr].astype(np.int64)
    del before
    data, indices = raw.data[kept], new[kept]
    del new, kept
    out = sp.csr_matrix((data, indices, indptr), shape=(raw.shape[0], columns.size))
    out.sort_indices()
    return out


def mean_length(counts: sp.csr_matrix) -> float:
    """avgdl: the mean count of vocabulary words per row (1 when there is none)."""
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    mean = float(lengths.mean()) if lengths.size else 0.0
    return mean if mean > 0 else 1.0


def bm25(counts: sp.csr_matrix, idf: Floats, avgdl: float) -> sp.csr_matrix:
    """BM25 weights, rows of unit length (element by element: a row never depends on the others)."""
    m = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    m.sort_indices()
    row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    lengths = np.bincount(row_of, weights=m.data, minlength=m.shape[0])
    tf = m.data
    m.data = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * lengths[row_of] / avgdl)) * idf[m.indices]
    norms = np.sqrt(np.bincount(row_of, weights=m.data * m.data, minlength=m.shape[0]))
    norms[norms == 0] = 1.0
    m.data /= norms[row_of]
    return m


def basis(weighted: sp.csr_matrix) -> Floats32:
    """Rows spanning the LSA space: randomised truncated SVD (fixed seed), or exact SVD for small matrices."""
    rows, cols = weighted.shape
    if min(rows, cols) == 0:
        return np.zeros((0, cols), dtype=np.float32)
    if min(rows, cols) <= DIMS:
        _, s, vt = np.linalg.svd(weighted.toarray(), full_matrices=False)
        keep = s > s[0] * 1e-10 if s.size and s[0] > 0 else np.zeros(s.size, dtype=bool)
        return np.ascontiguousarray(vt[keep], dtype=np.float32)
    dims = dimensions(rows)
    rng = np.random.default_rng(SVD_SEED)
    q, _ = np.linalg.qr(weighted @ rng.standard_normal((cols, dims + SVD_OVERSAMPLE)))
    for _ in range(SVD_ITER):
        q, _ = np.linalg.qr(weighted.T @ q)
        q, _ = np.linalg.qr(weighted @ q)
    _, _, vt = np.linalg.svd(np.asarray(weighted.T @ q).T, full_matrices=False)
    return np.ascontiguousarray(vt[:dims], dtype=np.float32)


def dimensions(rows: int) -> int:
    """LSA dimensions of a basis fitted on more than DIMS rows: one per DIMS_SHARE rows, at most DIMS."""
    return min(DIMS, rows // DIMS_SHARE)


def project(weighted: sp.csr_matrix, lsa: Floats32) -> Floats32:
    """Fold rows into the LSA space (row by row, so a text always gets the same vector), unit length.
    A few rows (an article added to a large archive) use only the basis columns of their words: the
    same products summed in the same order, so the same bits, without converting the whole basis."""
    cols = np.unique(weighted.indices)
    if cols.size * 2 < weighted.shape[1]:
        narrow = sp.csr_matrix((weighted.data, np.searchsorted(cols, weighted.indices), weighted.indptr),
                               shape=(weighted.shape[0], cols.size))
        z = np.asarray(narrow @ lsa[:, cols].T.astype(np.float64), dtype=np.float64)
    else:
        z = np.asarray(weighted @ lsa.T.astype(np.float64), dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", z, z))
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(z / norms[:, None], dtype=np.float32)


def stacked(top: sp.csr_matrix, bottom: sp.csr_matrix) -> sp.csr_matrix:
    """The rows of `top`, then those of `bottom` (float32, as wide as `top`): their arrays joined, which is
    what scipy's vstack gives, without its general checks and conversions (a third of adding an article)."""
    indptr = np.concatenate([top.indptr.astype(np.int64), bottom.indptr[1:].astype(np.int64) + top.indptr[-1]])
    data = np.concatenate([top.data, bottom.data]).astype(np.float32, copy=False)
    indices = np.concatenate([top.indices.astype(np.int32, copy=False), bottom.indices.astype(np.int32, copy=False)])
    return sp.csr_matrix((data, indices, indptr), shape=(top.shape[0] + bottom.shape[0], top.shape[1]))
