"""Retro-Search (arXiv 2504.04383, the method section): revise a correct trace into a shorter correct one.

For each thought boundary of a correct trace (thought s_t ends, s_{t+1} starts with a transition keyword), the
reviser continues from the prefix s_1 .. s_t *without* switching: the keywords are banned while it writes the
immediate next step s_t^{k+1}, after which it decodes freely to an answer. A rollout is scored

    V = gamma^(N - i) * R(a, a*)                                                     (the value of a rollout)

with N the number of steps of the whole new trace, i the (1-based) index of its first new step and R = 1 when
the answer is correct, else 0. The original continuation (correct by assumption) has V = gamma^(N_orig - i).
The rollout replaces the suffix when its value is higher, i.e. it is correct and has fewer steps, and the pass
goes on over the thoughts after s_t of the (possibly revised) trace. A revised trace is therefore always
correct and never longer in steps than the original. (The formula is the one in the project's paper notes,
../shared/papers/seed-papers.md C.3, consistent with the reviews but not checked against the paper's text.)

Modes: `full` (every boundary), `partial` (boundaries after the first `max_thoughts` thoughts only) and
`early_exit` (after each thought, force the answer with `exit_text`; the earliest exit that beats the original
under the same rule wins). Partial and early exit come from the project's brief and are not confirmed by any
source we could read; ours are a reading.
Ambiguities, as options: gamma (unknown; 0.9), rollouts per boundary (1), and whether a boundary that a
revision creates inside the current thought is revisited (no: the pass moves on to the next thought).

Sampling goes through a `Continue` function so the search is testable with scripted samplers; `engine_continue`
is the real one. Every round batches the current boundary of every unfinished trace into one call (two: the
banned first step, then the free rest).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from reasonrl.retro.params import RetroParams
from reasonrl.retro.segment import segment, split_steps
from reasonrl.rollout.sampler import SamplingParams, sample

Continue = Callable[[list[str], list[str], SamplingParams], list[str]]
"""`(prompts, prefixes, params) -> texts`: `params.n` samples per prompt (contiguous rows), each the text the
sample adds after `prompt + prefix` (the prefix itself not included)."""
Verifier = Callable[[str, str], bool]
"""`(response text, gold answer) -> correct`."""


def rollout_value(correct: bool, num_steps: int, index: int, *, gamma: float) -> float:
    """V = gamma^(N - i) * R(a, a*) (Retro-Search, value of a rollout): N steps in the new trace, i the index of
    its first new step (1-based), R = 1 if the answer is correct else 0."""
    assert 1 <= index <= num_steps + 1, f"step index {index} outside a trace of {num_steps} steps"
    return gamma ** (num_steps - index) * float(correct)


@dataclass
class Revision:
    """One trace under revision: the current response and where the pass stands."""

    prompt: str
    """Model input (chat template applied)."""
    answer: str
    """Gold answer."""
    original: str
    """The trace as it came in."""
    response: str = ""
    """The current (revised) trace."""
    thought: int = 0
    """The next boundary to try lies after this thought (0-based) of `response`."""
    accepted: int = 0
    """Revisions accepted so far."""
    done: bool = False
    history: list[dict] = field(default_factory=list)
    """One entry per tried boundary: thought, value of the original and best rollout, accepted."""

    def __post_init__(self):
        self.response = self.response or self.original


def ban_variants(keywords: Sequence[str]) -> tuple[str, ...]:
    """The words to ban for `keywords`: each as given, lower-case, capitalised and upper-case. A step that starts
    with "wait" or " Wait" switches thought as surely as one with "Wait"; a case-sensitive ban of the capitalised
    defaults let the lower-case forms through. Bans match substrings (`rollout.banned`), so the leading-space forms
    a byte-level BPE tokenizer writes mid-text (" wait") are banned with them."""
    out = []
    for k in keywords:
        out += [k, k.lower(), k[:1].upper() + k[1:].lower(), k.upper()]
    return tuple(dict.fromkeys(out))


def banned_first_step(cont: Continue, prompts: list[str], prefixes: list[str], params: SamplingParams,
                      keywords: Sequence[str], step_sep: str) -> list[str]:
    """Continuations with `keywords` (and their case and leading-space variants, `ban_variants`) banned in the
    immediate next step only (Retro-Search, collecting alternatives).

    Phase 1 decodes one step with the keywords banned and stops at `step_sep` (text past the separator that
    the stopping token carried is cut off); phase 2 decodes the rest freely from prefix + that step, one
    sample per phase-1 row. A phase-1 sample that ended without a separator (EOS or budget) is the whole
    continuation. Returns `params.n` texts per prompt, contiguous.
    """
    n = params.n
    first = cont(prompts, prefixes, replace(params, banned_words=ban_variants(keywords), ban_window=None,
                                            stop=tuple(params.stop) + (step_sep,)))
    steps = [t[: t.index(step_sep) + len(step_sep)] if step_sep in t else t for t in first]
    rows = [r for r, t in enumerate(first) if step_sep in t]
    if not rows:
        return steps
    rest = cont([prompts[r // n] for r in rows], [prefixes[r // n] + steps[r] for r in rows],
                replace(params, n=1, seed=params.seed + 1))
    out = list(steps)
    for r, text in zip(rows, rest, strict=True):
        out[r] = steps[r] + text
    return out


def _boundary(rev: Revision, p: RetroParams) -> tuple[str, int, int] | None:
    """(prefix text, index i of the first new step, steps N of the current trace) of the next boundary, or None."""
    thoughts = segment(rev.response, p.keywords, p.step_sep)
    last = len(thoughts) - 1 if p.mode != "partial" else min(len(thoughts) - 1, p.max_thoughts)
    if rev.thought >= last:
        return None
    prefix_steps = [s for t in thoughts[: rev.thought + 1] for s in t]
    return "".join(prefix_steps), len(prefix_steps) + 1, sum(len(t) for t in thoughts)


def _best(rev: Revision, prefix: str, index: int, num_steps: int, texts: Sequence[str], verifier: Verifier,
          p: RetroParams) -> bool:
    """Score the candidate continuations of one boundary; replace the suffix when the best beats the original."""
    current = rollout_value(True, num_steps, index, gamma=p.gamma)
    scored = []
    for text in texts:
        full = prefix + text
        value = rollout_value(verifier(full, rev.answer), len(split_steps(full, p.step_sep)), index, gamma=p.gamma)
        scored.append((value, -len(full), full))
    value, _, full = max(scored, key=lambda s: s[:2])
    accept = value > current
    rev.history.append({"thought": rev.thought, "value_original": current, "value_best": value, "accepted": accept})
    if accept:
        rev.response, rev.accepted = full, rev.accepted + 1
    return accept


def revise(revisions: list[Revision], cont: Continue, verifier: Verifier, p: RetroParams, *,
           seed: int) -> Iterator[Revision]:
    """Run Retro-Search over `revisions` (all correct), batching one boundary of every unfinished trace per
    round; yields each trace as soon as it is finished (for writing it out at once)."""
    for rev in revisions:
        assert verifier(rev.original, rev.answer), "only correct traces are revised"
    if p.mode == "early_exit":
        yield from _early_exit(revisions, cont, verifier, p, seed=seed)
        return
    sampling = SamplingParams(temperature=p.temperature, top_p=p.top_p, max_new_tokens=p.max_new_tokens,
                              n=p.num_rollouts, stop=p.stop, seed=seed)
    for r in itertools.count():
        todo = []
        for rev in revisions:
            if rev.done:
                continue
            where = _boundary(rev, p)
            if where is None:
                rev.done = True
                yield rev
            else:
                todo.append((rev, where))
        if not todo:
            return
        texts = banned_first_step(cont, [rev.prompt for rev, _ in todo], [w[0] for _, w in todo],
                                  replace(sampling, seed=seed + 2 * r), p.keywords, p.step_sep)
        k = p.num_rollouts
        for j, (rev, (prefix, index, num_steps)) in enumerate(todo):
            _best(rev, prefix, index, num_steps, texts[j * k : (j + 1) * k], verifier, p)
            rev.thought += 1


def boxed_end(text: str, start: int = 0) -> int | None:
    """The index just past the brace that closes the first `\\boxed{` at or after `start` (nested braces
    counted), or None while it is open or when there is none: `"\\boxed{\\frac{1}{2}} more"` -> 19, the index
    after `}}`."""
    start = text.find("\\boxed{", start)
    if start < 0:
        return None
    depth = 0
    for i in range(start + len("\\boxed"), len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return None


def exit_text(prompt: str, prefix: str, p: RetroParams) -> str:
    """What early exit forces after `prefix`: `exit_text`, after `think_end` and a blank line when the model has a
    thinking block (`p.think_end` set, see `with_think_end`) that the prompt and prefix have not closed yet."""
    if p.think_end and p.think_end not in prompt + prefix:
        return p.think_end + "\n\n" + p.exit_text
    return p.exit_text


def with_think_end(p: RetroParams, tokenizer) -> RetroParams:
    """`p` with `think_end` cleared when the reviser's tokenizer has no such token (the model has no thinking
    block to close)."""
    if p.think_end and p.think_end not in tokenizer.get_vocab():
        return replace(p, think_end="")
    return p


def _early_exit(revisions: list[Revision], cont: Continue, verifier: Verifier, p: RetroParams, *,
                seed: int) -> Iterator[Revision]:
    """Early exit: after every thought but the last, force the answer (`exit_text`: the thinking block closed
    first when there is one) and let the model write it, at most `exit_max_new_tokens` tokens, cut after the
    brace that closes the boxed answer (all exits of all traces in one batch). Exits are tried in order and the
    first that beats the original at its own boundary is kept: the earliest correct exit that saves steps."""
    jobs = []  # (revision, thought, prefix, index, num_steps, forced text)
    for rev in revisions:
        thoughts = segment(rev.response, p.keywords, p.step_sep)
        num_steps = sum(len(t) for t in thoughts)
        for t in range(len(thoughts) - 1):
            prefix = "".join(s for th in thoughts[: t + 1] for s in th)
            index = sum(len(th) for th in thoughts[: t + 1]) + 1
            jobs.append((rev, t, prefix, index, num_steps, exit_text(rev.prompt, prefix, p)))
    texts: list[str] = []
    if jobs:
        params = SamplingParams(temperature=p.temperature, top_p=p.top_p, max_new_tokens=p.exit_max_new_tokens,
                                n=p.num_rollouts, stop=p.stop, seed=seed)
        texts = cont([j[0].prompt for j in jobs], [j[2] + j[5] for j in jobs], params)
    k = p.num_rollouts
    for rev in revisions:
        for j, (owner, t, prefix, index, num_steps, forced) in enumerate(jobs):
            if owner is not rev:
                continue
            rev.thought = t
            answers = []
            box = forced.rfind("\\boxed{")  # the box the exit text opens, else the model's first one
            for x in texts[j * k : (j + 1) * k]:
                end = boxed_end(forced + x, box if box >= 0 else len(forced))
                answers.append(forced + x if end is None else (forced + x)[:end])
            if _best(rev, prefix, index, num_steps, answers, verifier, p):
                break
        rev.done = True
        yield rev


def engine_continue(model, tokenizer) -> Continue:
    """The real `Continue`: `reasonrl.rollout.sample` with prefixes; returns only the text after each prefix."""

    def cont(prompts: list[str], prefixes: list[str], params: SamplingParams) -> list[str]:
        out = sample(model, tokenizer, prompts, params, prefixes=prefixes)
        texts = []
        for r, text in enumerate(out.response_texts):
            prefix = prefixes[r // params.n]
            assert text.startswith(prefix), f"decoded response does not start with its prefix {prefix[-40:]!r}"
            texts.append(text[len(prefix):])
        return texts

    return cont
