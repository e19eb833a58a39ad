"""Judges: the YES/NO probability read from a micro model equals a hand softmax; batching (left padding) changes
nothing; Bradley-Terry is sigmoid(r_a - r_b); save / load round-trips; bad templates are user errors."""

import math

import pytest
import torch

from reasonrl.errors import UserError
from reasonrl.model.tiny import build_model
from reasonrl.model.value import value_model_from_policy
from reasonrl.pairwise.judges import BradleyTerryJudge, GenerativeJudge, OracleJudge, load_judge, save_judge

PROMPT = "Ana has 7 pens. She buys 5 more. How many pens does Ana have now?"
GOOD = "Start with 7. 7 + 5 = 12. The answer is \\boxed{12}."
BAD = "Start with 7. 7 + 5 = 13. The answer is \\boxed{13}."


@pytest.fixture(scope="module")
def micro(world_tokenizer):
    model = build_model("micro", world_tokenizer, seed=3).eval()
    torch.nn.init.normal_(model.lm_head.weight, std=0.5)  # spread the logits so P(YES) is far from 1/2
    return model


def test_generative_prob_equals_hand_softmax(micro, world_tokenizer):
    judge = GenerativeJudge(micro, world_tokenizer)
    text = f"{PROMPT}\nA: {GOOD}\nB: {BAD}\nA better: "
    ids = torch.tensor([world_tokenizer.encode(text)])
    with torch.no_grad():
        logits = micro(input_ids=ids).logits[0, -1]
    yes, no = logits[world_tokenizer.encode("YES")[0]].item(), logits[world_tokenizer.encode("NO")[0]].item()
    hand = math.exp(yes) / (math.exp(yes) + math.exp(no))  # softmax over the two answer tokens
    p = judge.prob_better(PROMPT, GOOD, BAD)
    assert p == pytest.approx(hand, abs=1e-6)
    assert abs(p - 0.5) > 1e-3  # the check means something: not a flat 1/2


def test_generative_batch_matches_single_under_left_padding(micro, world_tokenizer):
    judge = GenerativeJudge(micro, world_tokenizer, batch_size=2)  # 3 pairs: two chunks; the first is padded
    prompts, a, b = [PROMPT, "Ben has 2 coins. How many coins does Ben have now?", PROMPT], [GOOD, "2", BAD], \
        [BAD, "Start with 2. The answer is \\boxed{2}.", GOOD]
    batch = judge.prob_better_batch(prompts, a, b)
    single = torch.tensor([judge.prob_better(p, x, y) for p, x, y in zip(prompts, a, b, strict=True)])
    assert torch.allclose(batch, single, atol=1e-5)


def test_bradley_terry_is_sigmoid_of_reward_difference(micro, world_tokenizer):
    rm = value_model_from_policy(micro)
    torch.nn.init.normal_(rm.score.weight, std=1.0)
    judge = BradleyTerryJudge(rm.eval(), world_tokenizer)
    r_good, r_bad = judge.reward_batch([PROMPT, PROMPT], [GOOD, BAD]).tolist()
    p = judge.prob_better(PROMPT, GOOD, BAD)
    assert p == pytest.approx(1 / (1 + math.exp(-(r_good - r_bad))), abs=1e-6)
    assert judge.prob_better(PROMPT, BAD, GOOD) == pytest.approx(1 - p, abs=1e-6)  # swap-consistent by design


def test_oracle_judge():
    judge = OracleJudge(lambda prompt, y: float("12" in y), scale=2.0)
    # q = 1 vs 0: sigmoid(2) = 0.8808
    assert judge.prob_better(PROMPT, GOOD, BAD) == pytest.approx(0.880797, abs=1e-6)
    assert judge.prob_better_batch([PROMPT], [BAD], [GOOD]).tolist() == pytest.approx([1 - 0.880797], abs=1e-6)


