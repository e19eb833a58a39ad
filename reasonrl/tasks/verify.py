"""Answer extraction and equivalence checking (safe: no eval/exec of model output)."""

from __future__ import annotations


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text`, with nested braces balanced; None if there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None
