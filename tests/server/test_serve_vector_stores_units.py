"""The pure pieces of serve's vector stores (`_vector_stores.py`): chunking, attribute filters, the upstream's
embeddings as it may send them, and the core's `top_k_cosine` through the glue. The endpoints themselves are tested
end to end in test_serve_file_search.py."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from responses_rs._core import top_k_cosine
from responses_rs.server._app import ApiError
from responses_rs.server._vector_stores import _vector, check_filter, chunk_text, chunking, matches


def static(size: int, overlap: int) -> dict[str, Any]:
    return chunking({"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}})


def test_chunks_cover_the_text_with_the_overlap_and_whole_words() -> None:
    text = " ".join(f"w{i:03d}" for i in range(300))  # 1,499 characters
    chunks = chunk_text(text, static(100, 25))
    assert all(len(c) <= 400 for c in chunks) and len(chunks) == 5
    assert chunks[0].startswith("w000") and chunks[-1].endswith("w299")
    words = [c.split() for c in chunks]
    for before, after in zip(words, words[1:], strict=False):
        assert after[0] in before and before.index(after[0]) >= len(before) - 21  # ~100 characters of overlap
    assert {w for ws in words for w in ws} == set(text.split())
    assert chunk_text(text, static(100, 0))[1].split()[0] == f"w{len(chunks[0].split()):03d}"


def test_chunking_edge_cases() -> None:
    assert chunk_text("", static(100, 0)) == [] and chunk_text(" \n\t ", static(100, 0)) == []
    word = "x" * 1000  # no whitespace: cut at the size
    assert [len(c) for c in chunk_text(word, static(100, 50))] == [400, 400, 400, 400]
    assert chunking(None) == chunking({"type": "auto"}) == static(800, 400)
    for bad, field in [
        ({"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}}, "max_chunk_size"),
        ({"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}}, "chunk_overlap"),
        ({"type": "static"}, "chunking_strategy.static"),
        ({"type": "other"}, "chunking_strategy.type"),
    ]:
        with pytest.raises(ApiError) as caught:
            chunking(bad)
        assert field in str(caught.value.param)


def test_filters_as_openai_documents_them() -> None:
    attrs = {"topic": "animals", "year": 2021, "public": True, "score": 0.5}
    yes = [
        {"type": "eq", "key": "topic", "value": "animals"},
        {"type": "ne", "key": "topic", "value": "physics"},
        {"type": "gt", "key": "year", "value": 2020},
        {"type": "lte", "key": "score", "value": 0.5},
        {"type": "lt", "key": "topic", "value": "b"},  # two strings
        {"type": "in", "key": "year", "value": [2020, 2021]},
        {"type": "nin", "key": "topic", "value": ["physics"]},
        {"type": "eq", "key": "public", "value": True},
        {
            "type": "or",
            "filters": [{"type": "eq", "key": "topic", "value": "x"}, {"type": "gte", "key": "year", "value": 2021}],
        },
    ]
    no = [
        {"type": "eq", "key": "missing", "value": 1},
        {"type": "ne", "key": "missing", "value": 1},
        {"type": "gt", "key": "topic", "value": 3},  # a string against a number
        {"type": "eq", "key": "public", "value": 1},  # true is not 1
        {"type": "in", "key": "public", "value": [1]},
        {
            "type": "and",
            "filters": [
                {"type": "eq", "key": "topic", "value": "animals"},
                {"type": "lt", "key": "year", "value": 2000},
            ],
        },
    ]
    for flt in yes + no:
        check_filter(flt)
    assert [matches(f, attrs) for f in yes] == [True] * len(yes)
    assert [matches(f, attrs) for f in no] == [False] * len(no)
    for bad, field in [
        ([], "filters"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "in", "key": "a", "value": "x"}, "filters.value"),
        ({"type": "or", "filters": [{"type": "eq", "key": "a", "value": None}]}, "filters.filters[0].value"),
    ]:
        with pytest.raises(ApiError) as caught:
            check_filter(bad)
        assert caught.value.param == field


def test_embeddings_as_floats_or_base64_and_refused_otherwise() -> None:
    assert _vector([1, 2.5]) == [1, 2.5]
    assert _vector(base64.b64encode(struct.pack("<2f", 1.0, -2.0)).decode()) == [1.0, -2.0]
    for bad in ([], ["x"], "not base64!", base64.b64encode(b"abc").decode(), None):
        with pytest.raises(ValueError):
            _vector(bad)


def test_top_k_cosine_through_the_glue() -> None:
    rows = struct.pack("<6f", 1, 0, 0, 2, 1, 1)
    assert [i for i, _ in top_k_cosine(struct.pack("<2f", 0, 1), rows, 2, 3, -1.0)] == [1, 2, 0]
    with pytest.raises(ValueError):
        top_k_cosine(struct.pack("<3f", 0, 1, 0), rows, 2, 3, -1.0)
