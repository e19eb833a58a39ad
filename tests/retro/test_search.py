"""Retro-Search on scripted samplers: the value, the accept rule, the one-step ban, modes, batching, invariants.

A scripted sampler is a `Continue` that answers from a table keyed by prefix and honours `banned_words` and
`stop` the way the engine does, so the search logic is tested without a model.
"""

from __future__ import annotations

import random

import pytest

from reasonrl.retro.params import RetroParams
from reasonrl.retro.search import Revision, ban_variants, banned_first_step, boxed_end, revise, rollout_value
from reasonrl.retro.segment import SYNTHETIC_STEP_SEP, num_switches, split_steps
from reasonrl.tasks.synthetic import verify

SEP = SYNTHETIC_STEP_SEP
P = RetroParams(step_sep=SEP, keywords=("Wait", "Alternatively"))


class Scripted:
    """Continuations by prefix: `table[prefix]` is what the model would write; under a ban, `banned_alt[prefix]`.
    Every call is recorded (prompts, prefixes, params)."""

    def __init__(self, table: dict[str, str], banned_alt: dict[str, str] | None = None):
        self.table, self.banned_alt, self.calls = table, banned_alt or {}, []

    def __call__(self, prompts, prefixes, params):
        self.calls.append((list(prompts), list(prefixes), params))
        out = []
        for prefix in prefixes:
            text = self.table[prefix]
            stops = [text.index(s) + len(s) for s in params.stop if s in text]
            window = text[: min(stops)] if stops else text
            if any(w in window for w in params.banned_words):
                text = self.banned_alt[prefix]
                stops = [text.index(s) + len(s) for s in params.stop if s in text]
                window = text[: min(stops)] if stops else text
                assert not any(w in window for w in params.banned_words), "script: banned word under the ban"
            out.extend([window] * params.n)
        return out


def test_rollout_value_hand_values():
    # gamma^(N - i) * R: N = 5 steps, first new step i = 3 -> 0.9^2 = 0.81; wrong -> 0
    assert rollout_value(True, 5, 3, gamma=0.9) == pytest.approx(0.81)
    assert rollout_value(False, 5, 3, gamma=0.9) == 0.0
    assert rollout_value(True, 3, 3, gamma=0.5) == 1.0  # the new step is the last: gamma^0
    assert rollout_value(True, 4, 3, gamma=0.9) > rollout_value(True, 5, 3, gamma=0.9)  # shorter is better


def test_ban_lasts_exactly_one_step():
    # The model wants to switch ("Wait") at every step; banned, it writes " 1 + 1 = 2." instead, but only once.
    prefix = "Start with 1."
    cont = Scripted({prefix: " Wait, again.", prefix + " 1 + 1 = 2.": " Wait, 1 + 1 = 2. The answer is \\boxed{2}."},
                    banned_alt={prefix: " 1 + 1 = 2."})
    from reasonrl.rollout.sampler import SamplingParams

    texts = banned_first_step(cont, ["q"], [prefix], SamplingParams(n=1), ("Wait", "Alternatively"), SEP)
    assert texts == [" 1 + 1 = 2. Wait, 1 + 1 = 2. The answer is \\boxed{2}."]
    (_, _, first), (_, prefixes2, second) = cont.calls
    assert first.banned_words == ban_variants(("Wait", "Alternatively")) and first.ban_window is None
    assert SEP in first.stop
    assert second.banned_words == () and SEP not in second.stop  # the rest is decoded freely
    assert prefixes2 == [prefix + " 1 + 1 = 2."]


def test_first_step_cut_at_the_separator():
    # the engine stops with the token that completes the separator, which may carry more text (". Wa"): the step
    # ends at the separator and phase 2 continues from exactly there
    calls = []

    def cont(prompts, prefixes, params):
        calls.append(prefixes)
        return [" b. Wa"] if params.banned_words else [" c."]

    from reasonrl.rollout.sampler import SamplingParams

    assert banned_first_step(cont, ["q"], ["A."], SamplingParams(), ("Hmm",), SEP) == [" b. c."]
    assert calls[1] == ["A. b."]
    # a first step that ends without a separator (EOS) is the whole continuation: no second call
    cont = Scripted({"A.": " done"})
    assert banned_first_step(cont, ["q"], ["A."], SamplingParams(), ("Hmm",), SEP) == [" done"]
    assert len(cont.calls) == 1


# A switch trace of 7 steps: detour (2 steps) | Alternatively + 4 steps + answer.
DETOUR = "Start with 7. 7 + 5 = 12."
TRACE = DETOUR + (" Alternatively, go step by step from the start. Start with 7. 7 + 5 = 12. 12 - 3 = 9."
                  " The answer is \\boxed{9}.")


def _revise(cont, traces, p=P):
    revs = [Revision("q", "9", t) for t in traces]
    return list(revise(revs, cont, verify, p, seed=0))


