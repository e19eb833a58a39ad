"""EOS, stop strings, length, prefixes, banned words and tool calls, on models whose behaviour is known."""

from __future__ import annotations

import torch

from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.tiny import build_model
from reasonrl.rollout.banned import token_texts
from reasonrl.rollout.sampler import Rollout, SamplingParams, sample
from reasonrl.rollout.tools import calculator

GREEDY = dict(temperature=0.0, max_new_tokens=120)


def _response(r: Rollout, row: int) -> list[int]:
    return r.input_ids[row, r.prompt_len : r.prompt_len + int(r.response_lengths[row])].tolist()


def test_eos_ends_a_sample_and_is_trained_on(rollout_tokenizer, scripted_model, scripts):
    tok, chat, script_ids = rollout_tokenizer, scripts.chat, scripts.script_ids
    r = sample(scripted_model, tok, [chat(tok, "short"), chat(tok, "stop")], SamplingParams(**GREEDY))
    assert r.finish_reasons == ["eos", "eos"]
    assert r.response_texts == ["Yes.", "The answer is 42. END and more text."]
    for row, name in enumerate(["short", "stop"]):
        assert _response(r, row) == script_ids(tok, name)[1]  # ends with the EOS token
        last = r.prompt_len + int(r.response_lengths[row]) - 1
        assert r.input_ids[row, last] == tok.eos_token_id and r.response_mask[row, last]
    ignored = sample(scripted_model, tok, [chat(tok, "short")], SamplingParams(temperature=0.0, max_new_tokens=9,
                                                                               ignore_eos=True))
    assert ignored.finish_reasons == ["length"] and int(ignored.response_lengths[0]) == 9


def test_stop_string_truncates(rollout_tokenizer, scripted_model, scripts):
    tok, chat = rollout_tokenizer, scripts.chat
    r = sample(scripted_model, tok, [chat(tok, "stop"), chat(tok, "short")], SamplingParams(stop=("END",), **GREEDY))
    assert r.finish_reasons == ["stop", "eos"]
    text = r.response_texts[0]
    assert text.startswith("The answer is 42. END") and "more" not in text
    # the sample ends with the token that completes the stop string: without that token, no "END"
    shorter = tok.decode(_response(r, 0)[:-1], skip_special_tokens=True)
    assert "END" not in shorter
    assert r.input_ids[0, r.prompt_len + int(r.response_lengths[0]) :].eq(tok.pad_token_id).all()


def test_stop_string_in_prefix_does_not_stop(rollout_tokenizer, scripted_model, scripts):
    tok, chat = rollout_tokenizer, scripts.chat
    r = sample(scripted_model, tok, [chat(tok, "stop")], SamplingParams(stop=("answer",), **GREEDY),
               prefixes=["The answer"])
    assert r.finish_reasons == ["eos"] and r.response_texts[0] == "The answer is 42. END and more text."


def test_length_limit(rollout_tokenizer, scripted_model, scripts):
    tok, chat, script_ids = rollout_tokenizer, scripts.chat, scripts.script_ids
    r = sample(scripted_model, tok, [chat(tok, "stop")], SamplingParams(temperature=0.0, max_new_tokens=5))
    assert r.finish_reasons == ["length"] and int(r.response_lengths[0]) == 5
    assert _response(r, 0) == script_ids(tok, "stop")[1][:5]


def test_prefix_continuation(rollout_tokenizer, scripted_model, scripts):
    tok, chat, script_ids = rollout_tokenizer, scripts.chat, scripts.script_ids
    prefix = "The answer is"
    r = sample(scripted_model, tok, [chat(tok, "stop")], SamplingParams(n=2, **GREEDY), prefixes=[prefix])
    n_prefix = len(tok.encode(prefix, add_special_tokens=False))
    for row in range(2):
        assert r.response_texts[row] == "The answer is 42. END and more text."
        assert _response(r, row) == script_ids(tok, "stop")[1]
        start = r.prompt_len
        assert not r.response_mask[row, start : start + n_prefix].any()
        assert r.logprobs[row, start : start + n_prefix].eq(0).all()
        assert r.response_mask[row, start + n_prefix : start + int(r.response_lengths[row])].all()
    # prefixes change the continuation: the model copies the script after any prefix it knows
    other = sample(scripted_model, tok, [chat(tok, "stop")], SamplingParams(**GREEDY), prefixes=["The answer is 42."])
    assert other.response_texts[0] == "The answer is 42. END and more text."
    assert int(other.response_mask.sum()) < int(r.response_mask[0].sum())


def _biased_model(tokenizer, token_id: int):
    """A micro model that always wants `token_id` next: lm_head gets a bias of +20 on it (weights stay tied)."""
    model = build_model("micro", tokenizer, seed=0).eval()
    head = torch.nn.Linear(model.config.hidden_size, len(tokenizer), bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[token_id] = 20.0
    model.lm_head = head
    return model


def test_banned_word_absent_in_window_and_back_after_it(rollout_tokenizer, prompts):
    tok = rollout_tokenizer
    wait_ids = tok.encode(" Wait", add_special_tokens=False)
    assert len(wait_ids) == 1, "fixture: ' Wait' should be one token"
    model = _biased_model(tok, wait_ids[0])
    free = sample(model, tok, prompts[:1], SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True))
    assert free.response_texts[0] == " Wait" * 12
    params = SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True, banned_words=("Wait", "wait"),
                            ban_window=6)
    r = sample(model, tok, prompts[:1], params)
    tokens = _response(r, 0)
    window = tok.decode(tokens[:6], skip_special_tokens=True)
    assert "Wait" not in window and "wait" not in window
    assert tokens[6:] == wait_ids * 6  # the model wants it again once the window is over
    # banned tokens are taken out of the sampling distribution only: plain log-probs still equal teacher forcing
    with torch.no_grad():
        logp = sequence_logprobs(model, r.input_ids, r.attention_mask)
    assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-4


