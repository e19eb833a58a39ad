"""Fixtures for the rollout tests: a tokenizer, an untrained micro model, and a micro model overfit on scripts.

The scripted model is trained for a few seconds on a handful of fixed (prompt, response) token sequences until
greedy decoding reproduces them exactly, so tests can rely on it to emit EOS, a stop string or tool calls at
known places. Responses are built from separately encoded segments, the way the sampler forces tool output.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from reasonrl.model.tiny import build_model
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.tasks import synthetic

EXTRA_TEXTS = [
    "Let me compute <math_exp>12*3</math_exp><result>36</result> and <search_query>capital</search_query>",
    "Wait, wait, WAIT. Alternatively, alternatively, ALTERNATIVELY.",
] * 20

RESULT = "<result>{}</result>"
# prompt -> response segments; RESULT segments are what the sampler forces after a tool call
SCRIPTS: dict[str, list[str]] = {
    "calc": ["Let me compute <math_exp>12*3</math_exp>", RESULT.format(36), " so 36. Next <math_exp>2+2</math_exp>",
             RESULT.format(4), " and <math_exp>5*5</math_exp>", RESULT.format(25), " done."],
    "stop": ["The answer is 42. END and more text."],
    "short": ["Yes."],
}


def chat(tokenizer, text: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def script_ids(tokenizer, name: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids ending in EOS) of a script, responses encoded segment by segment."""
    prompt = tokenizer.encode(chat(tokenizer, name), add_special_tokens=False)
    response = [t for seg in SCRIPTS[name] for t in tokenizer.encode(seg, add_special_tokens=False)]
    return prompt, response + [tokenizer.eos_token_id]


@pytest.fixture(scope="session")
def scripts():
    """The script helpers, for test modules (which cannot import this conftest by name)."""
    return SimpleNamespace(RESULT=RESULT, SCRIPTS=SCRIPTS, chat=chat, script_ids=script_ids)


@pytest.fixture(scope="session")
def rollout_tokenizer():
    records = synthetic.generate(500, seed=0, difficulty=2, slip_fraction=0.3, alt_fraction=0.3)
    return train_tokenizer([r["prompt"] + " " + r["response"] for r in records] + EXTRA_TEXTS, vocab_size=512)


@pytest.fixture(scope="session")
def random_model(rollout_tokenizer):
    return build_model("micro", rollout_tokenizer, seed=0).eval()


@pytest.fixture(scope="session")
def prompts(rollout_tokenizer):
    records = synthetic.generate(3, seed=1, difficulty=2)
    return [chat(rollout_tokenizer, r["prompt"]) for r in records]


@pytest.fixture(scope="session")
def scripted_model(rollout_tokenizer):
    tok = rollout_tokenizer
    model = build_model("micro", tok, seed=1)
    pairs = [script_ids(tok, name) for name in SCRIPTS]
    width = max(len(p) + len(r) for p, r in pairs)
    ids = torch.full((len(pairs), width), tok.pad_token_id)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros(len(pairs), width, dtype=torch.long)
    for i, (p, r) in enumerate(pairs):
        ids[i, : len(p) + len(r)], mask[i, : len(p) + len(r)] = torch.tensor(p + r), 1
        labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)  # learn the responses only
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(300):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 2e-3:
            break
    model.eval()
    assert loss.item() < 2e-2, f"scripted model failed to overfit (loss {loss.item():.4f})"
    return model