@pytest.mark.parametrize("continuation, accepted", [
    (" 12 - 3 = 9. The answer is \\boxed{9}.", True),  # correct, 4 steps instead of 7: accept
    (" 12 - 3 = 8. The answer is \\boxed{8}.", False),  # shorter but wrong: reject
    (" 12 - 3 = 9. 9 + 0 = 9. 9 - 0 = 9. 9 * 1 = 9. 9 + 0 = 9. 9 - 0 = 9. The answer is \\boxed{9}.", False),  # longer
    (" 12 - 3 = 9. 9 + 0 = 9. 9 - 0 = 9. 9 * 1 = 9. The answer is \\boxed{9}.", False),  # 7 steps: equal, not better
])
def test_accept_rule(continuation, accepted):
    cont = Scripted({DETOUR: continuation.split(".")[0] + ".", DETOUR + continuation.split(".")[0] + ".":
                     continuation[len(continuation.split(".")[0]) + 1:]})
    (rev,) = _revise(cont, [TRACE])
    assert rev.accepted == int(accepted)
    assert rev.response == (DETOUR + continuation if accepted else TRACE)
    assert verify(rev.response, "9")
    assert rev.history[0]["value_original"] == pytest.approx(0.9 ** (7 - 3))


def test_continues_over_the_thoughts_of_the_revised_trace():
    # original: [A] [Wait ..] [Alternatively ..], 7 steps. The rollout at boundary 0 switches twice itself, so the
    # revised trace (6 steps) has thoughts [A, x] [Wait y] [Alternatively z, answer]: the next boundary tried is
    # the end of its thought 1 ("Wait, 9 * 1 = 9."), a boundary the original never had.
    a = "Start with 9."
    trace = a + " Wait, 9 + 0 = 9. 9 + 0 = 9. Alternatively, 9 * 1 = 9. 9 * 1 = 9. The answer is \\boxed{9}."
    first, rest = " 9 - 0 = 9.", " Wait, 9 * 1 = 9. Alternatively, 9 = 9. The answer is \\boxed{9}."
    second_prefix = a + first + " Wait, 9 * 1 = 9."
    cont = Scripted({a: first, a + first: rest, second_prefix: " The answer is \\boxed{9}.",
                     second_prefix + " The answer is \\boxed{9}.": ""})
    (rev,) = _revise(cont, [trace])
    assert cont.calls[2][1] == [second_prefix]  # round 2 starts inside the first rollout
    assert [h["accepted"] for h in rev.history] == [True, True]  # 7 -> 6 steps, then 6 -> 4
    assert rev.response == second_prefix + " The answer is \\boxed{9}."
    assert [h["thought"] for h in rev.history] == [0, 1]


def test_rounds_batch_all_traces():
    # three traces, one boundary each: one round = one banned call + one free call, each with all three prefixes
    table = {DETOUR: " 12 - 3 = 9.", DETOUR + " 12 - 3 = 9.": " The answer is \\boxed{9}."}
    cont = Scripted(table)
    revs = [Revision(f"q{i}", "9", TRACE) for i in range(3)]
    out = list(revise(revs, cont, verify, P, seed=0))
    assert len(out) == 3 and all(r.accepted == 1 for r in out)
    assert len(cont.calls) == 2
    assert [c[0] for c in cont.calls] == [["q0", "q1", "q2"]] * 2


def test_partial_mode_tries_only_the_first_boundaries():
    trace = "Start with 9. Wait, 9 = 9. Wait, 9 = 9. Wait, 9 = 9. The answer is \\boxed{9}."
    table = {}
    for k in range(1, 4):
        prefix = "".join(split_steps(trace, SEP)[:k])
        table[prefix] = " 9 = 9. Wait, 9 = 9. Wait, 9 = 9. Wait, 9 = 9. Wait, 9 = 9. The answer is \\boxed{9}."
    cont = Scripted(table, banned_alt={k: " 9 = 9." for k in table})
    table.update({k + " 9 = 9.": table[k][len(" 9 = 9."):] for k in list(table)})
    (rev,) = _revise(cont, [trace], RetroParams(step_sep=SEP, keywords=("Wait",), mode="partial", max_thoughts=2))
    assert [h["thought"] for h in rev.history] == [0, 1]
    (rev,) = _revise(Scripted(table, cont.banned_alt), [trace], RetroParams(step_sep=SEP, keywords=("Wait",)))
    assert [h["thought"] for h in rev.history] == [0, 1, 2]


def test_early_exit_keeps_the_first_correct_exit():
    exit_text = " The answer is \\boxed{"
    p = RetroParams(step_sep=SEP, keywords=("Wait", "Alternatively"), mode="early_exit", exit_text=exit_text,
                    think_end="")
    trace = "Start with 9. Wait, 9 = 9. Wait, 9 = 9. Alternatively, 9 + 0 = 9. The answer is \\boxed{9}."
    steps = split_steps(trace, SEP)
    cont = Scripted({steps[0] + exit_text: "8}.", "".join(steps[:2]) + exit_text: "9}.",
                     "".join(steps[:3]) + exit_text: "9}."})
    (rev,) = _revise(cont, [trace], p)
    # the first exit is wrong, the second is kept, cut after the brace that closes the box
    assert rev.response == "".join(steps[:2]) + exit_text + "9}"
    assert len(cont.calls) == 1 and len(cont.calls[0][1]) == 3  # all exits in one batch
    assert num_switches(rev.response, p.keywords, SEP) == 1


