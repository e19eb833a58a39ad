"""The generic field checks (config/checks.py): every number has a range, every float is finite unless its docstring
says otherwise, every text field is valid Unicode; each refusal is one UserError naming the key."""

from __future__ import annotations

import typing

import pytest

from reasonrl.config import Config, checks, load_config
from reasonrl.errors import UserError


def _fields() -> list[tuple[str, type, bool]]:
    """(section.key, scalar type, is a list) of every field."""
    out = []
    for section, cls in typing.get_type_hints(Config).items():
        for name, tp in typing.get_type_hints(cls).items():
            is_list = typing.get_origin(tp) is list
            out.append((f"{section}.{name}", typing.get_args(tp)[0] if is_list else tp, is_list))
    return out


NUMERIC = [(k, tp, lst) for k, tp, lst in _fields() if tp in (int, float)]
FLOATS = [(k, lst) for k, tp, lst in NUMERIC if tp is float]


def test_every_field_has_a_docstring_and_every_number_a_range():
    keys = {k for k, _, _ in _fields()}
    assert set(checks.field_docs()) == keys  # a docstring under every field (STYLE.md)
    assert {k for k, _, _ in NUMERIC} == set(checks.RANGES)  # no number without a range, no stale range
    assert len(FLOATS) >= 37


@pytest.mark.parametrize("key, is_list", FLOATS, ids=[k for k, _ in FLOATS])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_every_float_field_refuses_nan_and_inf(key, is_list, bad):
    value = f"[{bad}, 0.5]" if is_list else bad
    with pytest.raises(UserError) as e:
        load_config(None, [f"--{key}={value}"])
    message = str(e.value)
    assert message.startswith(f"command line: {key}") and message.endswith(f"got {bad.lstrip('+')}"), message


def test_a_docstring_can_allow_inf(monkeypatch):
    docs = dict(checks.field_docs())
    docs["reward.length_penalty"] += " May be inf: a hard wall."
    monkeypatch.setattr(checks, "field_docs", lambda: docs)
    assert load_config(None, ["--reward.length_penalty=-inf"]).reward.length_penalty == float("-inf")
    with pytest.raises(UserError, match="reward.length_penalty must be a finite number, got nan"):
        load_config(None, ["--reward.length_penalty=nan"])  # "inf" does not let NaN through: no range holds NaN
    assert checks.allows_nonfinite("0 disables; may be NaN") and not checks.allows_nonfinite("a finite number")


@pytest.mark.parametrize("override, needle", [
    ("--swirl.judge_noise=1.5", "swirl.judge_noise must lie in [0, 1], got 1.5"),
    ("--swirl.judge_noise=-0.1", "swirl.judge_noise must lie in [0, 1], got -0.1"),
    ("--pairwise.label_scale=-1", "pairwise.label_scale must be a finite number >= 0, got -1.0"),
    ("--pairwise.num_anchors=0", "pairwise.num_anchors must be >= 1, got 0"),
    ("--swirl.kb_people=2", "swirl.kb_people must be >= 3"),
    ("--swirl.math_difficulty=9", "swirl.math_difficulty must be one of 1, 2, 3, 4, 5, got 9"),
    ("--rollout.top_p=0", "rollout.top_p must lie in (0, 1], got 0.0"),
    ("--optim.betas=[0.9, 1.0]", "optim.betas[1] must lie in [0, 1), got 1.0"),
    ("--eval.pass_k=[1, 0]", "eval.pass_k[1] must be >= 1, got 0"),
    ("--train.seed=-1", "train.seed must be >= 0, got -1"),
    ("--rl.alpha=0", "rl.alpha must be a finite number > 0, got 0.0"),
    ("--data.prompt_template=\udcff{prompt}", "data.prompt_template is not valid Unicode text (a lone surrogate "
     "'\\udcff' at character 0"),
])
def test_out_of_range_values_name_the_key(override, needle):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("override", ["--swirl.judge_noise=1", "--swirl.judge_noise=0", "--rollout.top_p=1",
                                      "--rollout.temperature=0", "--swirl.kb_people=3", "--optim.betas=[0, 0.999]",
                                      "--reward.wrong=-0.5", "--pairwise.scale=-2"])
def test_values_at_the_edges_of_their_range_pass(override):
    load_config(None, [override])


def test_every_recipe_passes():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))
    assert len(recipes) > 10
    for path in recipes:
        load_config(path)
