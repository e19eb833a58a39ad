"""Shared-prompt teacher forcing (`sequence_logprobs(..., prompt_len=P)`): the same log-probs, entropies and
gradients as the plain pass, for left-padded prompts repeated in groups and right-padded responses."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from reasonrl.model.logprobs import sequence_logprobs

V, P, R = 40, 7, 6


def _model(arch: str):
    torch.manual_seed(0)
    kw = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2)
    return LlamaForCausalLM(LlamaConfig(**kw)) if arch == "llama" else Qwen2ForCausalLM(Qwen2Config(**kw))


def _batch(groups: int = 3, group_size: int = 4):
    """`groups` prompts of different lengths, left-padded to P, each repeated `group_size` times (contiguous),
    then shuffled; responses of R tokens, some right-padded."""
    g = torch.Generator().manual_seed(1)
    rows, masks = [], []
    for i in range(groups):
        plen = P - i  # 7, 6, 5 real prompt tokens
        prompt = torch.randint(1, V, (plen,), generator=g)
        for _ in range(group_size):
            resp_len = int(torch.randint(2, R + 1, (1,), generator=g))
            resp = torch.randint(1, V, (R,), generator=g)
            ids = torch.cat([torch.zeros(P - plen, dtype=torch.long), prompt, resp])
            m = torch.cat([torch.zeros(P - plen), torch.ones(plen), torch.ones(resp_len), torch.zeros(R - resp_len)])
            ids[m == 0] = 0
            rows.append(ids)
            masks.append(m.long())
    perm = torch.randperm(len(rows), generator=g)
    return torch.stack(rows)[perm], torch.stack(masks)[perm]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_shared_prompt_logprobs_and_entropy_match_plain(arch):
    model = _model(arch)
    ids, mask = _batch()
    with torch.no_grad():
        plain, h_plain = sequence_logprobs(model, ids, mask, temperature=0.7, return_entropy=True)
        shared, h_shared = sequence_logprobs(model, ids, mask, temperature=0.7, return_entropy=True, prompt_len=P)
    torch.testing.assert_close(shared[:, P:], plain[:, P:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_shared[:, P:], h_plain[:, P:], rtol=1e-5, atol=1e-5)
    assert (shared[:, :P] == 0).all() and (plain[:, 1:P][mask[:, 1:P].bool() & mask[:, :P - 1].bool()] != 0).all()
    assert (shared[:, P:][mask[:, P:] == 0] == 0).all()


def test_shared_prompt_gradients_match_plain():
    ids, mask = _batch()
    weights = torch.randn(ids.shape, generator=torch.Generator().manual_seed(2)) * mask
    weights[:, :P] = 0
    grads = []
    for prompt_len in (0, P):
        model = _model("llama")
        logp = sequence_logprobs(model, ids, mask, prompt_len=prompt_len)
        (logp * weights).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in grads[1].values())


def test_no_repeated_prompt_takes_the_plain_path():
    model = _model("llama")
    ids, mask = _batch(groups=3, group_size=1)
    with torch.no_grad():
        plain = sequence_logprobs(model, ids, mask)
        shared = sequence_logprobs(model, ids, mask, prompt_len=P)
    torch.testing.assert_close(shared, plain)  # prompt positions included: nothing was shared


def test_shared_prompt_critic_values_match_plain():
    from reasonrl.model.value import token_values, value_model_from_policy

    critic = value_model_from_policy(_model("qwen2"))
    torch.nn.init.normal_(critic.score.weight)  # a non-zero head, so the values differ per position
    ids, mask = _batch()
    with torch.no_grad():
        plain = token_values(critic, ids, mask)
        shared = token_values(critic, ids, mask, prompt_len=P)
    torch.testing.assert_close(shared[:, P:], plain[:, P:], rtol=1e-5, atol=1e-5)
    assert (shared[:, :P] == 0).all() and plain[:, P:].abs().sum() > 0
