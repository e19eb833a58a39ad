"""Reflection classifiers: rule-based against hand labels, and the LLM judge on a tiny random Llama."""

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasonrl.errors import UserError
from reasonrl.reflection.classify import (
    JUDGE_DEFINITION,
    REFLECTION_PATTERNS,
    LLMJudgeClassifier,
    ReflectionClassifier,
    RuleBasedClassifier,
    extract_equations,
    judge_prompt,
    phrase_hits,
    recomputed_steps,
)

LABELS = [json.loads(line) for line in (Path(__file__).parent / "reflection_labels.jsonl").read_text().splitlines()]
COT = "Start with 7. 7 + 5 = 12. 12 - 3 = 10. 10 * 2 = 20. Wait,"


def test_label_set_is_large_and_balanced():
    num_pos = sum(r["reflective"] for r in LABELS)
    assert len(LABELS) >= 60 and 0.4 <= num_pos / len(LABELS) <= 0.6


def test_rule_based_precision_and_recall_on_hand_labels():
    clf = RuleBasedClassifier()
    pred = [clf.classify(r["question"], r["adversarial_cot"], r["continuation"]) for r in LABELS]
    gold = [r["reflective"] for r in LABELS]
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    precision, recall = tp / sum(pred), tp / sum(gold)
    # Floors. The paper's DeepSeek-V3 classifier reaches P 0.95 / R 0.71 on GSM8K (Table 4). On this set (72
    # examples, 36 reflective) the rules measure P 29/32 = 0.91 and R 29/36 = 0.81; the same person wrote both,
    # so these are optimistic. The floors tolerate one changed verdict either way but fail at two: two more false
    # positives give 29/34 = 0.853 < 0.86, two lost true positives give 27/36 = 0.75 < 0.76.
    assert precision >= 0.86, f"precision {precision:.3f}"
    assert recall >= 0.76, f"recall {recall:.3f}"


def test_every_rule_family_is_exercised_by_a_labelled_positive():
    fired = set()
    for r in LABELS:
        if r["reflective"]:
            fired |= set(phrase_hits(r["continuation"]))
            fired |= {"recompute"} if recomputed_steps(r["adversarial_cot"], r["continuation"]) else set()
    assert fired == {name for name, _ in REFLECTION_PATTERNS} | {"recompute"}


def test_trigger_in_the_prompt_does_not_count():
    clf = RuleBasedClassifier()
    assert not clf.classify("q", COT, "The answer is \\boxed{20}.")  # COT ends with "Wait,"
    assert not clf.classify("q", "I made a mistake. 12 - 3 = 10.", "So the answer is 20.")  # only the continuation
    assert clf.classify("q", COT, "I made a mistake, the answer is 18.")


def test_recompute_rule():
    # 12 - 3 is recomputed as 9 (the CoT says 10): reflection; 9 * 2 = 18 is new work, 10 * 2 = 20 a repeat
    assert recomputed_steps(COT, "12 - 3 = 9. 9 * 2 = 18.") == ["12-3"]
    assert recomputed_steps(COT, "10 * 2 = 20. 20 + 1 = 21.") == []
    assert RuleBasedClassifier().reasons("q", COT, "12 - 3 = 9.") == ["recompute:12-3"]
    assert not RuleBasedClassifier(recompute=False).classify("q", COT, "12 - 3 = 9.")


def test_extract_equations():
    text = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 x 2 = $18. Then 1,000 + 5 = 1,005 and "
            "six x 2 = 12.")
    eqs = extract_equations(text)
    assert ("16-3-4", Fraction(9)) in eqs  # annotation (and the written copy)
    assert ("9*2", Fraction(18)) in eqs  # "x" as times, "$" dropped
    assert ("1000+5", Fraction(1005)) in eqs  # thousands commas
    assert all(expr != "2" for expr, _ in eqs)  # "six x 2" has no number on the left: skipped
    assert extract_equations("Start with 7. 7 + 5 = 12. 12 - 3 = 10.") == [("7+5", 12), ("12-3", 10)]


