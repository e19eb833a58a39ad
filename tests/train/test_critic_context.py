"""The critic's own input (`rl.with_critic_context`, `rl.critic_values`): a reward's per-response critic context
(Pairwise-RL's anchor: V(x, y*, y_<t), notes B.3 [I]) is inserted into the critic's prompt, and its values land on
the policy's response columns exactly; without a context the old path is unchanged, bit for bit."""

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.model.logprobs import position_ids, shared_prompt_logits
from reasonrl.model.tiny import build_model
from reasonrl.model.value import token_values, value_model_from_policy
from reasonrl.reward import Scored
from reasonrl.train import ppo, rl

CTX_A, CTX_B = "Start with 7. 7 + 5 = 12. The answer is \\boxed{12}.", "The answer is \\boxed{13}."


def _cfg(*extra: str):
    return load_config(None, ["--data.prompt_template={prompt}", *extra])


def _critic(tok, *, max_positions: int = 1024):
    critic = value_model_from_policy(build_model("micro", tok, seed=3, max_positions=max_positions)).eval()
    torch.nn.init.normal_(critic.score.weight)  # a non-zero head: values differ by position and input
    return critic


def _batch(tok, prompts: list[str], responses: list[str]) -> rl.Batch:
    """A rollout-shaped batch: prompts left-padded to P columns, responses right-padded after them."""
    p_ids = [tok.encode(p, add_special_tokens=False) for p in prompts]
    r_ids = [tok.encode(r, add_special_tokens=False) for r in responses]
    n, p, w = len(prompts), max(map(len, p_ids)), max(map(len, r_ids))
    ids = torch.full((n, p + w), tok.pad_token_id)
    att = torch.zeros((n, p + w), dtype=torch.long)
    for i, (a, b) in enumerate(zip(p_ids, r_ids, strict=True)):
        ids[i, p - len(a) : p] = torch.tensor(a)
        ids[i, p : p + len(b)] = torch.tensor(b)
        att[i, p - len(a) : p + len(b)] = 1
    mask = att.bool() & (torch.arange(p + w) >= p)
    return rl.Batch(input_ids=ids, attention_mask=att, mask=mask, old_logp=torch.zeros(n, p + w),
                    scores=torch.zeros(n), correct=torch.zeros(n, dtype=torch.bool),
                    lengths=torch.tensor([len(b) for b in r_ids]), prompt_len=p)


PROMPTS = ["Ana has 7 coins. She buys 5 more. How many coins does Ana have now?", "Bo has 3 pens."]
RESPONSES = ["7 + 5 = 12. The answer is \\boxed{12}.", "The answer is \\boxed{3}."]


def test_rows_differing_only_in_the_anchor_get_different_values(world_tokenizer):
    tok, cfg = world_tokenizer, _cfg()
    critic = _critic(tok)
    batch = _batch(tok, [PROMPTS[0]] * 3, [RESPONSES[0]] * 3)  # three identical policy rows
    batch = rl.with_critic_context(batch, tok, [PROMPTS[0]] * 3, [CTX_A, CTX_B, CTX_A], cfg)
    with torch.no_grad():
        v = rl.critic_values(critic, batch, cfg)
    m = batch.mask[0]
    assert (v[0, m] - v[1, m]).abs().max() > 1e-3  # another anchor, another value
    torch.testing.assert_close(v[2], v[0])  # the same anchor, the same value: the difference is the anchor's


@pytest.mark.parametrize("share_prompt", [True, False])
def test_mapped_values_equal_a_direct_critic_pass_at_aligned_columns(world_tokenizer, share_prompt, monkeypatch):
    tok, cfg = world_tokenizer, _cfg(f"--rl.share_prompt={str(share_prompt).lower()}")
    critic = _critic(tok)
    widths = []
    monkeypatch.setattr(rl, "token_values", lambda *a, **k: widths.append(k["prompt_len"]) or token_values(*a, **k))
    # prompts, responses and contexts of different lengths; rows 0 and 1 share prompt and context (prompt sharing)
    prompts, responses = [PROMPTS[0], PROMPTS[0], PROMPTS[1]], [RESPONSES[0], RESPONSES[1], RESPONSES[0]]
    batch = rl.with_critic_context(_batch(tok, prompts, responses), tok, prompts, [CTX_B, CTX_B, CTX_A], cfg)
    p, pc = batch.prompt_len, batch.critic_prompt_len
    cid, cam = batch.critic_input_ids, batch.critic_attention_mask
    with torch.no_grad():
        v = rl.critic_values(critic, batch, cfg)
        head = critic(input_ids=cid, attention_mask=cam, position_ids=position_ids(cam)).logits[..., 0]  # (N, Lc)
        shared = shared_prompt_logits(critic, cid, cam, pc)
    assert shared is not None and widths == [pc if share_prompt else 0]  # so the shared path ran when asked
    assert pc > p and cid.shape[1] - pc == batch.input_ids.shape[1] - p
    for i in range(batch.size):
        n = int(batch.lengths[i])
        assert torch.equal(cid[i, pc : pc + n], batch.input_ids[i, p : p + n])  # the same response tokens
        # policy column p + t holds V before response token t: the critic's head output at column pc + t - 1
        for t in range(n):
            assert v[i, p + t].item() == pytest.approx(head[i, pc + t - 1].item(), abs=1e-5), (i, t)
    assert (v[:, :p] == 0).all()
    # the context reached the critic's prompt: row 2's prompt columns decode to the template with CTX_A
    text = tok.decode(cid[2, :pc][cam[2, :pc].bool()])
    assert "Reference:" in text and "13" not in text and "12" in text