def test_revised_traces_always_correct_and_never_longer():
    # a random sampler: any continuation of 0-6 steps, right or wrong answer, switching or not
    rng = random.Random(0)

    class Noisy:
        def __call__(self, prompts, prefixes, params):
            out = []
            for _ in range(len(prefixes) * params.n):
                steps = [rng.choice([" 9 + 0 = 9.", " Wait, 9 = 9.", " Alternatively, 9 = 9."])
                         for _ in range(rng.randrange(0, 6))]
                if params.banned_words:
                    steps = [" 9 - 0 = 9."]
                ans = rng.choice(["9", "9", "8"])
                text = "".join(steps) + ("" if params.banned_words else f" The answer is \\boxed{{{ans}}}.")
                out.append(text)
            return out

    traces = []
    for _ in range(40):
        body = "".join(rng.choice([" 9 + 0 = 9.", " Wait, 9 = 9.", " Alternatively, 9 = 9."])
                       for _ in range(rng.randrange(1, 8)))
        traces.append("Start with 9." + body + " The answer is \\boxed{9}.")
    revs = _revise(Noisy(), traces, RetroParams(step_sep=SEP, keywords=("Wait", "Alternatively"), num_rollouts=3))
    assert len(revs) == 40 and sum(r.accepted for r in revs) > 5
    for r in revs:
        assert verify(r.response, "9")
        assert len(split_steps(r.response, SEP)) <= len(split_steps(r.original, SEP))
        assert (r.response == r.original) == (r.accepted == 0)


def test_ban_covers_case_and_leading_space_variants():
    # The defaults are capitalised; a reviser that opens its next step with " wait," or " Wait," switches thought
    # all the same. Mutation: banning the keywords as given (the old behaviour) lets " wait," through.
    words = ban_variants(("Wait", "But wait"))
    assert {"Wait", "wait", "WAIT", "but wait", "But wait", "BUT WAIT"} <= set(words)
    prefix = "Start with 1."
    from reasonrl.rollout.sampler import SamplingParams

    for switch in (" wait, again.", " WAIT. again.", " Wait, again."):
        cont = Scripted({prefix: switch, prefix + " 1 + 1 = 2.": " The answer is \\boxed{2}."},
                        banned_alt={prefix: " 1 + 1 = 2."})
        texts = banned_first_step(cont, ["q"], [prefix], SamplingParams(n=1), ("Wait", "Alternatively"), SEP)
        assert texts == [" 1 + 1 = 2. The answer is \\boxed{2}."], switch


def test_boxed_end_counts_nested_braces():
    assert boxed_end("so \\boxed{\\frac{1}{2}} and more") == len("so \\boxed{\\frac{1}{2}}")
    assert boxed_end("\\boxed{\\frac{1}{2") is None  # still open
    assert boxed_end("no box here }") is None
    text = "\\boxed{1} then \\boxed{22} x"
    assert boxed_end(text) == len("\\boxed{1}") and boxed_end(text, 1) == len("\\boxed{1} then \\boxed{22}")


R1_TRACE = ("Let me compute 1/2.\n\nIt is 0.5, so \\frac{1}{2}.\n\nWait, let me double-check.\n\n"
            "Yes, \\frac{1}{2}.\n\n</think>\n\n**Final Answer**\n\\boxed{\\frac{1}{2}}")


def _boxed_verifier(text: str, gold: str) -> bool:
    from reasonrl.tasks.answers import extract_boxed

    return extract_boxed(text) == gold


def test_early_exit_closes_the_thinking_block_and_stops_after_the_box():
    # An R1-style trace (blank-line steps, a </think> block). The exit after thought 0 must close the block before
    # the answer, and the answer must end at the brace that closes \boxed{...} even though the model goes on.
    p = RetroParams(keywords=("Wait",), mode="early_exit", exit_max_new_tokens=40)
    thought0 = "Let me compute 1/2.\n\nIt is 0.5, so \\frac{1}{2}.\n\n"
    forced = "</think>\n\n**Final Answer**\n\\boxed{"
    cont = Scripted({thought0 + forced: "\\frac{1}{2}}\n\nHmm, maybe I should check again. \\boxed{3}"})
    (rev,) = list(revise([Revision("q", "\\frac{1}{2}", R1_TRACE)], cont, _boxed_verifier, p, seed=0))
    (_, prefixes, params), = cont.calls
    assert prefixes == [thought0 + forced]  # Mutation: forcing exit_text alone fails here
    assert params.max_new_tokens == 40  # the budget is the configured one
    assert rev.accepted == 1 and rev.response == thought0 + forced + "\\frac{1}{2}}"
    assert rev.response.index("</think>") < rev.response.index("\\boxed{")  # the answer is outside the block
    # A prefix that already closed the block (an exit after </think>) is not closed twice.
    from reasonrl.retro.search import exit_text

    assert exit_text("q", "a</think>\n\nb", p) == p.exit_text
    assert exit_text("q", "a", RetroParams(think_end="")) == p.exit_text
