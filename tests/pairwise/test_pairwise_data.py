"""Swap augmentation, the synthetic preference world's promises, and the preference JSONL loader's errors."""

import json
import math
import re

import pytest

from reasonrl.errors import UserError
from reasonrl.pairwise.rm_train import Example, swap_augment
from reasonrl.pairwise.world import OFFSET_ITEMS, has_recheck, load_preferences, preference_set, prompt_offset
from reasonrl.tasks.synthetic import verify

PAIRS = [{"prompt": "p1", "chosen": "c1", "rejected": "r1"}, {"prompt": "p2", "chosen": "c2", "rejected": "r2"}]


def test_swap_augmentation_adds_the_flipped_copy():
    rows = swap_augment(PAIRS, swap=True)
    assert rows == [Example("p1", "c1", "r1", 1), Example("p1", "r1", "c1", 0),
                    Example("p2", "c2", "r2", 1), Example("p2", "r2", "c2", 0)]


def test_without_swap_each_pair_once_in_a_biased_order():
    assert swap_augment(PAIRS, swap=False, chosen_first=1.0) == [Example("p1", "c1", "r1", 1),
                                                                 Example("p2", "c2", "r2", 1)]
    many = [{"prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(2000)]
    rows = swap_augment(many, swap=False, chosen_first=0.75, seed=1)
    assert len(rows) == 2000
    assert sum(r.label for r in rows) / 2000 == pytest.approx(0.75, abs=0.03)  # 3 sigma at n = 2000 is 0.029
    assert all((r.a, r.b) == ("c", "r") if r.label else (r.a, r.b) == ("r", "c") for r in rows)


def test_preference_world_quality_labels_and_offset():
    pairs = preference_set(1500, seed=0, label_scale=3.0, offset=1.0, recheck_cost=0.5)
    for p in pairs[:200]:
        # hidden quality: correct under the world's own verifier, minus 0.5 for a redundant re-check
        for side in ("chosen", "rejected"):
            assert p[f"quality_{side}"] == float(verify(p[side], p["answer"])) - 0.5 * has_recheck(p[side])
        assert verify(p["anchor"], p["answer"]) and not has_recheck(p["anchor"])  # the anchor is the gold answer
        assert p["offset"] == (1.0 if any(f"many {i} " in p["prompt"] for i in OFFSET_ITEMS) else 0.0)
        # the labeler's utility: right answer + offset on re-checks (blind to their cost)
        u_c = float(verify(p["chosen"], p["answer"])) + p["offset"] * has_recheck(p["chosen"])
        u_r = float(verify(p["rejected"], p["answer"])) + p["offset"] * has_recheck(p["rejected"])
        assert p["p_chosen"] == pytest.approx(1 / (1 + math.exp(-3.0 * (u_c - u_r))))
    # labels are noisy but informative: the answer with the right result usually wins
    differ = [p for p in pairs if verify(p["chosen"], p["answer"]) != verify(p["rejected"], p["answer"])]
    assert 0.8 < sum(verify(p["chosen"], p["answer"]) for p in differ) / len(differ) < 0.99

    def recheck_wins(with_offset: bool) -> float:
        """Among pairs equally correct that differ in a re-check, how often the re-check was chosen."""
        sel = [p for p in pairs if verify(p["chosen"], p["answer"]) == verify(p["rejected"], p["answer"])
               and (p["offset"] > 0) == with_offset and has_recheck(p["chosen"]) != has_recheck(p["rejected"])]
        return sum(has_recheck(p["chosen"]) for p in sel) / len(sel)
    # the offset: re-checks win on offset prompts (sigmoid(3 * 1.0) = 0.95), elsewhere a coin flip
    assert recheck_wins(True) > 0.88 and abs(recheck_wins(False) - 0.5) < 0.12
    assert prompt_offset("How many coins does Dan have now?", 0.6) == 0.6
    assert prompt_offset("How many beads does Dan have now?", 0.6) == 0.0


def test_preference_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(PAIRS[0]) + "\n" + json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(UserError, match=r"prefs.jsonl:2: field 'rejected'"):
        load_preferences(path)
    path.write_text("{not json\n")
    with pytest.raises(UserError, match=r"prefs.jsonl:1: not valid JSON"):  # the JSONL loader's message
        load_preferences(path)
    with pytest.raises(UserError, match="file not found"):
        load_preferences(tmp_path / "missing.jsonl")


def test_wrong_candidates_visible_or_carried():
    # a visible error: the chain is right but the box is off; a carried one: a step is off and the box follows it
    def last_result(text: str) -> str:
        return re.findall(r"= (-?\d+)\.", text)[-1]

    for hidden, box_follows in ((0.0, False), (1.0, True)):
        pairs = preference_set(40, wrong_fraction=1.0, recheck_fraction=0.0, hidden_errors=hidden)
        for p in pairs:
            for y in (p["chosen"], p["rejected"]):
                assert not verify(y, p["answer"])
                assert (f"\\boxed{{{last_result(y)}}}" in y) == box_follows
