"""reasonrl.rollout.processors: truncation masks, drawing, and the two log-probs, on hand-made logits."""

from __future__ import annotations

import math

import torch

from reasonrl.rollout.processors import choose_tokens, draw, top_k_mask, top_p_mask, truncate

# probabilities 0.5, 0.3, 0.15, 0.05
PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
LOGITS = PROBS.log()


def test_top_k_mask_keeps_the_k_best():
    assert top_k_mask(LOGITS, 2).tolist() == [[False, False, True, True]]
    assert top_k_mask(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 1).tolist() == [[True, False, False, True]]  # ties kept


def test_top_p_mask_keeps_the_nucleus():
    # mass before each token: 0, 0.5, 0.8, 0.95
    assert top_p_mask(LOGITS, 0.5).tolist() == [[False, True, True, True]]
    assert top_p_mask(LOGITS, 0.79).tolist() == [[False, False, True, True]]
    assert top_p_mask(LOGITS, 0.81).tolist() == [[False, False, False, True]]
    assert top_p_mask(LOGITS, 0.01).tolist() == [[False, True, True, True]]  # the best token always stays
    shuffled = LOGITS[:, [2, 0, 3, 1]]
    assert top_p_mask(shuffled, 0.79).tolist() == [[True, False, True, False]]


def test_truncate_applies_bans_before_top_k():
    banned = torch.tensor([[True, False, False, False]])
    out = truncate(LOGITS, top_k=2, banned=banned)
    assert torch.isinf(out[0, [0, 3]]).all() and torch.isfinite(out[0, [1, 2]]).all()


def test_choose_tokens_greedy_and_logps():
    tokens, logp, slogp = choose_tokens(LOGITS, temperature=0.0)
    assert tokens.tolist() == [0]
    assert abs(logp.item() - math.log(0.5)) < 1e-6 and abs(slogp.item() - math.log(0.5)) < 1e-6
    # banned best token: greedy takes the next; plain logp unchanged by the ban, sampling logp renormalised
    tokens, logp, slogp = choose_tokens(LOGITS, temperature=0.0, banned=torch.tensor([[True, False, False, False]]))
    assert tokens.tolist() == [1]
    assert abs(logp.item() - math.log(0.3)) < 1e-6
    assert abs(slogp.item() - math.log(0.3 / 0.5)) < 1e-6


def test_choose_tokens_temperature_logp_is_untruncated():
    g = torch.Generator().manual_seed(0)
    logits = LOGITS.repeat(200, 1)
    tokens, logp, slogp = choose_tokens(logits, temperature=2.0, top_k=2, generator=g)
    assert set(tokens.tolist()) == {0, 1}
    p_t = torch.softmax(LOGITS[0] / 2.0, -1)  # temperature-2 distribution, all four tokens
    expected = p_t.log()[tokens]
    torch.testing.assert_close(logp, expected)
    torch.testing.assert_close(slogp, (p_t[tokens] / p_t[:2].sum()).log())


def test_draw_matches_the_distribution_and_never_draws_masked_tokens():
    g = torch.Generator().manual_seed(0)
    scores = LOGITS.clone()
    scores[0, 2] = float("-inf")  # token 2 forbidden: remaining probabilities 0.5/0.85, 0.3/0.85, 0.05/0.85
    tokens = draw(torch.softmax(scores, -1).repeat(20000, 1), g)
    freq = torch.bincount(tokens, minlength=4).float() / 20000
    assert freq[2] == 0
    expected = torch.tensor([0.5, 0.3, 0.0, 0.05]) / 0.85
    assert (freq - expected).abs().max() < 0.015  # 3 standard errors of a 20k-sample frequency


def test_draw_is_seeded():
    scores = torch.randn(8, 50)
    scores = torch.softmax(scores, -1)
    a = draw(scores, torch.Generator().manual_seed(5))
    b = draw(scores, torch.Generator().manual_seed(5))
    c = draw(scores.repeat(4, 1), torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(c, draw(scores.repeat(4, 1), torch.Generator().manual_seed(5)))


def test_draw_guard_when_u_rounds_up_to_the_total(monkeypatch):
    # u = 1 * total: the CDF search runs past the end; the last token with probability > 0 must be taken
    probs = torch.tensor([[0.25, 0.75, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.ones(*shape))
    assert draw(probs, None).tolist() == [1, 2]