def _spans_token_boundary(texts: list[str], tokens: list[int], word: str) -> bool:
    """Does `word` occur in the concatenated token texts across at least one token boundary?"""
    pieces = [texts[t] for t in tokens]
    full, ends, pos = "".join(pieces), set(), 0
    for piece in pieces:
        pos += len(piece)
        ends.add(pos)
    start = full.find(word)
    while start >= 0:
        if any(start < e < start + len(word) for e in ends):
            return True
        start = full.find(word, start + 1)
    return False


def test_banned_words_any_spelling_random_model(rollout_tokenizer, random_model, prompts):
    """An untrained model spells words from random pieces; banning must catch multi-token spellings too."""
    tok, words = rollout_tokenizer, ("he", "an", "es", "e ")
    params = dict(temperature=1.5, max_new_tokens=40, n=8, seed=2, ignore_eos=True)
    control = sample(random_model, tok, prompts, SamplingParams(**params))
    texts = token_texts(tok)
    control_rows = [_response(control, i) for i in range(control.input_ids.shape[0])]
    for word in words:
        assert any(word in t for t in control.response_texts), f"control never produced {word!r}"
    assert any(_spans_token_boundary(texts, row, w) for row in control_rows for w in words)
    r = sample(random_model, tok, prompts, SamplingParams(banned_words=words, ban_window=30, **params))
    for row in range(r.input_ids.shape[0]):
        window = tok.decode(_response(r, row)[:30], skip_special_tokens=True)
        assert not any(w in window for w in words), window
    after = [tok.decode(_response(r, row)[30:], skip_special_tokens=True) for row in range(r.input_ids.shape[0])]
    assert any(w in a for a in after for w in words), "outside the window the words come back"


def test_tool_calls_are_forced_with_mask_false(rollout_tokenizer, scripted_model, scripts):
    tok, chat, calls = rollout_tokenizer, scripts.chat, []

    def math_exp(expr: str) -> str:
        calls.append(expr)
        return calculator(expr)

    r = sample(scripted_model, tok, [chat(tok, "calc")], SamplingParams(**GREEDY), tools={"math_exp": math_exp})
    assert calls == ["12*3", "2+2", "5*5"]
    assert r.finish_reasons == ["eos"] and int(r.num_tool_calls[0]) == 3
    assert r.response_texts[0] == ("Let me compute <math_exp>12*3</math_exp><result>36</result> so 36. Next "
                                   "<math_exp>2+2</math_exp><result>4</result> and <math_exp>5*5</math_exp>"
                                   "<result>25</result> done.")
    tokens, mask = _response(r, 0), r.response_mask[0, r.prompt_len : r.prompt_len + int(r.response_lengths[0])]
    forced = [t for t, m in zip(tokens, mask.tolist(), strict=True) if not m]
    expected = [t for v in (36, 4, 25) for t in tok.encode(scripts.RESULT.format(v), add_special_tokens=False)]
    assert forced == expected
    assert r.logprobs[0][~r.response_mask[0]].eq(0).all()
    with torch.no_grad():
        logp = sequence_logprobs(scripted_model, r.input_ids, r.attention_mask)
    assert (logp - r.logprobs)[r.response_mask].abs().max() < 1e-4


def test_tool_call_limit(rollout_tokenizer, scripted_model, scripts):
    tok, chat, calls = rollout_tokenizer, scripts.chat, []

    def math_exp(expr: str) -> str:
        calls.append(expr)
        return calculator(expr)

    params = SamplingParams(max_tool_calls=2, tool_result_template="<result>{}</result>", **GREEDY)
    r = sample(scripted_model, tok, [chat(tok, "calc")], params, tools={"math_exp": math_exp})
    assert calls == ["12*3", "2+2"] and int(r.num_tool_calls[0]) == 2
    text = r.response_texts[0]
    assert text.startswith("Let me compute <math_exp>12*3</math_exp><result>36</result> so 36. Next "
                           "<math_exp>2+2</math_exp><result>4</result> and <math_exp>5*5</math_exp>")
    tokens, mask = _response(r, 0), r.response_mask[0, r.prompt_len : r.prompt_len + int(r.response_lengths[0])]
    forced = [t for t, m in zip(tokens, mask.tolist(), strict=True) if not m]
    assert forced == [t for v in (36, 4) for t in tok.encode(scripts.RESULT.format(v), add_special_tokens=False)]
    # after the third closing tag nothing is forced: whatever follows (here the model imitates a result) is sampled
    third = next(k for k in range(len(tokens)) if "5*5</math_exp>" in tok.decode(tokens[:k]))
    assert mask[third:].all() and int(mask[third:].sum()) > 3
