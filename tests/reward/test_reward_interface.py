"""The reward plug-in interface: the verifier kind's hand values, the kind registry, and config validation."""

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.reward import KINDS, Responses, build_reward, register
from reasonrl.tasks.synthetic import generate


def _responses(texts: list[str], answers: list[str]) -> Responses:
    records = [{"prompt": "p", "answer": a} for a in answers]
    n = len(texts)
    return Responses(records=records, prompts=["p"] * n, texts=texts, lengths=torch.tensor([len(t) for t in texts]),
                     truncated=torch.zeros(n, dtype=torch.bool), group=torch.arange(n))


def test_verifier_kind_concise_values():
    # correct -> +1, boxed but wrong -> -0.5, no answer -> -1 (Concise RL's rewards)
    cfg = load_config(None, ["--reward.correct=1.0", "--reward.wrong=-0.5", "--reward.no_answer=-1.0"])
    rec = generate(1, seed=0, difficulty=1, split="test")[0]
    wrong = str(int(rec["answer"]) + 1)
    scored = build_reward(cfg)(_responses([f"The answer is \\boxed{{{rec['answer']}}}",
                                           f"The answer is \\boxed{{{wrong}}}", "no idea"], [rec["answer"]] * 3))
    assert scored.scores.tolist() == [1.0, -0.5, -1.0]
    assert scored.correct.tolist() == [True, False, False]
    assert scored.stats["answered"] == pytest.approx(2 / 3)


def test_unknown_kind_is_a_reward_error():
    # the config takes any text (a kind may be a user's file); the reward layer names what is known
    cfg = load_config(None, ["--reward.kind=nope"])
    with pytest.raises(UserError, match="reward.kind 'nope' is not one of length_penalty, pairwise, process, verifier, "
                                        "nor 'path/to/file.py:name' or 'package.module:name'"):
        build_reward(cfg)


def test_registered_kind_is_built(monkeypatch):
    # a kind added at run time is checked by the config and imported by path when used
    monkeypatch.setitem(KINDS, "alias", "reasonrl.reward.verifier:build")
    register("alias", "reasonrl.reward.verifier:build")
    cfg = load_config(None, ["--reward.kind=alias", "--reward.wrong=-0.25"])
    scored = build_reward(cfg)(_responses(["The answer is \\boxed{3}"], ["4"]))
    assert scored.scores.tolist() == [-0.25]
