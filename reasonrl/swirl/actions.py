"""The SWiRL action grammar (arXiv 2504.04736 §2.3, App. E/F): each step is an optional chain of thought and
then exactly one action, a tool call or the answer:

    <search_query>Alia Moss</search_query>      search the corpus
    <math_exp>7 * 12 - 15</math_exp>            evaluate arithmetic
    <answer>Tarrow</answer>                     final answer; the trajectory ends

A tool's output is shown to the model on its own line as `QUERY -> RESULT` (the paper's format).
"""

from __future__ import annotations

import re

TAGS = {"search": "search_query", "math": "math_exp", "answer": "answer"}
"""Action kind -> tag name."""
CLOSING = tuple(f"</{tag}>" for tag in TAGS.values())
"""Stop strings of one step: a step ends with the first closing action tag it writes."""
MAX_ACTION_CHARS = 500
"""Longer action contents are malformed (a search query or an expression is a line, not an essay)."""

_KIND = {tag: kind for kind, tag in TAGS.items()}
_ANY_TAG = re.compile(r"</?(" + "|".join(TAGS.values()) + r")>")


def parse_action(text: str) -> tuple[str | None, str]:
    """`(kind, content)` of the last action of a step: kind is "search", "math" or "answer"; `(None, "")` when the
    step has no well-formed action. Well-formed: the last action tag of the text closes the tag opened just
    before it, with no other action tag inside (nested or mismatched tags are malformed). Never raises."""
    if not isinstance(text, str):
        return None, ""
    tags = list(_ANY_TAG.finditer(text))
    if len(tags) < 2:
        return None, ""
    opening, closing = tags[-2], tags[-1]
    if opening.group(0).startswith("</") or not closing.group(0).startswith("</"):
        return None, ""
    if opening.group(1) != closing.group(1):
        return None, ""
    if len(tags) >= 3 and not tags[-3].group(0).startswith("</"):  # inside another, unclosed action: nested
        return None, ""
    content = text[opening.end() : closing.start()].strip()
    if not content or len(content) > MAX_ACTION_CHARS:
        return None, ""
    return _KIND[opening.group(1)], content


def format_action(kind: str, content: str) -> str:
    tag = TAGS[kind]
    return f"<{tag}>{content}</{tag}>"


def format_result(query: str, result: str) -> str:
    """A tool's output as the model sees it: `QUERY -> RESULT` on one line (newlines flattened)."""
    flat = " ".join(f"{query} -> {result}".split())
    return f"\n{flat}\n"
