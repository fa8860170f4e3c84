"""Retrieval QA over the local corpus (api_executor/corpus/passages.json) with Okapi BM25.

The corpus is small (tens of passages), so the index is built once per process on first use and
scored exhaustively; no dependencies. A passage's title counts twice, since titles name the topic.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from api_executor.errors import ToolError

CORPUS_PATH = Path(__file__).resolve().parent.parent / "corpus" / "passages.json"
DEFAULT_K = 3
MAX_K = 10
MAX_QUERY_CHARS = 1000
K1, B = 1.5, 0.75

_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have he her his how in is it its of on or "
    "she that the their them they this to was were what when where which who whom why with".split()
)


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens, stopwords dropped, a plural -s stripped (bees ~ bee)."""
    tokens = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        tokens.append(word)
    return tokens


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


@dataclass(frozen=True)
class Bm25Index:
    passages: tuple[Passage, ...]
    term_counts: tuple[Counter[str], ...]
    lengths: tuple[int, ...]
    idf: dict[str, float]
    avg_length: float

    @classmethod
    def build(cls, passages: list[Passage]) -> Bm25Index:
        counts = tuple(Counter(tokenize(p.title) * 2 + tokenize(p.text)) for p in passages)
        n = len(passages)
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        lengths = tuple(sum(c.values()) for c in counts)
        return cls(tuple(passages), counts, lengths, idf, sum(lengths) / max(n, 1))

    def search(self, query: str, k: int) -> list[tuple[float, Passage]]:
        terms = set(tokenize(query))
        scored = []
        for passage, counts, length in zip(self.passages, self.term_counts, self.lengths):
            score = 0.0
            for t in terms:
                f = counts.get(t, 0)
                if f:
                    score += self.idf[t] * f * (K1 + 1) / (f + K1 * (1 - B + B * length / self.avg_length))
            if score > 0:
                scored.append((score, passage))
        scored.sort(key=lambda sp: -sp[0])
        return scored[:k]


@lru_cache(maxsize=1)
def corpus_index() -> Bm25Index:
    raw = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
    return Bm25Index.build([Passage(title=p["title"], text=p["text"]) for p in raw])


def run(arguments: dict[str, Any]) -> str:
    query = arguments.get("query")
    if query is None:
        raise ToolError("missing argument 'query' (the question to look up)")
    if not isinstance(query, str) or not query.strip():
        raise ToolError("argument 'query' must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise ToolError(f"query longer than {MAX_QUERY_CHARS} characters")
    k = arguments.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ToolError(f"argument 'k' must be an integer from 1 to {MAX_K}")
    hits = corpus_index().search(query, k)
    if not hits:
        return f"No passages found for: {query.strip()}"
    return "\n".join(f"[{i}] {p.title}: {p.text}" for i, (_, p) in enumerate(hits, 1))
