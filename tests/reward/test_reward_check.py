"""The reward's dry call before a run writes anything (reasonrl/reward/check.py)."""

from __future__ import annotations

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.reward import Scored, build_reward
from reasonrl.reward.check import dry_responses, dry_run, stand_in

RECORDS = [{"prompt": "What is 1 + 1?", "answer": "2", "response": "1 + 1 = 2. \\boxed{2}"},
           {"prompt": "What is 2 + 2?", "answer": "4"},
           {"prompt": "never read", "answer": "9"}]


def test_stand_in_completions():
    cfg = load_config(None, [])
    assert stand_in(RECORDS[0], cfg) == "1 + 1 = 2. \\boxed{2}"  # the gold response when there is one
    assert stand_in(RECORDS[1], cfg) == "The answer is \\boxed{4}."  # else the answer, boxed
    assert stand_in({"prompt": "p"}, cfg) == ""
    cfg = load_config(None, ["--data.response_field=solution"])
    assert stand_in({"prompt": "p", "solution": "s", "response": "r"}, cfg) == "s"


def test_dry_responses_lay_out_groups(world_tokenizer):
    cfg = load_config(None, ["--rollout.num_samples=3"])
    r = dry_responses(RECORDS[:2], cfg, world_tokenizer)
    assert r.group.tolist() == [0, 0, 0, 1, 1, 1]  # n samples of a prompt are contiguous rows
    assert [rec["answer"] for rec in r.records] == ["2", "2", "2", "4", "4", "4"]
    assert r.lengths.tolist()[3] == len(world_tokenizer.encode("The answer is \\boxed{4}.", add_special_tokens=False))


def test_verifier_passes_the_dry_call(world_tokenizer):
    cfg = load_config(None, ["--rollout.num_samples=2"])
    calls = []
    verifier = build_reward(cfg)

    def spy(responses):
        calls.append(len(responses.texts))
        return verifier(responses)

    dry_run(spy, RECORDS, cfg, tokenizer=world_tokenizer)
    assert calls == [4]  # the first 2 records x 2 samples, once


@pytest.mark.parametrize("reward, needle", [
    (lambda r: (_ for _ in ()).throw(KeyError("context")), "failed on a dry call on the first 2 records"),
    (lambda r: Scored(scores=torch.full((len(r.texts),), float("nan")), correct=torch.zeros(len(r.texts), dtype=bool)),
     "non-finite score (nan) for response 0"),
    (lambda r: Scored(scores=torch.zeros(1), correct=torch.zeros(1, dtype=bool)), "scores of shape (1,) for 4"),
    (lambda r: Scored(scores=torch.zeros(len(r.texts)), correct=torch.zeros(len(r.texts))),
     "`correct` must be None or a bool"),
    (lambda r: Scored(scores=torch.zeros(len(r.texts)), correct=torch.zeros(len(r.texts), dtype=bool),
                      critic_context=["a"]), "1 critic contexts for 4 responses"),
])
def test_a_bad_reward_is_one_user_error(world_tokenizer, reward, needle):
    cfg = load_config(None, ["--rollout.num_samples=2"])
    with pytest.raises(UserError) as e:
        dry_run(reward, RECORDS, cfg, tokenizer=world_tokenizer)
    assert needle in str(e.value) and "'verifier'" in str(e.value) and "\n" not in str(e.value)


def test_a_reward_user_error_keeps_its_message(world_tokenizer):
    cfg = load_config(None, ["--reward.kind=process"])
    with pytest.raises(UserError, match="has no 'task' field"):
        dry_run(build_reward(cfg), RECORDS, cfg, tokenizer=world_tokenizer)
