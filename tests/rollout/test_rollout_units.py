"""Small pieces of the rollout engine: banned-word tables, stop matching, tools, the KV cache, input errors."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from reasonrl.errors import UserError
from reasonrl.rollout.banned import BannedWords
from reasonrl.rollout.cache import PreallocatedLayer
from reasonrl.rollout.sampler import SamplingParams, sample
from reasonrl.rollout.tools import calculator, call_input, run_tool
from reasonrl.rollout.triggers import could_end, new_match, tail_tokens

# a toy vocabulary: token i has text TEXTS[i]
TEXTS = ["", "W", "a", "i", "t", "ait", "Wait", " Wai", "Waiting", "x", " ", "it", "Al", "ter"]


def test_banned_words_tables():
    bw = BannedWords(["Wait"], TEXTS)
    assert sorted(bw.always.tolist()) == [6, 8]  # "Wait", "Waiting" contain the word
    assert sorted(bw.token_ids("x W")) == [5]  # "W" + "ait"
    assert sorted(bw.token_ids("Wa")) == [11]  # "Wa" + "it"
    assert sorted(bw.token_ids(" Wai")) == [4, 13]  # " Wai" + "t", " Wai" + "ter"
    assert bw.token_ids("x") == []
    assert bw.advance("Wa", "it") == "ait"  # keeps len("Wait") - 1 characters


def test_banned_words_never_spelled_by_constrained_random_walks():
    bw = BannedWords(["Wait", "ai"], TEXTS)
    rng = random.Random(0)
    for _ in range(300):
        text, context = "", ""
        for _ in range(12):
            mask = bw.mask([context], len(TEXTS), torch.device("cpu"))[0]
            allowed = [i for i in range(1, len(TEXTS)) if not mask[i]]
            t = rng.choice(allowed)
            text += TEXTS[t]
            context = bw.advance(context, TEXTS[t])
        assert "Wait" not in text and "ai" not in text, text
    unconstrained = "".join(rng.choice(TEXTS) for _ in range(200))
    assert "ai" in unconstrained  # the walk would spell it without the ban


def test_banned_mask_rows_outside_window():
    bw = BannedWords(["Wait"], TEXTS)
    mask = bw.mask(["W", None], len(TEXTS), torch.device("cpu"))
    assert mask[0].nonzero()[:, 0].tolist() == [5, 6, 8] and not mask[1].any()


def test_new_match_only_counts_needles_ending_in_new_text():
    assert new_match("The ans", "The answer", ["answer"]) == "answer"
    assert new_match("The answer", "The answer is", ["answer"]) is None  # seen before
    assert new_match("x <", "x </a>", ["</a>", "</b>"]) == "</a>"
    assert new_match("", "END", ["END"]) == "END"
    assert tail_tokens(["ab", "</math_exp>"]) == 12


def test_could_end_prefilter():
    texts = ["", "END", "x", "D.", "\ufffd", "</a>"]
    assert could_end(["END", "</a>"], texts) == [True, True, False, True, True, True]
    assert could_end(["a "], texts) == [True] * 6  # whitespace at the end: no prefilter


def test_call_input_and_run_tool():
    text = "a <math_exp>1+1</math_exp> b <math_exp>2*3</math_exp>"
    assert call_input(text, "math_exp") == "2*3"
    assert call_input("no opening 2*3</math_exp>", "math_exp") is None
    tools = {"math_exp": calculator, "search_query": lambda q: f"found {q}"}
    assert run_tool(tools, "</math_exp>", text, "<result>{}</result>") == "<result>6</result>"
    assert run_tool(tools, "</search_query>", "<search_query>cats</search_query>", "[{}]") == "[found cats]"


def test_calculator_is_arithmetic_only():
    assert calculator("12*3") == "36"
    assert calculator(" (7 + 5) * 2 - 3 ") == "21"
    assert calculator("7/2") == "3.5"
    assert calculator("-4 + 1") == "-3"
    assert calculator("1/3") == "0.3333333333"
    for bad in ("__import__('os')", "2**100", "x + 1", "1/0", "[1]", "9" * 20, "1e999", "1+" * 150 + "1"):
        assert calculator(bad).startswith("error:"), bad


def test_preallocated_layer_writes_in_place_and_selects_rows():
    layer = PreallocatedLayer(capacity=5)
    k1 = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    keys, values = layer.update(k1, -k1)
    assert keys.shape == (2, 1, 3, 2) and torch.equal(keys, k1) and torch.equal(values, -k1)
    k2 = torch.full((2, 1, 1, 2), 9.0)
    keys, _ = layer.update(k2, k2)
    assert keys.shape == (2, 1, 4, 2) and torch.equal(keys[:, :, 3], k2[:, :, 0]) and layer.get_seq_length() == 4
    assert layer.get_mask_sizes(1) == (5, 0)
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys[0, :, :3], k1[1])
    with pytest.raises(AssertionError, match="overflow"):
        layer.update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_k=-2), "top_k"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(n=0), "n must"),
        (dict(stop=("",)), "stop"),
        (dict(tool_result_template="<r></r>"), "tool_result_template"),
        (dict(backend="tgi"), "backend"),
    ],
)
def test_bad_params_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        SamplingParams(**kwargs)


def test_bad_inputs_are_user_errors(rollout_tokenizer, random_model, prompts):
    with pytest.raises(UserError, match="prefixes"):
        sample(random_model, rollout_tokenizer, prompts, SamplingParams(), prefixes=["a"])
    with pytest.raises(UserError, match="tool tag"):
        sample(random_model, rollout_tokenizer, prompts, SamplingParams(), tools={"</x>": calculator})
    with pytest.raises(UserError, match="empty"):
        sample(random_model, rollout_tokenizer, [], SamplingParams())


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_missing_is_a_clear_user_error(rollout_tokenizer, random_model, prompts):
    with pytest.raises(UserError, match="needs the vllm package"):
        sample(random_model, rollout_tokenizer, prompts, SamplingParams(backend="vllm"))
