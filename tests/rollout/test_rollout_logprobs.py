"""reasonrl.model.logprobs: teacher-forced per-token log-probs, left padding, chunking, entropy, gradients."""

from __future__ import annotations

import torch

from reasonrl.model.logprobs import position_ids, sequence_logprobs, token_logprobs


def _batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc.input_ids, enc.attention_mask


def _reference(model, ids: list[int], temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpadded single sequence: log_softmax of the full logits, gathered; entropy = -sum p log p."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1] / temperature
    logp_all = torch.log_softmax(logits.double(), dim=-1)
    logp = logp_all.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return torch.cat([torch.zeros(1), logp.float()]), torch.cat([torch.zeros(1), entropy.float()])


def test_position_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_matches_unpadded_reference_under_left_padding(rollout_tokenizer, random_model):
    texts = ["Ana has 7 pens.", "Ben has 12 books. He buys 5 more and then gives away 3 of them."]
    ids, mask = _batch(rollout_tokenizer, texts)
    assert mask[0, 0] == 0, "the first text must be left-padded for this test"
    with torch.no_grad():
        logp, entropy = sequence_logprobs(random_model, ids, mask, temperature=0.8, return_entropy=True)
    assert logp.shape == ids.shape and logp.dtype == torch.float32
    for row, text in enumerate(texts):
        real = rollout_tokenizer.encode(text, add_special_tokens=False)
        ref_logp, ref_entropy = _reference(random_model, real, temperature=0.8)
        start = ids.shape[1] - len(real)
        torch.testing.assert_close(logp[row, start:], ref_logp, atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy[row, start:], ref_entropy, atol=1e-5, rtol=0)
        assert logp[row, :start].eq(0).all() and entropy[row, :start].eq(0).all()
    assert (logp[:, 1:][mask[:, 1:].bool() & mask[:, :-1].bool()] < 0).all()


def test_chunked_equals_unchunked_values_and_gradients(rollout_tokenizer):
    from reasonrl.model.tiny import build_model

    model = build_model("micro", rollout_tokenizer, seed=3)
    ids, mask = _batch(rollout_tokenizer, ["Cleo has 9 shells. She finds 4 more.", "Dan has 3 cards."])
    grads = []
    for chunk in (None, 3):
        model.zero_grad()
        logp = sequence_logprobs(model, ids, mask, chunk_size=chunk)
        (logp * mask).sum().backward()
        grads.append(model.model.embed_tokens.weight.grad.clone())
        if chunk is None:
            full = logp.detach()
    torch.testing.assert_close(logp.detach(), full, atol=1e-6, rtol=0)
    assert grads[0].abs().sum() > 0, "gradients must reach the model"
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_token_logprobs_hand_values():
    # logits [0, ln 3] -> p = [1/4, 3/4]; target 1: log 3/4; entropy = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623
    logits = torch.tensor([[[0.0, torch.log(torch.tensor(3.0)).item()]]])
    logp, entropy = token_logprobs(logits, torch.tensor([[1]]))
    assert abs(logp.item() - torch.log(torch.tensor(0.75)).item()) < 1e-6
    assert abs(entropy.item() - 0.562335) < 1e-5
    # temperature 2 halves the logits: p = softmax([0, ln 3 / 2]) = [1/(1+sqrt 3), sqrt 3/(1+sqrt 3)]
    logp_t, _ = token_logprobs(logits, torch.tensor([[0]]), temperature=2.0)
    assert abs(logp_t.item() - (-torch.log1p(torch.sqrt(torch.tensor(3.0)))).item()) < 1e-6


def test_entropy_is_detached_and_keeps_no_graph():
    """The entropy is a logged diagnostic: under autograd it must not build a graph (for a real vocabulary the
    softmax it would keep for backward is an (N, C, V) tensor per chunk), while its values stay exact and the
    log-probs stay differentiable."""
    logits = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 1, 2], [3, 4, 5]])
    for chunk in (None, 2):
        logp, entropy = token_logprobs(logits, targets, chunk_size=chunk)
        assert logp.requires_grad and not entropy.requires_grad
        p = torch.softmax(logits.detach(), dim=-1)
        assert torch.allclose(entropy, -(p * p.log()).sum(-1).float(), atol=1e-6)
