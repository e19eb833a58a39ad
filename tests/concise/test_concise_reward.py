"""The `length_penalty` reward kind: the released code's linear penalty on top of +1 / -0.5 / -1 (hand values)."""

import torch

from reasonrl.concise.reward import linear_length_penalty
from reasonrl.config import load_config
from reasonrl.reward import Responses, build_reward


def test_linear_length_penalty_hand_values():
    # start 1000, end 1400, penalty -1 (the released defaults):
    #   900 -> 0 (before the ramp); 1000 -> 0; 1100 -> -1 * 100/400 = -0.25; 1300 -> -0.75; 1400 -> -1; 2000 -> -1
    pen = linear_length_penalty(torch.tensor([900, 1000, 1100, 1300, 1400, 2000]), start=1000, end=1400,
                                penalty=-1.0)
    assert torch.allclose(pen, torch.tensor([0.0, 0.0, -0.25, -0.75, -1.0, -1.0]))


def test_length_penalty_kind_adds_to_the_concise_outcome_reward():
    # reward.length_start 10, length_end 20, length_penalty -0.4:
    #   correct, 5 tokens   ->  1.0 + 0              =  1.0
    #   correct, 15 tokens  ->  1.0 - 0.4 * 5/10     =  0.8   (the penalty applies to correct answers too)
    #   wrong,   25 tokens  -> -0.5 - 0.4            = -0.9
    #   no box,  12 tokens  -> -1.0 - 0.4 * 2/10     = -1.08
    cfg = load_config(None, ["--reward.kind=length_penalty", "--reward.wrong=-0.5", "--reward.length_start=10",
                             "--reward.length_end=20", "--reward.length_penalty=-0.4"])
    texts = ["so \\boxed{7}", "so \\boxed{7}", "so \\boxed{8}", "no idea"]
    n = len(texts)
    responses = Responses(records=[{"prompt": "p", "answer": "7"}] * n, prompts=["p"] * n, texts=texts,
                          lengths=torch.tensor([5, 15, 25, 12]), truncated=torch.zeros(n, dtype=torch.bool),
                          group=torch.arange(n))
    scored = build_reward(cfg)(responses)
    assert torch.allclose(scored.scores, torch.tensor([1.0, 0.8, -0.9, -1.08]))
    assert scored.correct.tolist() == [True, True, False, False]
    # stats: mean penalty (0 - 0.2 - 0.4 - 0.08) / 4 = -0.17; 3 of 4 responses penalised
    assert abs(scored.stats["length_penalty"] - (-0.17)) < 1e-6 and scored.stats["penalized"] == 0.75
