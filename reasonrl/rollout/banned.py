"""Banned words: which next tokens would make a banned word appear in the text.

A word is banned as a substring of the decoded text, whatever tokens spell it: a single token that contains it
(`" Wait"`, `"Waiting"`), or several tokens that complete it (`"W" + "ait"`). Before each step the sampler asks
`BannedWords.token_ids(context)` for the tokens to forbid, where `context` is the end of the text so far, and
removes them from the sampling distribution. Since no choice ever completes a word, none can appear.

Case and other variants are the caller's: pass `["Wait", "wait", "Alternatively", "alternatively"]`.
Substring matching makes a leading-space variant redundant ("Wait" covers " Wait").

Token texts come from decoding each token alone. That is exact for byte-level BPE tokenizers (GPT-2, Llama 3,
Qwen, ours). SentencePiece tokenizers drop a token's leading space when decoded alone, which can only ban more
than needed (text that is "W a it" looks like "Wait"), never less. A non-ASCII word spelled by byte-fallback tokens
that are not valid UTF-8 alone is not caught.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

_TEXTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_texts(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The text of every token id decoded alone (special tokens decode to ""), computed once per tokenizer."""
    texts = _TEXTS.get(tokenizer)
    if texts is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
        _TEXTS[tokenizer] = texts
    return texts


class BannedWords:
    """Lookup tables for one list of banned words over one vocabulary."""

    def __init__(self, words: Sequence[str], texts: Sequence[str]):
        """`texts[i]` is the text of token i, for every id the model can produce."""
        self.words = [w for w in dict.fromkeys(words) if w]
        assert self.words, "BannedWords needs at least one non-empty word"
        # Only the last (longest word - 1) characters of the context can start a word that the next token ends.
        self.context_chars = max(len(w) for w in self.words) - 1
        contains = [i for i, t in enumerate(texts) if any(w in t for w in self.words)]
        self.always = torch.tensor(contains, dtype=torch.long)
        by_text = sorted((t, i) for i, t in enumerate(texts) if t)
        sorted_texts = [t for t, _ in by_text]
        # For each word prefix w[:k] (k >= 1): tokens whose text starts with the rest w[k:] complete the word.
        self.completions: dict[str, list[int]] = {}
        for w in self.words:
            for k in range(1, len(w)):
                rest = w[k:]
                lo = bisect.bisect_left(sorted_texts, rest)
                hi = bisect.bisect_left(sorted_texts, rest + "\U0010ffff")
                self.completions.setdefault(w[:k], []).extend(i for _, i in by_text[lo:hi])

    def token_ids(self, context: str) -> list[int]:
        """Token ids that would complete a banned word right after `context`, besides `self.always`."""
        out: list[int] = []
        for head, ids in self.completions.items():
            if ids and context.endswith(head):
                out.extend(ids)
        return out

    def mask(self, contexts: Sequence[str | None], vocab_size: int, device: torch.device) -> torch.Tensor:
        """`(B, V)` bool: True = forbidden for row b. A row whose context is None is outside its window."""
        mask = torch.zeros(len(contexts), vocab_size, dtype=torch.bool)
        for b, context in enumerate(contexts):
            if context is None:
                continue
            mask[b, self.always] = True
            extra = self.token_ids(context)
            if extra:
                mask[b, extra] = True
        return mask.to(device)

    def advance(self, context: str, text: str) -> str:
        """The context to keep after appending `text`."""
        return (context + text)[-self.context_chars :] if self.context_chars else ""
