"""The `pairwise` reward kind: s(y, y*) against the reference anchor equals the judge asked in both orders by hand,
centred and scaled; self-play anchors; the scalar Bradley-Terry mode; configuration errors."""

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.model.tiny import build_model
from reasonrl.model.value import value_model_from_policy
from reasonrl.pairwise.judges import BradleyTerryJudge, GenerativeJudge, save_judge
from reasonrl.pairwise.reward import sibling_anchors
from reasonrl.reward import Responses, build_reward

REC = {"prompt": "Ana has 7 coins. She buys 5 more. How many coins does Ana have now?", "answer": "12",
       "response": "Start with 7. 7 + 5 = 12. The answer is \\boxed{12}."}
TEXTS = ["Start with 7. 7 + 5 = 12. Wait, 7 + 5 = 12. The answer is \\boxed{12}.",
         "Start with 7. 7 + 5 = 13. The answer is \\boxed{13}."]


def _responses(texts, group=None) -> Responses:
    n = len(texts)
    return Responses(records=[REC] * n, prompts=["formatted"] * n, texts=texts, lengths=torch.full((n,), 10),
                     truncated=torch.zeros(n, dtype=torch.bool),
                     group=torch.zeros(n, dtype=torch.long) if group is None else group)


@pytest.fixture(scope="module")
def judge_dirs(tmp_path_factory, world_tokenizer):
    model = build_model("micro", world_tokenizer, seed=5).eval()
    torch.nn.init.normal_(model.lm_head.weight, std=0.5)
    out = tmp_path_factory.mktemp("judges")
    gen = GenerativeJudge(model, world_tokenizer)
    save_judge(gen, out / "gen")
    rm = value_model_from_policy(model)
    torch.nn.init.normal_(rm.score.weight, std=1.0)
    bt = BradleyTerryJudge(rm.eval(), world_tokenizer)
    save_judge(bt, out / "bt")
    return {"gen": (out / "gen", gen), "bt": (out / "bt", bt)}


class BiasedJudge:
    """p(a > b) = sigmoid(q(a) - q(b) + 0.7): a judge with a position bias toward A; q = 1 for the boxed 12,
    minus 0.5 for a re-check."""

    def prob_better_batch(self, prompts, a, b):
        def q(y):
            return float("\\boxed{12}" in y) - 0.5 * ("Wait," in y)
        return torch.sigmoid(torch.tensor([q(x) - q(y) + 0.7 for x, y in zip(a, b, strict=True)]))


def test_reference_anchor_reward_is_centred_debiased_score(monkeypatch):
    monkeypatch.setattr("reasonrl.pairwise.reward.load_judge", lambda *a, **k: BiasedJudge())
    cfg = load_config(None, ["--reward.kind=pairwise", "--pairwise.judge_path=stub", "--pairwise.scale=2.0"])
    scored = build_reward(cfg)(_responses(TEXTS))
    # anchor = the gold response, q = 1. y0 (right, re-check): q = 0.5
    #   p(y0 > y*) = sigmoid(0.5 - 1 + 0.7) = 0.549834, p(y* > y0) = sigmoid(1.2) = 0.768525
    #   s = 1/2 (0.549834 + 1 - 0.768525) = 0.390655, R = 2 (s - 1/2) = -0.218691
    # y1 (wrong): p(y1 > y*) = sigmoid(-0.3) = 0.425557, p(y* > y1) = sigmoid(1.7) = 0.845535
    #   s = 1/2 (0.425557 + 0.154465) = 0.290011, R = -0.419978
    assert scored.scores.tolist() == pytest.approx([-0.218691, -0.419978], abs=1e-5)
    assert scored.stats["score"] == pytest.approx((0.390655 + 0.290011) / 2, abs=1e-5)
    assert scored.correct.tolist() == [True, False]  # the verifier still reports accuracy
    assert scored.stats["recheck_offset"] == 0.5  # "coins" carries the world's offset; one of two re-checks
    # hidden quality: (1 - 0.5) for y0, 0 for y1
    assert scored.stats["true_quality"] == pytest.approx(0.25)
    # swap consistency: y0 says "A" in both orders (0.55, 0.77 > 1/2), y1 is consistent (0.43 < 1/2 < 0.85)
    assert scored.stats["consistency"] == 0.5


def test_uncentred_single_order_reward(judge_dirs):
    path, judge = judge_dirs["gen"]
    cfg = load_config(None, ["--reward.kind=pairwise", f"--pairwise.judge_path={path}", "--pairwise.scale=1.0",
                             "--pairwise.center=false", "--pairwise.debias=false"])
    scored = build_reward(cfg)(_responses(TEXTS[:1]))
    assert scored.scores[0].item() == pytest.approx(judge.prob_better(REC["prompt"], TEXTS[0], REC["response"]),
                                                    abs=1e-5)


