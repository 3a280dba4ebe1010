"""The related-reading engine on a small hand-written archive (no corpus needed)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from publisher.enrich import rank_job, related
from publisher.enrich.related import RankDoc, Related, RelatedIndex, rank_all

DAY = 86_400.0
T0 = 1_700_000_000.0

# (topic, title, body): four topics, five short articles each, written for these tests.
ARTICLES: list[tuple[str, str, str]] = [
    ("football", "Late goal sends United top of the league",
     "A header in stoppage time gave United a narrow win over City. The striker rose above two defenders "
     "from a corner and the goalkeeper could only watch. The manager praised the squad for never giving up."),
    ("football", "Goalkeeper saves penalty in cup shoot-out",
     "The cup tie finished level after extra time, so it went to penalties. The veteran goalkeeper dived "
     "left to stop the final kick and the away fans celebrated behind the goal."),
    ("football", "Striker signs three-year contract",
     "The club confirmed that its top scorer has agreed a new deal. The striker scored twenty league goals "
     "last season and the manager called him the heart of the squad."),
    ("football", "Defender injured before the derby",
     "A hamstring injury will keep the captain out of Sunday's derby. The defender limped off during training "
     "and the manager must now reshuffle a back four that has conceded few goals in the league."),
    ("football", "Referee under fire after disputed goal",
     "Fans and pundits criticised the referee for allowing a goal that looked offside. The league said the "
     "video assistant had checked the striker's position before the match restarted."),
    ("cooking", "A slow-cooked tomato sauce for pasta",
     "Soften garlic and onion in olive oil, then add crushed tomatoes and a pinch of salt. Simmer the sauce "
     "for an hour, stirring now and then, and toss it with freshly cooked pasta and basil."),
    ("cooking", "How to bake a crusty sourdough loaf",
     "Feed the starter the night before, then mix flour, water and salt into a wet dough. Fold the dough "
     "every half hour, let it rise overnight and bake it in a very hot oven until the crust is dark."),
    ("cooking", "Roast chicken with lemon and herbs",
     "Rub the chicken with butter, garlic, thyme and lemon zest, and season it with salt. Roast it in a hot "
     "oven, basting with the juices, and rest the bird before carving."),
    ("cooking", "Quick vegetable stir-fry for weeknights",
     "Slice peppers, carrots and onion thinly and fry them in a hot wok with a splash of oil. Add garlic, "
     "ginger and soy sauce at the end and serve the vegetables over steamed rice."),
    ("cooking", "Chocolate cake without an oven",
     "Melt chocolate with butter, stir in sugar, eggs and flour, and pour the batter into a greased bowl. "
     "Steam the cake in a covered pan for forty minutes and dust it with cocoa before slicing."),
    ("space", "Rocket lifts space telescope into orbit",
     "The rocket launched at dawn and released the space telescope into orbit about an hour later. "
     "Astronomers will spend weeks unfolding its mirror before the first images of distant planets arrive."),
    ("space", "Rover finds traces of ancient water on Mars",
     "The rover drilled into a rock on the Martian surface and found minerals that form in water. Scientists "
     "say the crater once held a lake, making it a target in the search for past life on the planet."),
    ("space", "Astronauts return from the space station",
     "Three astronauts landed safely after six months aboard the orbiting space station. Their capsule "
     "splashed down under parachutes and recovery ships lifted the crew from the sea."),
    ("space", "Telescope spots a planet orbiting a nearby star",
     "Astronomers using a space telescope have found a rocky planet circling a small star. The planet "
     "orbits close to its sun, and its atmosphere will be studied for signs of water."),
    ("space", "Moon lander prepares for touchdown",
     "The robotic lander fired its engines to leave lunar orbit and begin its descent. If the landing works, "
     "the spacecraft will study ice near the south pole of the Moon."),
    ("finance", "Central bank raises interest rates again",
     "The central bank lifted its main interest rate by a quarter point to fight inflation. Mortgage costs "
     "will rise, and economists expect the bank to hold rates steady for the rest of the year."),
    ("finance", "Shares fall as investors fear a slowdown",
     "Stock markets dropped sharply as investors sold shares on fears of a slowing economy. Bank shares "
     "led the fall, and bond yields eased as traders priced in lower interest rates."),
    ("finance", "Inflation eases for a third month",
     "Consumer prices rose more slowly last month, and inflation is now at its lowest level in two years. "
     "Economists said falling energy prices helped, and markets now expect interest rate cuts."),
    ("finance", "Company profits beat expectations",
     "The retailer reported quarterly profits well above forecasts, and its shares jumped in early trading. "
     "Investors welcomed higher sales and a larger dividend for shareholders."),
    ("finance", "Currency slides after weak trade figures",
     "The currency fell against the dollar after figures showed the trade deficit widening. Traders expect "
     "the central bank to act if the slide pushes up import prices and inflation."),
]


def archive() -> list[RankDoc]:
    """The articles with slugs like 'space-3', one day apart in the order above."""
    counters: dict[str, int] = {}
    docs = []
    for i, (topic, title, body) in enumerate(ARTICLES):
        counters[topic] = counters.get(topic, 0) + 1
        docs.append(RankDoc(f"{topic}-{counters[topic]}", title, body, (), T0 + i * DAY))
    return docs


def topic(key: str) -> str:
    return key.rsplit("-", 1)[0]


def test_top_two_share_the_topic() -> None:
    ranked = rank_all(archive(), 2, include_newer=True)
    assert len(ranked) == len(ARTICLES)
    assert all(r.score > 0 for links in rank_all(archive(), 19, True).values() for r in links)
    for key, links in ranked.items():
        assert len(links) == 2, key
        assert [topic(r.key) for r in links] == [topic(key)] * 2, (key, links)
        assert all(r.reason == "similarity" and 0 < r.score <= 1 for r in links)


def test_same_input_gives_identical_output() -> None:
    assert rank_all(archive(), 5, True) == rank_all(archive(), 5, True)
    assert rank_all(archive(), 5, False) == rank_all(archive(), 5, False)


def test_input_order_does_not_matter() -> None:
    docs = archive()
    expected = rank_all(docs, 5, True)
    for seed in range(3):
        shuffled = docs[:]
        random.Random(seed).shuffle(shuffled)
        assert rank_all(shuffled, 5, True) == expected


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = archive()
    expected = {newer: rank_all(docs, 5, newer) for newer in (True, False)}
    monkeypatch.setattr(related, "CHUNK_ELEMENTS", 50)  # one row per chunk
    assert {newer: rank_all(docs, 5, newer) for newer in (True, False)} == expected
    monkeypatch.setattr(related, "CHUNK_ELEMENTS", 3000)  # a few rows per chunk
    assert {newer: rank_all(docs, 5, newer) for newer in (True, False)} == expected


def test_scores_are_rounded_and_sorted() -> None:
    published = {d.key: d.published for d in archive()}
    for links in rank_all(archive(), 6, True).values():
        assert all(r.score == round(r.score, 4) for r in links)
        order = [(-r.score, -published[r.key], r.key) for r in links]
        assert order == sorted(order)


def test_no_link_to_newer_docs_unless_allowed() -> None:
    docs = archive()
    published = {d.key: d.published for d in docs}
    older_only = rank_all(docs, 5, include_newer=False)
    for key, links in older_only.items():
        assert all(published[r.key] <= published[key] for r in links), key
    assert older_only[docs[0].key] == []  # the first article has nothing older to link to
    assert older_only["football-2"] == [Related("football-1", older_only["football-2"][0].score, "similarity")]
    anything = rank_all(docs, 5, include_newer=True)
    assert any(published[r.key] > published[key] for key, links in anything.items() for r in links)
    assert anything[docs[0].key]  # ... but it can link to newer ones


def test_same_published_time_counts_as_older() -> None:
    docs = [RankDoc(d.key, d.title, d.text, d.tags, T0) for d in archive()]
    assert rank_all(docs, 3, False) == rank_all(docs, 3, True)


def test_ties_are_broken_by_published_then_key() -> None:
    body = "The committee approved the harbour bridge budget after a long debate about tolls and traffic."
    docs = [
        RankDoc("query", "Harbour bridge", body, (), T0),
        RankDoc("b-old", "Harbour bridge", body, (), T0 - 3 * DAY),
        RankDoc("a-new", "Harbour bridge", body, (), T0 - DAY),
        RankDoc("c-new", "Harbour bridge", body, (), T0 - DAY),
        *archive()[:8],
    ]
    links = rank_all(docs, 3, include_newer=True)["query"]
    assert len({r.score for r in links}) == 1  # identical texts tie on score ...
    assert [r.key for r in links] == ["a-new", "c-new", "b-old"]  # ... newest first, then by key


def test_count_is_respected() -> None:
    docs = archive()
    for count in (0, 1, 3, 7):
        ranked = rank_all(docs, count, include_newer=True)
        assert all(len(links) <= count for links in ranked.values())
        assert all(key not in {r.key for r in links} for key, links in ranked.items())
        assert all(len({r.key for r in links}) == len(links) for links in ranked.values())
    assert all(len(links) == 3 for links in rank_all(docs, 3, True).values())
    everything = rank_all(docs, 100, include_newer=True)
    assert max(len(links) for links in everything.values()) <= len(docs) - 1
    with pytest.raises(ValueError):
        rank_all(docs, -1, True)


def test_tiny_archives() -> None:
    assert rank_all([], 5, True) == {}
    one = archive()[0]
    assert rank_all([one], 5, True) == {one.key: []}
    index = RelatedIndex.build([one])
    assert index.rank_new([archive()[1]], 5, include_newer=False)["football-2"][0].key == one.key


def test_shared_tags_add_weight_and_say_so() -> None:
    docs = archive()
    tagged = [RankDoc(d.key, d.title, d.text, ("Money",) if d.key in {"space-1", "finance-3"} else (), d.published)
              for d in docs]
    plain = {r.key: r for r in rank_all(docs, 19, True)["space-1"]}
    with_tags = {r.key: r for r in rank_all(tagged, 19, True)["space-1"]}
    assert with_tags["finance-3"].reason == "shared tags"
    before = plain["finance-3"].score if "finance-3" in plain else 0.0  # non-positive scores are left out
    assert with_tags["finance-3"].score > before
    assert list(with_tags).index("finance-3") < (list(plain).index("finance-3") if "finance-3" in plain else 19)
    assert all(r.reason == "similarity" for k, r in with_tags.items() if k != "finance-3")


def test_empty_or_unknown_words_give_no_links() -> None:
    docs = [*archive()[:5], RankDoc("blank", "", "", (), T0), RankDoc("stop", "The", "and the of it", (), T0)]
    ranked = rank_all(docs, 3, True)
    assert ranked["blank"] == [] and ranked["stop"] == []
    assert all(r.key not in {"blank", "stop"} for links in ranked.values() for r in links)


def test_duplicate_keys_are_refused() -> None:
    doc = archive()[0]
    with pytest.raises(ValueError, match="duplicate"):
        rank_all([doc, doc], 3, True)


# --- the incremental path -------------------------------------------------------------------------


def test_rank_new_matches_a_full_rank_of_the_same_index() -> None:
    """Exact guarantee: with the model fitted at build time, ranking only the new article gives the
    same list as ranking everything again, and the old lists do not change (include_newer False)."""
    docs = archive()
    old, new = docs[:-1], docs[-1]
    index = RelatedIndex.build(old)
    before = index.rank(None, 4, include_newer=False)
    restored = RelatedIndex.from_bytes(index.to_bytes())
    incremental = restored.rank_new([new], 4, include_newer=False)
    full = restored.rank(None, 4, include_newer=False)
    assert incremental == {new.key: full[new.key]}
    assert {k: v for k, v in full.items() if k != new.key} == before
    assert len(restored) == len(docs) and new.key in restored


def test_rank_new_against_a_refit() -> None:
    """rank_all refits vocabulary, IDF and LSA basis, so scores may differ a little from rank_new
    (which keeps the build-time model); the neighbours found are still on topic."""
    docs = archive()
    for new in (docs[4], docs[9], docs[14], docs[19]):
        old = [d for d in docs if d.key != new.key]
        incremental = RelatedIndex.build(old).rank_new([new], 2, include_newer=True)[new.key]
        refit = rank_all(docs, 2, include_newer=True)[new.key]
        assert [topic(r.key) for r in incremental] == [topic(new.key)] * 2
        assert [topic(r.key) for r in refit] == [topic(new.key)] * 2


def test_folding_in_gives_the_build_time_vectors() -> None:
    """A text gets the same vector whether it was fitted at build time or folded in later."""
    docs = archive()
    index = RelatedIndex.from_bytes(RelatedIndex.build(docs).to_bytes())  # as a run finds it in the state
    before = index.rank(None, 5, include_newer=False)
    vectors = index._vectors.copy()
    index.add(docs)  # same keys, same texts: replaced by themselves
    assert np.array_equal(index._vectors, vectors)
    assert index.rank(None, 5, include_newer=False) == before


def test_new_docs_can_link_to_each_other() -> None:
    docs = archive()
    later = T0 + 100 * DAY
    new = [RankDoc(d.key, d.title, d.text, d.tags, later + i) for i, d in enumerate(docs) if d.key.endswith("-5")]
    follow_up = RankDoc("space-6", "Moon lander touches down", docs[14].text, (), later + DAY)
    old = [d for d in docs if not d.key.endswith("-5")]
    ranked = RelatedIndex.build(old).rank_new([*new, follow_up], 2, include_newer=False)
    assert list(ranked) == [*(d.key for d in new), "space-6"]
    for key, links in ranked.items():
        assert [topic(r.key) for r in links] == [topic(key)] * 2, (key, links)
    assert ranked["space-6"][0].key == "space-5"  # a new article, older than the follow-up
    assert all(r.key != "space-6" for r in ranked["space-5"])  # ... which is newer than space-5


def test_index_round_trip_is_exact() -> None:
    index = RelatedIndex.build(archive())
    restored = RelatedIndex.from_bytes(index.to_bytes())
    assert restored.keys == index.keys
    assert restored.rank(None, 5, True) == index.rank(None, 5, True)
    assert restored.to_bytes() == index.to_bytes()
    for junk in (b"not an index", index.to_bytes()[:1000], b""):
        with pytest.raises(ValueError):
            RelatedIndex.from_bytes(junk)


def test_an_index_whose_stored_arrays_are_of_another_kind_is_a_value_error() -> None:
    """A one-character change of the header (an array's dtype or shape) is refused, not a TypeError later."""
    blob = RelatedIndex.build(archive()).to_bytes()
    for old, new in ((b'"tag_counts","<i8"', b'"tag_counts","<f8"'), (b'"key_ends","<i8"', b'"key_ends","<f8"'),
                     (b'"avgdl","<f8",[1]', b'"avgdl","<f8",[0]')):
        assert old in blob
        with pytest.raises(ValueError):
            RelatedIndex.from_bytes(blob.replace(old, new, 1))


def _root(array: object) -> object:
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def test_a_restored_index_lets_go_of_the_stored_bytes_once_an_article_is_added() -> None:
    """Its arrays are views of the stored bytes until replaced; none may keep the whole blob alive after."""
    docs = archive()
    index = RelatedIndex.from_bytes(RelatedIndex.build(docs[:-1]).to_bytes())
    assert isinstance(_root(index._vectors), memoryview)  # else this test proves nothing
    index.add([docs[-1]])
    kept = [index._vectors, index._published, index._lexical.data, index._lexical.indices, index._lexical.indptr,
            index._model.idf, index._model.basis]
    assert not [_root(a) for a in kept if isinstance(_root(a), memoryview)]


def test_rank_all_equals_build_then_rank() -> None:
    docs = archive()
    assert rank_all(docs, 5, False) == RelatedIndex.build(docs).rank(None, 5, include_newer=False)


def test_replacing_and_removing_articles() -> None:
    docs = archive()
    index = RelatedIndex.build(docs)
    edited = RankDoc("space-1", docs[15].title, docs[15].text, (), docs[10].published)  # now about rates
    links = index.rank_new([edited], 2, include_newer=True)["space-1"]
    assert [topic(r.key) for r in links] == ["finance", "finance"]
    assert len(index) == len(docs)
    index.remove(["finance-1", "unknown"])
    assert "finance-1" not in index and len(index) == len(docs) - 1
    assert all(r.key != "finance-1" for links in index.rank(None, 5, True).values() for r in links)


def test_stale_after_many_changes() -> None:
    docs = archive()
    index = RelatedIndex.build(docs[:10])
    assert not index.stale
    index.add(docs[10:11])
    assert not index.stale
    index.add(docs[11:12])
    assert index.stale  # 2 changes on a model fitted on 10 articles: time to build again


# --- the hybrid ranker, its model, its imports ----------------------------------------------------


def synthetic(seed: int = 3, topics: int = 6, per_topic: int = 25) -> list[RankDoc]:
    """Topics of 60 words each; a doc draws 4 words from its topic and 10 from 40 words all topics share,
    so two docs on a topic rarely share many words but share the topic's co-occurrences. 150 docs: more
    than the LSA dimensions, so the latent space is a real reduction (on 100 docs or fewer it is exact
    and latent cosines equal lexical ones)."""
    rng = random.Random(seed)
    common = [f"chat{i}" for i in range(40)]
    docs = []
    for t in range(topics):
        vocab = [f"t{t}w{i}" for i in range(60)]
        for d in range(per_topic):
            words = rng.choices(vocab, k=4) + rng.choices(common, k=10)
            docs.append(RankDoc(f"t{t}-{d:02}", "", " ".join(words), (), T0))
    return docs


def precision_at(docs: list[RankDoc], k: int) -> float:
    ranked = rank_all(docs, k, include_newer=True)
    return sum(sum(topic(r.key) == topic(key) for r in links) / k for key, links in ranked.items()) / len(ranked)


def test_the_hybrid_beats_pure_lexical_and_pure_latent_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = synthetic()
    hybrid = precision_at(docs, 5)
    monkeypatch.setattr(rank_job, "LSA_WEIGHT", 0.0)  # words only
    monkeypatch.setattr(rank_job, "PRF_WEIGHT", 0.0)
    lexical = precision_at(docs, 5)
    monkeypatch.setattr(rank_job, "LSA_WEIGHT", 1.0)  # LSA only, with feedback
    monkeypatch.setattr(rank_job, "PRF_WEIGHT", 0.5)
    latent = precision_at(docs, 5)
    assert hybrid > max(lexical, latent) + 0.005, (hybrid, lexical, latent)


def test_every_part_of_the_score_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = synthetic()
    default = rank_all(docs, 3, True)
    for name, value in (("LSA_WEIGHT", 0.0), ("LSA_WEIGHT", 1.0), ("PRF_WEIGHT", 0.0)):
        with monkeypatch.context() as patch:
            patch.setattr(rank_job, name, value)
            assert rank_all(docs, 3, True) != default, name


def test_each_first_pass_finds_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are the union of an LSA pass and a lexical pass (an article's 16 heaviest words): on a
    small archive the LSA pass alone finds every top 2; the lexical pass alone finds on-topic links for
    the articles whose heaviest words other articles use; with neither there is nothing to score."""
    expected = rank_all(archive(), 2, include_newer=True)

    def nothing(self: rank_job.Job, sims: object, rows: np.ndarray, limit: int) -> np.ndarray:
        return np.full((rows.size, 0), -1, dtype=np.int64)

    with monkeypatch.context() as patch:
        patch.setattr(rank_job.Job, "nearest_sparse", nothing)
        assert rank_all(archive(), 2, include_newer=True) == expected
    with monkeypatch.context() as patch:
        patch.setattr(rank_job.Job, "nearest", nothing)
        lexical = rank_all(archive(), 2, include_newer=True)
        firsts = [topic(links[0].key) == topic(key) for key, links in lexical.items() if links]
        assert len(firsts) >= 10 and sum(firsts) >= len(firsts) - 1, lexical
        patch.setattr(rank_job.Job, "nearest_sparse", nothing)
        assert all(links == [] for links in rank_all(archive(), 2, include_newer=True).values())


def test_independent_builds_are_byte_identical() -> None:
    docs = archive()
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    assert RelatedIndex.build(docs).to_bytes() == RelatedIndex.build(shuffled).to_bytes()


def test_large_archives_fit_on_exactly_the_sample_size(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = sorted(archive(), key=lambda d: d.key)
    monkeypatch.setattr(related, "FIT_SAMPLE", 7)
    sample = related._sample(docs)
    assert len(sample) == 7 and len({d.key for d in sample}) == 7
    assert sample[0] is docs[0]
    assert related._sample(docs[:7]) == docs[:7]
    ranked = rank_all(docs, 2, include_newer=True)  # fitted on 7, every article still indexed and ranked
    assert len(ranked) == len(docs)


def test_daily_batches_link_only_to_older_articles_and_keep_old_lists() -> None:
    docs = archive()
    batches = [[RankDoc(d.key, d.title, d.text, d.tags, T0 + day * DAY) for d in docs[day::4]] for day in range(4)]
    index = RelatedIndex.build(batches[0])
    lists = index.rank(None, 3, include_newer=False)
    published = {d.key: d.published for batch in batches for d in batch}
    for batch in batches[1:]:
        before = index.rank(list(lists), 3, include_newer=False)
        lists.update(index.rank_new(batch, 3, include_newer=False))
        assert index.rank(list(before), 3, include_newer=False) == before  # old lists do not move
    assert len(lists) == len(docs)
    for key, links in lists.items():
        assert all(published[r.key] <= published[key] for r in links), key


def test_no_scikit_learn_or_scipy_stats_is_imported() -> None:
    import subprocess
    import sys

    code = ("import sys; from publisher.enrich.related import RankDoc, rank_all; "
            "docs = [RankDoc(str(i), 't', 'word%d other words here' % (i % 3), (), 0.0) for i in range(150)]; "
            "rank_all(docs, 3, True); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn' or m.startswith('scipy.stats')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the exact top-k helpers and the vocabulary's column selection (against plain NumPy / SciPy) ----------

@pytest.mark.parametrize("columns", [50, 9_000])  # too short to sample, and sampled
def test_kth_largest_and_best_match_a_full_sort(columns: int) -> None:
    from publisher.enrich import rank_top

    rng = np.random.default_rng(7)
    sims = np.round(rng.standard_normal((6, columns)), 2).astype(np.float32)  # many exact ties
    sims[0, :] = 0  # a row without positives
    sims[1, ::3] = -np.inf
    for k in (1, 5, 32):
        assert np.array_equal(rank_top.kth_largest(sims.copy(), k), np.partition(sims, columns - k, axis=1)[:, -k])
    rows, cols = rank_top.best(sims, 32)
    for r in range(sims.shape[0]):
        positive = [c for c in range(columns) if sims[r, c] > 0]
        expected = sorted(positive, key=lambda c: (-sims[r, c], c))[:32]
        assert cols[rows == r].tolist() == expected


def test_fit_vocabulary_counts_equal_scipy_column_selection() -> None:
    from publisher.enrich import rank_text

    texts = [f"{title}\n{body}" for _, title, body in ARTICLES] * 6  # 120 texts: rare and common words dropped
    terms, idf, counts = rank_text.fit_vocabulary(texts)
    seen: dict[str, int] = {}
    raw = rank_text._rows((rank_text._numbered(rank_text.words(t), seen) for t in texts), None)
    expected = raw[:, [seen[t] for t in terms]].tocsr()
    expected.sort_indices()
    assert counts.has_canonical_format and counts.dtype == np.float32
    assert np.array_equal(counts.indptr, expected.indptr) and np.array_equal(counts.indices, expected.indices)
    assert np.array_equal(counts.data, expected.data) and idf.shape == (len(terms),)


def test_heap_trim_is_harmless() -> None:
    from publisher.enrich import heap

    heap.trim()
    heap.trim()


def test_projecting_a_few_rows_gives_the_bits_of_projecting_them_among_many() -> None:
    """An article folded in alone (the basis narrowed to its words) gets exactly the vector it gets in a
    large batch (every column of the basis): an added article ranks as if it had been there at the fit."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    from publisher.enrich import rank_text

    rng = np.random.default_rng(7)
    basis = rng.standard_normal((16, 400)).astype(np.float32)
    many = sp.random(300, 400, density=0.05, format="csr", random_state=3, dtype=np.float64)
    many.sort_indices()
    assert np.unique(many.indices).size * 2 >= 400 and np.unique(many[5].indices).size * 2 < 400  # both ways
    together = rank_text.project(many, basis)
    alone = np.concatenate([rank_text.project(many[i], basis) for i in range(many.shape[0])])
    assert alone.tobytes() == together.tobytes()
    assert rank_text.project(many[:0], basis).shape == (0, 16)
