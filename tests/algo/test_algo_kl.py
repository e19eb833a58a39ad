import math

import torch
from torch.testing import assert_close

from reasonrl.algo.kl import entropy_from_logits, kl_k1, kl_k2, kl_k3, token_logprobs_from_logits

LN2 = math.log(2)


def test_kl_estimators_hand_values():
    # p = [0.5, 0.25], ref = [0.25, 0.5]
    # k1 = ln p - ln ref = [ln 2, -ln 2];  k2 = 0.5 (ln 2)^2 = 0.2402265 for both
    # k3 with x = ln ref - ln p = [-ln 2, ln 2]: e^x - x - 1 = [0.5 + ln 2 - 1, 2 - ln 2 - 1] = [0.1931472, 0.3068528]
    logp = torch.tensor([[math.log(0.5), math.log(0.25)]])
    ref = torch.tensor([[math.log(0.25), math.log(0.5)]])
    assert_close(kl_k1(logp, ref), torch.tensor([[LN2, -LN2]]))
    assert_close(kl_k2(logp, ref), torch.tensor([[0.2402265, 0.2402265]]))
    assert_close(kl_k3(logp, ref), torch.tensor([[0.1931472, 0.3068528]]))


def test_k1_and_k3_are_unbiased():
    # exact expectations under p over a 3-token vocabulary equal KL(p || ref):
    # KL = 0.5 ln(0.5/0.25) + 0.25 ln(0.25/0.5) + 0.25 ln 1 = 0.25 ln 2
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    ref = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    for estimator in (kl_k1, kl_k3):
        expectation = (p * estimator(p.log(), ref.log())).sum()
        assert_close(expectation, torch.tensor(0.25 * LN2, dtype=torch.float64))


def test_entropy_hand_values():
    # [0, 0] -> uniform over 2: ln 2
    # [0, ln 3] -> p = [1/4, 3/4]: H = 0.25 ln 4 + 0.75 ln(4/3) = 0.3465736 + 0.2157616 = 0.5623351
    # [1000, 1000] -> ln 2 (no overflow); [0, 0, -inf] -> ln 2 (banned token has p = 0)
    logits = torch.tensor(
        [
            [[0.0, 0, float("-inf")], [0, math.log(3), float("-inf")]],
            [[1000.0, 1000, float("-inf")], [0, 0, float("-inf")]],
        ]
    )
    assert_close(entropy_from_logits(logits), torch.tensor([[LN2, 0.5623351], [LN2, LN2]]))


def test_entropy_gradient_finite_with_banned_tokens():
    logits = torch.tensor([[[0.3, -0.2, float("-inf")]]], requires_grad=True)
    (grad,) = torch.autograd.grad(entropy_from_logits(logits).sum(), logits)
    assert torch.isfinite(grad).all()


def test_entropy_matches_reference_and_chunking():
    logits = 3 * torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0))
    expected = torch.distributions.Categorical(logits=logits).entropy()
    assert_close(entropy_from_logits(logits), expected)
    assert_close(entropy_from_logits(logits, chunk_size=3), expected)


def test_token_logprobs_hand_values():
    # logits [0, ln 3] -> p = [1/4, 3/4]: target 1 -> ln 0.75 = -0.2876821, target 0 -> ln 0.25 = -1.3862944
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)]]])
    out = token_logprobs_from_logits(logits, torch.tensor([[1, 0]]))
    assert_close(out, torch.tensor([[-0.2876821, -1.3862944]]))


def test_token_logprobs_match_log_softmax_values_and_grads():
    g = torch.Generator().manual_seed(1)
    logits = (3 * torch.randn(3, 4, 11, generator=g)).requires_grad_(True)
    targets = torch.randint(0, 11, (3, 4), generator=g)
    expected = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    (grad_expected,) = torch.autograd.grad(expected.sum(), logits)
    for chunk_size in (1024, 5):
        out = token_logprobs_from_logits(logits, targets, chunk_size=chunk_size)
        assert_close(out, expected)
        assert_close(torch.autograd.grad(out.sum(), logits)[0], grad_expected)


def test_token_logprobs_bf16_input_computed_in_float32():
    logits = torch.randn(2, 3, 50, generator=torch.Generator().manual_seed(2)).bfloat16()
    targets = torch.zeros(2, 3, dtype=torch.long)
    out = token_logprobs_from_logits(logits, targets)
    assert out.dtype == torch.float32
    assert_close(out, logits.float().log_softmax(-1)[..., 0])