def test_sibling_anchors_pair_samples_of_one_prompt():
    # groups [0, 0, 1, 1, 1]: each sample's anchor is the next sample of its own prompt, cyclically
    out = sibling_anchors(["a", "b", "c", "d", "e"], torch.tensor([0, 0, 1, 1, 1]))
    assert out == [["b"], ["a"], ["d"], ["e"], ["c"]]
    with pytest.raises(UserError, match="num_samples >= 2"):
        sibling_anchors(["a", "b"], torch.tensor([0, 1]))
    # k = 2: the next two samples of the prompt, cyclically; a prompt with 2 samples has only one other
    assert sibling_anchors(["c", "d", "e"], torch.tensor([1, 1, 1]), k=2) == [["d", "e"], ["e", "c"], ["c", "d"]]
    with pytest.raises(UserError, match="num_samples >= 3"):
        sibling_anchors(["a", "b", "c", "d", "e"], torch.tensor([0, 0, 1, 1, 1]), k=2)


def test_several_sibling_anchors_average_the_debiased_score(monkeypatch):
    """`pairwise.num_anchors = 2` (notes B.6: "whether multiple anchors are averaged"): s(y) is the mean of
    s(y, a) over its two sibling anchors, each debiased over both orders of the BiasedJudge; the critic reads
    both anchors."""
    monkeypatch.setattr("reasonrl.pairwise.reward.load_judge", lambda *a, **k: BiasedJudge())
    texts = [TEXTS[0], TEXTS[1], REC["response"]]  # q = 0.5, 0, 1
    cfg = load_config(None, ["--reward.kind=pairwise", "--pairwise.judge_path=stub", "--pairwise.anchor=sample",
                             "--pairwise.num_anchors=2", "--pairwise.scale=1.0", "--pairwise.center=false"])
    scored = build_reward(cfg)(_responses(texts))
    q = [0.5, 0.0, 1.0]

    def s(a, b):  # debiased score of a against b: 1/2 (sigmoid(qa - qb + 0.7) + 1 - sigmoid(qb - qa + 0.7))
        sig = torch.sigmoid(torch.tensor([q[a] - q[b] + 0.7, q[b] - q[a] + 0.7], dtype=torch.float64))
        return 0.5 * (sig[0] + 1 - sig[1]).item()

    want = [(s(0, 1) + s(0, 2)) / 2, (s(1, 2) + s(1, 0)) / 2, (s(2, 0) + s(2, 1)) / 2]
    assert scored.scores.tolist() == pytest.approx(want, abs=1e-6)
    assert want[2] > want[0] > want[1]  # the order of the hidden quality
    assert scored.critic_context == [TEXTS[1] + "\n\n" + REC["response"], REC["response"] + "\n\n" + TEXTS[0],
                                     TEXTS[0] + "\n\n" + TEXTS[1]]
    with pytest.raises(UserError, match="num_anchors"):
        build_reward(load_config(None, ["--reward.kind=pairwise", "--pairwise.judge_path=stub",
                                        "--pairwise.num_anchors=2"]))  # the reference anchor is one per prompt


def test_scalar_bradley_terry_mode(judge_dirs):
    path, judge = judge_dirs["bt"]
    cfg = load_config(None, ["--reward.kind=pairwise", f"--pairwise.judge_path={path}", "--pairwise.anchor=none",
                             "--pairwise.scale=1.0"])
    scored = build_reward(cfg)(_responses(TEXTS))
    assert torch.allclose(scored.scores, judge.reward_batch([REC["prompt"]] * 2, TEXTS).float(), atol=1e-5)
    gen_cfg = load_config(None, ["--reward.kind=pairwise", f"--pairwise.judge_path={judge_dirs['gen'][0]}",
                                 "--pairwise.anchor=none"])
    with pytest.raises(UserError, match="needs a Bradley-Terry judge"):
        build_reward(gen_cfg)
    with pytest.raises(UserError, match="pairwise.judge_path"):
        build_reward(load_config(None, ["--reward.kind=pairwise"]))


def test_critic_context_is_each_responses_anchor(monkeypatch, judge_dirs):
    """`pairwise.critic_sees_anchor` (notes B.3 [I]: V(x, y*, y_<t)): the reward hands the critic the anchor it
    judged each response against; off, or with no anchor (the scalar BT reward), the critic sees no context."""
    monkeypatch.setattr("reasonrl.pairwise.reward.load_judge", lambda *a, **k: BiasedJudge())
    base = ["--reward.kind=pairwise", "--pairwise.judge_path=stub"]
    assert build_reward(load_config(None, base))(_responses(TEXTS)).critic_context == [REC["response"]] * 2
    siblings = build_reward(load_config(None, base + ["--pairwise.anchor=sample"]))(_responses(TEXTS))
    assert siblings.critic_context == [TEXTS[1], TEXTS[0]]
    off = load_config(None, base + ["--pairwise.critic_sees_anchor=false"])
    assert build_reward(off)(_responses(TEXTS)).critic_context is None
    monkeypatch.undo()
    scalar = load_config(None, ["--reward.kind=pairwise", f"--pairwise.judge_path={judge_dirs['bt'][0]}",
                                "--pairwise.anchor=none"])
    assert build_reward(scalar)(_responses(TEXTS)).critic_context is None
