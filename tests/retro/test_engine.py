"""The one-step ban through the real engine: a model that always wants to write " Wait" gets it banned for
exactly the next step, then writes it again."""

from __future__ import annotations

import torch

from reasonrl.model.tiny import build_model
from reasonrl.retro.search import banned_first_step, engine_continue
from reasonrl.rollout.sampler import SamplingParams


def _biased_model(tokenizer, bias: dict[int, float]):
    """A micro model whose lm_head adds `bias[token]` to the logits (weights stay tied)."""
    model = build_model("micro", tokenizer, seed=0).eval()
    head = torch.nn.Linear(model.config.hidden_size, len(tokenizer), bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        for token, b in bias.items():
            head.bias[token] = b
    model.lm_head = head
    return model


def test_engine_bans_keywords_for_exactly_one_step(world_tokenizer):
    tok = world_tokenizer
    (wait,) = tok.encode(" Wait", add_special_tokens=False)
    (period,) = tok.encode(".", add_special_tokens=False)
    # " Wait" is the favourite, "." the runner-up: banned, the model ends its step at once with "."
    model = _biased_model(tok, {wait: 30.0, period: 20.0})
    cont = engine_continue(model, tok)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Ana has 3 pens."}], tokenize=False,
                                     add_generation_prompt=True)
    params = SamplingParams(temperature=0.0, max_new_tokens=4)
    assert cont([prompt], ["Start with 3."], params) == [" Wait" * 4]  # free decoding: Wait, Wait, ...
    texts = banned_first_step(cont, [prompt, prompt], ["Start with 3.", "Start with 3. 3 + 1 = 4."], params,
                              ("Wait",), ".")
    assert texts == ["." + " Wait" * 4] * 2  # one step without it, then it is back
