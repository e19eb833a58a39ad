"""The search tool: BM25 (the `bm25s` library) over a local corpus of articles, one article per query.

The paper embeds queries with Gecko-1B and looks up a vector DB of all articles of the split (arXiv 2504.04736
§2.3); at toy scale BM25 over the same kind of corpus plays that role. The corpus is the HotpotQA sample's
paragraphs (`../shared/data/hotpotqa/`, read in place, never copied) and the generated knowledge base of the
QA world. Queries are model output, i.e. hostile text: they are capped in length, stripped of control
characters, tokenised by a regex, and never interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s

MAX_QUERY_CHARS = 200
"""Longer queries are refused with an error result."""
MAX_QUERY_TERMS = 32
"""Only the first terms of a query are searched (bounds the work per query)."""
_TERM = re.compile(r"\w+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Article:
    title: str
    text: str


def terms(text: str) -> list[str]:
    """Lower-cased word terms: the tokenisation of both articles and queries."""
    return [t.lower() for t in _TERM.findall(text)]


class SearchIndex:
    """BM25 over `articles` (title + text); `search(query)` returns the best article's text, or an error string."""

    def __init__(self, articles: Sequence[Article], *, result_chars: int = 400):
        assert articles, "a search index needs at least one article"
        self.articles = list(articles)
        self.result_chars = result_chars
        self.bm25 = bm25s.BM25()
        # The title counts three times: an article about X beats articles that merely mention X.
        self.bm25.index([terms(f"{a.title} {a.title} {a.title} {a.text}") or ["_"] for a in self.articles],
                        show_progress=False)
        self.vocab = set(self.bm25.vocab_dict)

    def top(self, query: str, k: int = 1) -> list[tuple[int, float]]:
        """(article index, BM25 score) of the `k` best articles with a positive score."""
        words = [t for t in terms(query) if t in self.vocab][:MAX_QUERY_TERMS]
        if not words:
            return []
        k = min(k, len(self.articles))
        docs, scores = self.bm25.retrieve([words], k=k, show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def search(self, query: str) -> str:
        """The text of the best article for `query` (cut to `result_chars`), or `error: ...` for a bad query."""
        if not isinstance(query, str):
            return "error: query must be text"
        if len(query) > MAX_QUERY_CHARS:
            return "error: query too long"
        clean = " ".join(_CONTROL.sub(" ", query).split())
        if not clean:
            return "error: empty query"
        hits = self.top(clean)
        if not hits:
            return "error: no results"
        article = self.articles[hits[0][0]]
        text = f"{article.title}: {article.text}" if article.title else article.text
        return text[: self.result_chars]

    __call__ = search


def hotpotqa_articles(path=None) -> list[Article]:
    """Every distinct paragraph of the HotpotQA sample (title, sentences joined) as an article."""
    from reasonrl.tasks.datasets import load_hotpotqa

    seen: dict[str, Article] = {}
    for row in load_hotpotqa(path):
        for title, sentences in row["context"]:
            seen.setdefault(title, Article(title, "".join(sentences).strip()))
    return list(seen.values())