def test_save_load_round_trip(tmp_path, micro, world_tokenizer):
    judge = GenerativeJudge(micro, world_tokenizer, template="Q {prompt} | {a} | {b} ->", yes="Y", no="N")
    before = judge.prob_better(PROMPT, GOOD, BAD)
    loaded = load_judge(save_judge(judge, tmp_path / "judge"))
    assert loaded.template == "Q {prompt} | {a} | {b} ->" and loaded.yes == "Y"
    assert loaded.prob_better(PROMPT, GOOD, BAD) == pytest.approx(before, abs=1e-6)


def test_bad_judge_settings_are_user_errors(tmp_path, micro, world_tokenizer):
    with pytest.raises(UserError, match=r"pairwise.template.*lacks \{b\}"):
        GenerativeJudge(micro, world_tokenizer, template="{prompt} {a}")
    with pytest.raises(UserError, match="start with the same token"):
        GenerativeJudge(micro, world_tokenizer, yes=" YES", no=" NO")  # both begin with the space token
    with pytest.raises(UserError, match="holds no judge.json"):
        load_judge(tmp_path)


def test_principle_goes_into_the_judge_input(tmp_path, micro, world_tokenizer):
    """The seed's "principle + response pair" input: `{principle}` becomes the principle and a newline. Without a
    principle the text is the one judges were trained on before (no change for the toy world)."""
    plain = GenerativeJudge(micro, world_tokenizer)
    assert plain.texts([PROMPT], [GOOD], [BAD]) == [f"{PROMPT}\nA: {GOOD}\nB: {BAD}\nA better: "]
    principle = "The right answer is better."
    judge = GenerativeJudge(micro, world_tokenizer, principle=principle)
    text = f"{principle}\n{PROMPT}\nA: {GOOD}\nB: {BAD}\nA better: "
    assert judge.texts([PROMPT], [GOOD], [BAD]) == [text]
    ids = torch.tensor([world_tokenizer.encode(text)])
    with torch.no_grad():
        logits = micro(input_ids=ids).logits[0, -1]
    yes, no = logits[world_tokenizer.encode("YES")[0]].item(), logits[world_tokenizer.encode("NO")[0]].item()
    p = judge.prob_better(PROMPT, GOOD, BAD)
    assert p == pytest.approx(1 / (1 + math.exp(no - yes)), abs=1e-6)  # the model read the principle
    assert abs(p - plain.prob_better(PROMPT, GOOD, BAD)) > 1e-7  # a micro model reads far context faintly
    # saved with the judge; a principle given at load time replaces it
    loaded = load_judge(save_judge(judge, tmp_path / "judge"))
    assert loaded.principle == principle and loaded.prob_better(PROMPT, GOOD, BAD) == pytest.approx(p, abs=1e-6)
    assert load_judge(tmp_path / "judge", principle="Shorter is better.").principle == "Shorter is better."
    with pytest.raises(UserError, match=r"pairwise.template"):
        GenerativeJudge(micro, world_tokenizer, template="{principle} {prompt} {a} {b} {rubric}")
    with pytest.raises(UserError, match=r"pairwise.principle is set but pairwise.template .* has no \{principle\}"):
        GenerativeJudge(micro, world_tokenizer, template="{prompt} {a} {b}", principle=principle)


def test_evaluate_judge_keeps_both_probabilities_of_every_pair():
    from reasonrl.pairwise.metrics import swap_consistency
    from reasonrl.pairwise.rm_train import evaluate_judge

    judge = OracleJudge(lambda prompt, y: float(len(y)), scale=1.0)  # longer is better: sigmoid(len difference)
    pairs = [{"prompt": "p", "chosen": "aaa", "rejected": "a"}, {"prompt": "p", "chosen": "b", "rejected": "bb"}]
    report = evaluate_judge(judge, pairs, num_bins=2)
    # sigmoid(3 - 1) = 0.880797 and sigmoid(1 - 2) = 0.268941, each with its swapped twin
    assert report["per_pair"]["p_chosen_first"] == pytest.approx([0.880797, 0.268941], abs=1e-6)
    assert report["per_pair"]["p_rejected_first"] == pytest.approx([0.119203, 0.731059], abs=1e-6)
    assert report["consistency"] == swap_consistency(torch.tensor(report["per_pair"]["p_chosen_first"]),
                                                     torch.tensor(report["per_pair"]["p_rejected_first"]))
