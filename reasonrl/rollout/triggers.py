"""Spotting stop strings and tool-call closing tags as soon as a sampled token completes them.

The sampler decodes, for every row whose new token could end a needle, the last few tokens with and without
that token; a needle counts only if it ends inside the new token's text, so a stop string that arrived in
forced text (a prefix, a tool result) never stops a sample, and one already seen is not seen twice.

Which tokens could end a needle (`could_end`) is decided once per run from each token's text alone: it must
contain a needle's last character, or be text that decodes differently in context (empty, or a partial UTF-8
sequence). That skips the decoding for almost every row and step.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


def tail_tokens(needles: Sequence[str]) -> int:
    """How many trailing tokens to decode so that any needle ending in the last token is inside the text.

    A token holds at least one byte of text, so a needle of c bytes spans at most c tokens.
    """
    return max(len(n.encode()) for n in needles) + 1


def could_end(needles: Sequence[str], texts: Sequence[str]) -> list[bool]:
    """Per token id: might this token complete one of `needles`? (conservative: False only when it cannot)"""
    last = {n[-1] for n in needles}
    if any(c.isspace() for c in last):  # SentencePiece drops a token's leading space when decoded alone
        return [True] * len(texts)
    return [not t or "\ufffd" in t or any(c in t for c in last) for t in texts]


def new_match(before: str, after: str, needles: Sequence[str]) -> str | None:
    """The first needle that occurs in `after` and ends past the first `len(before)` characters, else None."""
    for needle in needles:
        if after.find(needle, max(0, len(before) - len(needle) + 1)) >= 0:
            return needle
    return None


def completed_needles(
    tokenizer: PreTrainedTokenizerBase, tails: Sequence[Sequence[int]], needles: Sequence[str]
) -> list[str | None]:
    """For each token list in `tails`, the needle its last token completes (None if none)."""
    texts = tokenizer.batch_decode([list(t) for t in tails] + [list(t[:-1]) for t in tails], skip_special_tokens=True)
    n = len(tails)
    return [new_match(texts[n + i], texts[i], needles) for i in range(n)]