def test_without_context_the_old_path_is_bit_identical(world_tokenizer):
    tok, cfg = world_tokenizer, _cfg("--rl.lam_policy=0.9")
    torch.manual_seed(0)
    policy = build_model("micro", tok, seed=1).eval()
    critic = _critic(tok)
    records = [{"prompt": p, "answer": "12"} for p in PROMPTS]

    def reward(contexts):
        def score(responses):
            n = len(responses.texts)
            return Scored(scores=torch.linspace(-1, 1, n), correct=torch.zeros(n, dtype=torch.bool),
                          critic_context=contexts(responses) if contexts else None)
        return score

    plain, _ = rl.rollout_and_score(policy, tok, records, cfg, 7, reward(None))
    assert plain.critic_input_ids is None and plain.critic_attention_mask is None and plain.critic_prompt_len == 0
    plain = ppo.critic_advantages(critic, plain, cfg, pretraining=False)
    with torch.no_grad():
        direct = token_values(critic, plain.input_ids, plain.attention_mask, prompt_len=plain.prompt_len)
    assert torch.equal(plain.old_values, direct)

    ctx, _ = rl.rollout_and_score(policy, tok, records, cfg, 7, reward(lambda r: [CTX_A] * len(r.texts)))
    assert torch.equal(ctx.input_ids, plain.input_ids)  # same seed, same samples: only the critic's input differs
    assert ctx.critic_input_ids.shape[1] - ctx.critic_prompt_len == ctx.input_ids.shape[1] - ctx.prompt_len
    ctx = ppo.critic_advantages(critic, ctx, cfg, pretraining=False)
    assert not torch.allclose(ctx.old_values[ctx.mask], plain.old_values[plain.mask])


def test_concat_and_minibatch_rows_keep_the_critic_columns_aligned(world_tokenizer):
    tok, cfg = world_tokenizer, _cfg("--rl.share_prompt=false")
    critic = _critic(tok)
    # batch 1: long prompts, short contexts; batch 2: a short prompt, a long context: both widths differ
    b1 = rl.with_critic_context(_batch(tok, [PROMPTS[0]] * 2, RESPONSES), tok, [PROMPTS[0]] * 2, ["7", "8"], cfg)
    b2 = rl.with_critic_context(_batch(tok, [PROMPTS[1]], [RESPONSES[0] + " Done."]), tok, [PROMPTS[1]],
                                [CTX_A + " " + CTX_B], cfg)
    assert b1.prompt_len > b2.prompt_len and b1.critic_prompt_len < b2.critic_prompt_len
    both = rl.concat([b1, b2], tok.pad_token_id)
    with torch.no_grad():
        parts = [rl.critic_values(critic, b, cfg) for b in (b1, b2)]
        joined = rl.critic_values(critic, both, cfg)
        picked = rl.critic_values(critic, rl.minibatch_rows(both, torch.tensor([2, 0])), cfg)
    rows = [(parts[0], b1, 0), (parts[0], b1, 1), (parts[1], b2, 0)]
    for j, (v, b, i) in enumerate(rows):
        torch.testing.assert_close(joined[j][both.mask[j]], v[i][b.mask[i]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(picked, joined[[2, 0]], rtol=1e-5, atol=1e-5)
    with pytest.raises(AssertionError, match="critic input"):
        rl.concat([b1, _batch(tok, [PROMPTS[1]], [RESPONSES[1]])], tok.pad_token_id)


def test_a_critic_input_beyond_the_positions_is_a_user_error(world_tokenizer):
    tok, cfg = world_tokenizer, _cfg()
    critic = _critic(tok, max_positions=40)
    batch = _batch(tok, [PROMPTS[1]], [RESPONSES[1]])
    assert int(batch.attention_mask.sum()) < 40  # the policy's own input fits
    batch = rl.with_critic_context(batch, tok, [PROMPTS[1]], [CTX_A * 3], cfg)
    with pytest.raises(UserError, match=r"rl.critic_context_template: .* has \d+ tokens, but the critic has 40"):
        rl.critic_values(critic, batch, cfg)


def test_template_without_its_placeholders_is_a_config_error():
    with pytest.raises(UserError, match=r"rl.critic_context_template must contain \{prompt\} and \{context\}"):
        load_config(None, ["--rl.critic_context_template={prompt} only"])
    cfg = load_config(None, ["--rl.critic_context_template=A {context} {prompt}", "--data.prompt_template=Q: {prompt}"])
    # one pass: braces inside the texts are not placeholders
    assert rl.critic_prompt(None, "x {context}", "y", cfg) == "Q: A y x {context}"


def test_critic_update_regresses_the_values_of_the_critic_input(world_tokenizer):
    """Returns set to the critic's own values from `critic_values`: the update's value loss is exactly 0 only if it
    reads the same critic input (the policy's input gives other values and a positive loss)."""
    tok, cfg = world_tokenizer, _cfg("--rl.minibatch_size=8")
    critic = _critic(tok)
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    batch = rl.with_critic_context(_batch(tok, prompts, [RESPONSES[0], RESPONSES[1], RESPONSES[1]]), tok, prompts,
                                   [CTX_A, CTX_B, CTX_B], cfg)
    with torch.no_grad():
        batch.old_values = batch.returns = rl.critic_values(critic, batch, cfg)
    stats = rl.critic_update(critic, torch.optim.SGD(critic.parameters(), lr=0.0), batch, cfg, seed=0)
    assert stats["value_loss"] == pytest.approx(0.0, abs=1e-10)
    batch.returns = batch.returns + batch.mask.float()  # every target 1 higher: loss 1/2 * 1^2
    stats = rl.critic_update(critic, torch.optim.SGD(critic.parameters(), lr=0.0), batch, cfg, seed=0)
    assert stats["value_loss"] == pytest.approx(0.5, abs=1e-5)
