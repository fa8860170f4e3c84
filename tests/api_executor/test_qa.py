"""BM25 retrieval over the shipped corpus puts the right passage first."""

from __future__ import annotations

import pytest

from api_executor.errors import ToolError
from api_executor.kinds import qa


@pytest.mark.parametrize(("query", "title"), [
    ("How tall is Mount Everest?", "Mount Everest"),
    ("Who discovered penicillin?", "Penicillin"),
    ("Which is the deepest lake in the world?", "Lake Baikal"),
    ("When was the Berlin Wall opened?", "Berlin Wall"),
    ("What is the capital of Canada?", "Canada"),
    ("fastest land animal", "Cheetah"),
    ("Who invented the World Wide Web?", "World Wide Web"),
    ("how many bones in an adult human", "Human skeleton"),
    ("what do blue whales eat", "Blue whale"),
    ("where did the first modern Olympic Games take place", "Olympic Games"),
    ("order of the colours of a rainbow", "Rainbows"),
    ("how do bees communicate the location of flowers", "Honey bees"),
])
def test_top_passage(query: str, title: str) -> None:
    top = qa.run({"query": query, "k": 1})
    assert top.startswith(f"[1] {title}: "), top


def test_k_passages_ranked_and_numbered() -> None:
    lines = qa.run({"query": "planet Sun moons", "k": 3}).splitlines()
    assert [line[:3] for line in lines] == ["[1]", "[2]", "[3]"]


def test_no_match() -> None:
    assert qa.run({"query": "xyzzy plugh"}) == "No passages found for: xyzzy plugh"


@pytest.mark.parametrize(("arguments", "message"), [
    ({}, "missing argument 'query'"),
    ({"query": "  "}, "non-empty string"),
    ({"query": 3}, "non-empty string"),
    ({"query": "x", "k": 0}, "'k' must be an integer"),
    ({"query": "x", "k": 11}, "'k' must be an integer"),
    ({"query": "x", "k": "2"}, "'k' must be an integer"),
    ({"query": "x" * 1001}, "longer than"),
])
def test_bad_arguments(arguments: dict, message: str) -> None:
    with pytest.raises(ToolError) as info:
        qa.run(arguments)
    assert message in str(info.value)


def test_corpus_size() -> None:
    assert 30 <= len(qa.corpus_index().passages) <= 60
