"""One suite, every backend that runs here (embedded SQLite and a real Chroma server),
both drivers: add / search / filter / delete / list, and the ledger rows they write."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.replies_media import hashed_vector, tokens_of
from tollway.core.cost.ledger import Ledger
from tollway.vectors import BadFilterError, VectorStoreError
from tollway.vectors.filters import matches, parse_filter

DOCS = [
    ("Oslo is the capital of Norway and sits at the end of a fjord.",
     {"lang": "en", "year": 2021, "topic": "geo", "public": True}),
    ("The Eiffel Tower stands in Paris, the capital of France.",
     {"lang": "en", "year": 2019, "topic": "geo", "public": False}),
    ("Berlin ist die Hauptstadt von Deutschland.",
     {"lang": "de", "year": 2023, "topic": "geo", "public": True}),
    ("Tollway prices every model call in nano-dollars and keeps a ledger.",
     {"lang": "en", "year": 2025, "topic": "tech", "public": True}),
    ("Vector stores keep embeddings of chunks for retrieval by similarity.",
     {"lang": "en", "year": 2024, "topic": "tech", "public": False}),
]


def fill(store: Any, call: Any) -> Any:
    return call(store, "add", [t for t, _ in DOCS], metadata=[m for _, m in DOCS],
                ids=[f"d{i}" for i in range(len(DOCS))])


def test_add_then_search_finds_the_closest_chunk_first(make_store: Any, call: Any,
                                                     ledger: Ledger) -> None:
    store = make_store()
    added = fill(store, call)
    assert added.ids == [f"d{i}#0" for i in range(len(DOCS))]
    assert added.embedding_tokens == sum(tokens_of(t) for t, _ in DOCS)
    assert added.cost_nanos and added.cost_nanos > 0
    hits = call(store, "search", "capital of Norway fjord", k=2)
    assert hits[0].id == "d0#0"
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    # the score is the cosine similarity of the fake's hashed vectors
    q, d = hashed_vector("capital of Norway fjord"), hashed_vector(DOCS[0][0])
    assert hits[0].score == pytest.approx(sum(a * b for a, b in zip(q, d, strict=True)),
                                          abs=1e-4)
    assert hits[0].metadata["lang"] == "en" and hits[0].metadata["source"] == "text:d0"
    assert hits[0].metadata["chunk_index"] == 0 and hits[0].text == DOCS[0][0]


FILTERS: list[dict[str, Any]] = [
    {"lang": "de"},
    {"lang": {"$ne": "en"}},
    {"lang": {"$in": ["de", "fr"]}},
    {"year": {"$gt": 2021}},
    {"year": {"$gte": 2021, "$lt": 2025}},
    {"year": {"$lte": 2019}},
    {"public": True},
    {"public": False, "topic": "tech"},
    {"$or": [{"lang": "de"}, {"topic": "tech"}]},
    {"$and": [{"topic": "geo"}, {"$or": [{"year": 2019}, {"year": 2023}]}]},
    {"topic": "none"},
]


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_select_exactly_the_matching_chunks(make_store: Any, call: Any,
                                                    flt: dict[str, Any]) -> None:
    store = make_store()
    fill(store, call)
    hits = call(store, "search", "capital", k=10, filters=flt)
    tree = parse_filter(flt)
    want = {f"d{i}#0" for i, (_, meta) in enumerate(DOCS)
            if matches(tree, {**meta, "source": f"text:d{i}", "chunk_index": 0})}
    assert {h.id for h in hits} == want
    assert all(matches(tree, h.metadata) for h in hits)


def test_k_limits_the_hits_even_when_more_match(make_store: Any, call: Any) -> None:
    store = make_store()
    fill(store, call)
    assert len(call(store, "search", "capital", k=3, filters={"lang": "en"})) == 3


def test_delete_by_id_and_by_filter(make_store: Any, call: Any) -> None:
    store = make_store()
    fill(store, call)
    assert call(store, "delete", ["d0#0", "missing#0"]) == 1
    assert call(store, "delete", filters={"topic": "tech"}) == 2
    left = {c.id for c in call(store, "list").chunks}
    assert left == {"d1#0", "d2#0"}
    assert all(h.id in left for h in call(store, "search", "Norway", k=5))
    with pytest.raises(VectorStoreError, match="delete needs ids or filters"):
        call(store, "delete")


def test_list_pages_in_id_order(make_store: Any, call: Any) -> None:
    store = make_store()
    fill(store, call)
    first = call(store, "list", limit=2)
    assert [c.id for c in first.chunks] == ["d0#0", "d1#0"] and first.next_after == "d1#0"
    rest = call(store, "list", limit=10, after=first.next_after)
    assert [c.id for c in rest.chunks] == ["d2#0", "d3#0", "d4#0"] and rest.next_after is None
    assert rest.chunks[0].metadata["lang"] == "de"


def test_long_text_is_chunked_with_overlap_and_a_file_readded_replaces_its_chunks(
        make_store: Any, call: Any) -> None:
    store = make_store(chunking={"size": 120, "overlap": 30})
    text = " ".join(f"Sentence {i} tells about topic{i}." for i in range(40))
    added = call(store, "add", files=[("notes.txt", text)], metadata={"kind": "notes"})
    assert len(added.chunks) > 5 and all(len(c.text) <= 120 for c in added.chunks)
    assert added.ids[0] == "notes.txt#0"
    assert added.chunks[1].text[:10] in added.chunks[0].text  # the overlap
    hit = call(store, "search", "17 topic17", k=1)[0]
    assert "topic17" in hit.text and hit.source == "notes.txt"
    call(store, "add", files=[("notes.txt", "Now a short note.")])
    assert [c.id for c in call(store, "list").chunks] == ["notes.txt#0"]


def test_each_search_is_one_retrieval_row_with_the_query_embedding_cost(
        make_store: Any, call: Any, ledger: Ledger, backend_name: str) -> None:
    import tollway

    store = make_store()
    fill(store, call)
    before = ledger.records()  # type: ignore[attr-defined]
    assert {r.kind for r in before} == {"embedding"}
    assert all(r.attribution.get("vector_store") == "docs" for r in before)
    with tollway.trace("feedface" * 4):
        call(store, "search", "capital of Norway", k=2, filters={"lang": "en"})
    rows = [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
    assert len(rows) == 1 and len(ledger.records()) == len(before) + 1  # type: ignore[attr-defined]
    row = rows[0]
    assert row.trace_id == "feedface" * 4
    assert row.provider == backend_name and row.model == "docs"
    assert row.usage.input_tokens == tokens_of("capital of Norway")
    assert row.cost_nanos is not None and row.cost_nanos > 0
    assert row.attribution["hits"] == 2 and row.status == "ok"


def test_bad_filters_and_arguments_are_typed_errors(make_store: Any, call: Any,
                                                    ledger: Ledger) -> None:
    store = make_store()
    fill(store, call)
    for bad, says in [({"year": {"$gt": "2020"}}, "compares numbers"),
                      ({"$nor": []}, "unknown operator"),
                      ({"lang": {"$regex": "e"}}, "unknown operator"),
                      ({"lang": ["en"]}, "strings, numbers or booleans"),
                      ({"$or": []}, "non-empty list")]:
        with pytest.raises(BadFilterError, match=says) as info:
            call(store, "search", "x", filters=bad)
        assert "vector store 'docs'" in str(info.value)
    with pytest.raises(VectorStoreError, match="k is an int"):
        call(store, "search", "x", k=0)
    with pytest.raises(VectorStoreError, match="values are str, int, float or bool"):
        call(store, "add", ["x"], metadata={"tags": ["a"]})
    assert not [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
