"""The pure parts: the chunker's boundaries, sizes and overlap, and the filter
language's canonical form and reference semantics."""

from __future__ import annotations

import itertools

import pytest

from tollway.vectors import BadFilterError
from tollway.vectors.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, Chunker, chunk_text
from tollway.vectors.filters import All, Any_, Compare, matches, parse_filter


def test_a_short_text_is_one_stripped_chunk_and_blank_text_none() -> None:
    assert chunk_text("  hello world \n") == ["hello world"]
    assert chunk_text(" \n\t ") == []
    assert (DEFAULT_SIZE, DEFAULT_OVERLAP) == (3200, 400)


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 30 for i in range(6)]
    chunks = chunk_text("\n\n".join(paragraphs), size=400, overlap=0)
    assert all(len(c) <= 400 for c in chunks)
    for p in paragraphs:  # no paragraph was cut in two
        assert any(p.strip() in c for c in chunks)


def test_a_long_sentence_run_is_cut_on_sentence_boundaries_with_overlap() -> None:
    text = " ".join(f"Fact {i} is true." for i in range(200))
    chunks = chunk_text(text, size=200, overlap=50)
    assert len(chunks) > 10 and all(len(c) <= 200 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut after a sentence
    for a, b in itertools.pairwise(chunks):
        assert b[:12] in a  # the next chunk starts inside the previous one's tail


def test_a_word_longer_than_a_chunk_is_cut_hard() -> None:
    assert chunk_text("x" * 100, size=32, overlap=8)[0] == "x" * 32


def test_chunker_rejects_an_overlap_not_below_the_size() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Chunker(size=100, overlap=100)


def test_filters_parse_to_the_canonical_tree() -> None:
    assert parse_filter({"a": 1}) == Compare("a", "eq", 1)
    assert parse_filter({}) is None and parse_filter(None) is None
    assert parse_filter({"a": {"$gte": 1, "$lt": 3}, "b": "x"}) == All((
        Compare("a", "gte", 1), Compare("a", "lt", 3), Compare("b", "eq", "x")))
    assert parse_filter({"$or": [{"a": {"$in": [1, "x"]}}, {"b": True}]}) == Any_((
        Compare("a", "in", (1, "x")), Compare("b", "eq", True)))


@pytest.mark.parametrize(("bad", "path"), [
    ([1], ""), ({"a": {"$gt": True}}, "$.a.$gt"), ({"a": {}}, "$.a"),
    ({"$and": {"a": 1}}, "$.$and"), ({"a b": 1}, "$.a b"), ({"a": {"$in": []}}, "$.a.$in"),
    ({"$or": [{"a": 1}, {"b": {"$exists": True}}]}, "$.$or[1].b.$exists"),
])
def test_bad_filters_say_where(bad: object, path: str) -> None:
    with pytest.raises(BadFilterError) as info:
        parse_filter(bad, store="s")
    assert info.value.path == path and "vector store 's'" in str(info.value)


def test_reference_semantics_keep_booleans_apart_from_numbers_and_missing_keys_out() -> None:
    meta = {"flag": True, "n": 1, "s": "x"}
    assert matches(parse_filter({"flag": True}), meta)
    assert not matches(parse_filter({"n": True}), meta)
    assert not matches(parse_filter({"flag": 1}), meta)
    assert not matches(parse_filter({"missing": {"$ne": 1}}), meta)
    assert not matches(parse_filter({"s": {"$gt": 0}}), meta)
    assert matches(parse_filter({"$or": [{"s": "y"}, {"n": {"$lte": 1}}]}), meta)