@pytest.mark.parametrize(("text", "rule"), [("Oops, wrong sign.", "mistake"), ("That isn't right.", "wrong"),
                                            ("Let me double-check the sum.", "recheck"),
                                            ("Let's go back to step one.", "let_me"),
                                            ("Hold on.", "hold_on"), ("It should be 18.", "correction"),
                                            ("18, not 9.", "correction"), ("No, it is 9.", "no")])
def test_phrase_rules(text, rule):
    assert rule in phrase_hits(text)


@pytest.mark.parametrize("text", ["Wow, that's a lot of money!", "The answer is 20.", "20 pens is plenty.",
                                  "Great, she is rich.", "Then 9 * 2 = 18 dollars.", "Nothing more to add."])
def test_phrase_rules_ignore_non_reflection(text):
    assert phrase_hits(text) == []


# ---------------------------------------------------------------- LLM judge


@pytest.fixture(scope="module")
def judge_parts():
    corpus = [JUDGE_DEFINITION, judge_prompt("q", COT, "12 - 3 = 9.")] + ["Reflection: Yes", "Reflection: No"] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)
    return LlamaForCausalLM(cfg).eval(), tokenizer


def test_judge_prompt_contains_the_definition_and_the_texts():
    prompt = judge_prompt("How many pens?", COT, "12 - 3 = 9.")
    assert prompt.startswith(JUDGE_DEFINITION)
    for phrase in ("acknowledges or points out a mistake", "re-evaluates earlier steps", "emotional",
                   "restating the final answer", "How many pens? " + COT, "Answer: 12 - 3 = 9.\nReflection:"):
        assert phrase in prompt
    assert prompt.endswith("Reflection:")


def test_llm_judge_reads_the_yes_and_no_logits(judge_parts):
    model, tokenizer = judge_parts
    judge = LLMJudgeClassifier(model, tokenizer)
    assert isinstance(judge, ReflectionClassifier)
    assert judge.yes_id == tokenizer.encode(" Yes")[0] != judge.no_id == tokenizer.encode(" No")[0]
    verdict = judge.classify("How many pens?", COT, "12 - 3 = 9.")
    assert isinstance(verdict, bool)
    # P(Yes) is the softmax of the two next-token logits after the prompt
    ids = tokenizer(judge_prompt("How many pens?", COT, "12 - 3 = 9."), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    expected = torch.softmax(torch.stack([logits[judge.yes_id], logits[judge.no_id]]), -1)[0].item()
    p = judge.prob_yes("How many pens?", COT, "12 - 3 = 9.")
    assert p == pytest.approx(expected, abs=1e-6) and verdict == (p > 0.5)
    # swapping the output rows of " Yes" and " No" swaps the probabilities, so the verdict flips
    with torch.no_grad():
        w = model.lm_head.weight
        w[[judge.yes_id, judge.no_id]] = w[[judge.no_id, judge.yes_id]]
    try:
        assert judge.prob_yes("How many pens?", COT, "12 - 3 = 9.") == pytest.approx(1 - p, abs=1e-6)
        assert judge.classify("How many pens?", COT, "12 - 3 = 9.") == (1 - p > 0.5)
    finally:
        with torch.no_grad():
            w[[judge.yes_id, judge.no_id]] = w[[judge.no_id, judge.yes_id]]


def test_llm_judge_truncates_from_the_left(judge_parts):
    model, tokenizer = judge_parts
    full = LLMJudgeClassifier(model, tokenizer)
    short = LLMJudgeClassifier(model, tokenizer, max_length=16)
    ids = tokenizer(judge_prompt("q", COT, "12 - 3 = 9."), return_tensors="pt")["input_ids"][:, -16:]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    expected = torch.softmax(torch.stack([logits[full.yes_id], logits[full.no_id]]), -1)[0].item()
    assert short.prob_yes("q", COT, "12 - 3 = 9.") == pytest.approx(expected, abs=1e-6)


def test_llm_judge_rejects_a_tokenizer_that_cannot_tell_yes_from_no(judge_parts):
    model, _ = judge_parts
    tok = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(UserError, match="same first token"):
        LLMJudgeClassifier(model, PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>"))
