"""Your own reward (reasonrl/reward/custom.py, user_code.py, combine.py, check.py): a file or module path or a Python
callable, told apart by signature; TRL's and verl's calling conventions with hand values; several kinds as a weighted
sum; the dry call's one-line refusals; and the run's guard, which turns a failure at step N into one line and the
user's own frames."""

from __future__ import annotations

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.errors import UserCodeError, UserError
from reasonrl.reward import Responses, Scored, build_reward
from reasonrl.reward.check import RewardGuard, dry_run
from reasonrl.reward.user_code import shape

RECORDS = [{"prompt": "What is 1 + 1?", "answer": "2", "unit": "apples"},
           {"prompt": "What is 2 + 2?", "answer": "4", "unit": "pens"}]

REWARDS_PY = '''
import math

seen = {}

def format_bonus(prompts, completions, **columns):
    seen["args"] = {"prompts": prompts, "completions": completions, **columns}
    return [0.5 if "\\\\boxed{" in c else 0.0 for c in completions]

def unit_named(completions, unit):  # no **kwargs: gets only what it names
    return [1.0 if u in c else 0.0 for c, u in zip(completions, unit)]

def needs_missing(completions, solution):
    return [0.0] * len(completions)

def verl_score(data_source, solution_str, ground_truth, extra_info=None):
    seen.setdefault("verl", []).append((data_source, ground_truth, extra_info))
    return {"score": float(ground_truth in solution_str), "hit": 2.0}

def boom(prompts, completions, **kw):
    return helper(completions)

def helper(completions):
    raise ValueError(f"cannot score {len(completions)} completions")

def short(prompts, completions, **kw):
    return [1.0]

def nan(prompts, completions, **kw):
    return [math.nan] * len(completions)

def words(prompts, completions, **kw):
    return ["high"] * len(completions)

def build_length(cfg, *, tokenizer=None, device=None):
    from reasonrl.reward import Scored
    import torch
    def reward(responses):
        return Scored(scores=responses.lengths.float() / 10, correct=None, stats={"mean_len": 1.0})
    return reward

NOT_CALLABLE = 3
'''


def _responses(texts: list[str], records: list[dict]) -> Responses:
    n = len(texts)
    return Responses(records=records, prompts=[f"<fmt>{r['prompt']}" for r in records], texts=texts,
                     lengths=torch.tensor([len(t) for t in texts]), truncated=torch.zeros(n, dtype=torch.bool),
                     group=torch.arange(n))


@pytest.fixture
def rewards_dir(tmp_path, monkeypatch):
    """A working directory holding rewards.py; paths in reward.kind are relative to it."""
    (tmp_path / "rewards.py").write_text(REWARDS_PY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cfg(*overrides: str):
    return load_config(None, ["--rollout.num_samples=2", *overrides])


def _user_module(reward):
    """The loaded rewards.py module of a built reward (to read what its functions saw)."""
    import sys

    fn = reward.parts[-1].reward.fn
    return sys.modules[fn.__module__]


# ------------------------------------------------------------------------------------------------------------ shapes


def test_shape_is_told_by_the_parameter_names():
    def builder(cfg, *, tokenizer=None, device=None): ...
    def trl(prompts, completions, **kwargs): ...
    def trl_short(completions, **kwargs): ...  # TRL passes everything by keyword: prompts may be left out
    def verl(data_source, solution_str, ground_truth, extra_info=None): ...
    def reward(responses): ...

    class Builder:
        def __init__(self, cfg, *, tokenizer, device): ...

    assert [shape(f, "x") for f in (builder, trl, trl_short, verl, reward, Builder)] == \
        ["builder", "trl", "trl", "verl", "reward", "builder"]


@pytest.mark.parametrize("fn, needle", [
    (lambda completions, solution_str, ground_truth: 0, "fits several shapes (trl, verl)"),
    (lambda a, b: 0, "its parameters (a, b) fit no reward shape"),
    (lambda: 0, "its parameters (none) fit no reward shape"),
])
def test_a_signature_that_fits_no_shape_or_several_is_one_line(fn, needle):
    with pytest.raises(UserError, match=None) as e:
        shape(fn, "'f'")
    assert needle in str(e.value) and str(e.value).startswith("reward 'f': ") and "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------------- loading paths


@pytest.mark.parametrize("kind, needle", [
    ("missing.py:f", "reward 'missing.py:f': no such file"),
    ("rewards.py:nope", "rewards.py has no 'nope' (its callables: "),
    ("rewards.py:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function"),
    ("broken.py:f", "importing broken.py raised SyntaxError"),
    ("no_such_pkg.mod:f", "no module named 'no_such_pkg'"),
    ("nope", "reward.kind 'nope' is not one of length_penalty, pairwise, process, verifier"),
    ("rewards.py:2x", "expected a built-in kind, 'path/to/file.py:name' or 'package.module:name'"),
])
def test_a_kind_that_cannot_be_loaded_is_one_line(rewards_dir, kind, needle):
    (rewards_dir / "broken.py").write_text("def f(:\n")
    with pytest.raises(UserError) as e:
        build_reward(_cfg(f"--reward.kind={kind}"))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_module_path_is_imported(rewards_dir, monkeypatch):
    (rewards_dir / "my_pkg").mkdir()
    (rewards_dir / "my_pkg" / "__init__.py").write_text("")
    (rewards_dir / "my_pkg" / "scores.py").write_text("def bonus(prompts, completions, **kw):\n"
                                                      "    return [float(len(c)) for c in completions]\n")
    monkeypatch.syspath_prepend(str(rewards_dir))
    scored = build_reward(_cfg("--reward.kind=my_pkg.scores:bonus"))(_responses(["ab", "abcd"], RECORDS))
    assert scored.scores.tolist() == [2.0, 4.0] and scored.correct is None


# ------------------------------------------------------------------------------------------------ calling shapes


def test_trl_function_gets_raw_prompts_completions_and_every_column(rewards_dir):
    reward = build_reward(_cfg("--reward.kind=rewards.py:format_bonus"))
    scored = reward(_responses(["so \\boxed{2}", "no idea"], RECORDS))
    assert scored.scores.tolist() == [0.5, 0.0] and scored.correct is None
    seen = _user_module(reward).seen["args"]
    assert seen["prompts"] == ["What is 1 + 1?", "What is 2 + 2?"]  # as in the data, not the formatted prompt
    assert seen["completions"] == ["so \\boxed{2}", "no idea"]
    assert seen["answer"] == ["2", "4"] and seen["unit"] == ["apples", "pens"]  # columns as lists, aligned


def test_a_function_without_kwargs_gets_only_what_it_names(rewards_dir):
    scored = build_reward(_cfg("--reward.kind=rewards.py:unit_named"))(_responses(["3 apples", "4 apples"], RECORDS))
    assert scored.scores.tolist() == [1.0, 0.0]
    with pytest.raises(UserError, match="its parameter\\(s\\) solution match nothing it is given \\(answer, "
                                        "completions, prompts, unit\\)"):
        build_reward(_cfg("--reward.kind=rewards.py:needs_missing"))(_responses(["a", "b"], RECORDS))


def test_verl_function_is_called_per_completion_with_its_arguments(rewards_dir):
    records = [{**RECORDS[0], "data_source": "gsm8k"}, {**RECORDS[1], "extra_info": {"index": 7}}]
    reward = build_reward(_cfg("--reward.kind=rewards.py:verl_score"))
    scored = reward(_responses(["it is 2", "it is 5"], records))
    assert scored.scores.tolist() == [1.0, 0.0]
    assert scored.stats == {"hit": 2.0}  # a dict's other numbers are statistics
    calls = _user_module(reward).seen["verl"]
    assert calls[0] == ("gsm8k", "2", {"unit": "apples", "data_source": "gsm8k"})  # the record's data_source
    assert calls[1] == ("synthetic", "4", {"index": 7})  # else data.source; its own extra_info when it has one


def test_a_builder_in_a_file_is_built_and_used(rewards_dir):
    scored = build_reward(_cfg("--reward.kind=rewards.py:build_length"))(_responses(["abcde", "ab"], RECORDS))
    assert scored.scores.tolist() == pytest.approx([0.5, 0.2]) and scored.stats == {"mean_len": 1.0}


def test_a_python_callable_is_a_reward_too():
    def exclaim(completions, **kw):
        return [c.count("!") for c in completions]

    scored = build_reward(_cfg(), kinds=exclaim)(_responses(["a!!", "b"], RECORDS))
    assert scored.scores.tolist() == [2.0, 0.0]


# -------------------------------------------------------------------------------------------------- several kinds


def test_several_kinds_are_a_weighted_sum_logged_each(rewards_dir):
    cfg = _cfg('--reward.kinds=["verifier", "rewards.py:format_bonus"]', "--reward.weights=[1.0, 2.0]")
    reward = build_reward(cfg)
    scored = reward(_responses(["\\boxed{2}", "\\boxed{5}", "2"], [RECORDS[0]] * 3))
    # verifier +1 / -1 / -1 (the last has no answer); bonus 0.5 / 0.5 / 0 -> total 1 + 1, -1 + 1, -1 + 0
    assert scored.scores.tolist() == [2.0, 0.0, -1.0]
    assert scored.correct.tolist() == [True, False, False]  # from the verifier
    assert scored.stats == pytest.approx({"verifier": -1 / 3, "verifier/answered": 2 / 3, "format_bonus": 1 / 3})
    assert reward.name == "'verifier' + 'rewards.py:format_bonus'"


def test_correct_is_the_and_of_the_kinds_that_judge_it(rewards_dir):
    def half(responses):
        return Scored(scores=torch.zeros(len(responses.texts)), correct=torch.tensor([True, False, True]))

    cfg = _cfg("--reward.weights=[1, 1, 1]")
    scored = build_reward(cfg, kinds=["verifier", half, "rewards.py:format_bonus"])(
        _responses(["\\boxed{2}", "\\boxed{2}", "\\boxed{3}"], [RECORDS[0]] * 3))
    assert scored.correct.tolist() == [True, False, False]
    none = build_reward(_cfg("--reward.weights=[1, 1]"), kinds=["rewards.py:format_bonus", "rewards.py:unit_named"])
    assert none(_responses(["a", "b"], RECORDS)).correct is None


def test_kinds_logged_under_one_name_are_refused(rewards_dir):
    with pytest.raises(UserError, match="format_bonus would be logged twice"):
        build_reward(_cfg('--reward.kinds=["rewards.py:format_bonus", "./rewards.py:format_bonus"]'))


# ---------------------------------------------------------------------------------------------------- dry call


@pytest.mark.parametrize("kind, needle", [
    ("rewards.py:boom", "reward 'rewards.py:boom' raised on a dry call on the first 2 records: ValueError: cannot "
                        "score 4 completions (at "),
    ("rewards.py:short", "reward 'rewards.py:short': returned 1 scores for 4 completions"),
    ("rewards.py:nan", "reward 'rewards.py:nan': returned a non-finite score (nan) for response 0 of 4"),
    ("rewards.py:words", "reward 'rewards.py:words': returned a str ('high') for completion 0, not a number"),
])
def test_a_bad_function_fails_the_dry_call_in_one_line(rewards_dir, world_tokenizer, kind, needle):
    cfg = _cfg(f"--reward.kind={kind}", "--reward.on_error=-1")  # the dry call fails even with a fallback score
    with pytest.raises(UserError) as e:
        dry_run(build_reward(cfg), RECORDS, cfg, tokenizer=world_tokenizer)
    assert needle in str(e.value) and "\n" not in str(e.value)
    if kind == "rewards.py:boom":
        line = REWARDS_PY.splitlines().index('    raise ValueError(f"cannot score {len(completions)} completions")') + 1
        assert str(e.value).endswith(f"{rewards_dir / 'rewards.py'}:{line})")  # where it raised: the innermost frame


def test_no_judge_of_correctness_refuses_what_needs_one_and_warns_otherwise(rewards_dir, world_tokenizer, capsys):
    for overrides, needle in ((["--rl.pos_nll_coef=0.1"], "rl.pos_nll_coef = 0.1 trains on correct responses"),
                              (["--rl.dynamic_sampling=true"], "rl.dynamic_sampling keeps groups by accuracy")):
        cfg = _cfg("--reward.kind=rewards.py:format_bonus", *overrides)
        with pytest.raises(UserError, match=needle):
            dry_run(build_reward(cfg), RECORDS, cfg, tokenizer=world_tokenizer)
    cfg = _cfg("--reward.kind=rewards.py:format_bonus", "--rl.dynamic_sampling=true", "--rl.dynamic_sampling_on=reward")
    capsys.readouterr()
    guard = dry_run(build_reward(cfg), RECORDS, cfg, tokenizer=world_tokenizer)
    assert not guard.reports_correct
    assert capsys.readouterr().err.count("judges no correctness") == 1
    verifier = _cfg("--rl.pos_nll_coef=0.1")
    assert dry_run(build_reward(verifier), RECORDS, verifier, tokenizer=world_tokenizer).reports_correct
    assert "judges no correctness" not in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ during the run: guard


def test_a_function_raising_at_step_n_is_one_line_then_its_own_frames(rewards_dir):
    guard = RewardGuard(build_reward(_cfg("--reward.kind=rewards.py:boom")), "'rewards.py:boom'", False)
    stand_in = guard(_responses(["a", "b"], RECORDS))
    assert stand_in.scores.tolist() == [0.0, 0.0] and stand_in.correct is None  # kept; nothing raised yet
    assert guard(_responses(["a", "b"], RECORDS)).scores.tolist() == [0.0, 0.0]  # still stand-ins, not called
    with pytest.raises(UserCodeError) as e:
        guard.raise_errors(7)
    assert str(e.value) == "reward 'rewards.py:boom' raised at step 7: ValueError: cannot score 2 completions"
    frames = e.value.frames
    assert frames.count('File "') == 2 and "in boom" in frames and "in helper" in frames  # the user's two frames
    assert "reasonrl/" not in frames  # and none of ours


def test_bad_scores_at_step_n_are_one_line():
    def flaky(completions, **kw):
        flaky.calls += 1
        return [float("inf") if flaky.calls == 2 else 0.0] * len(completions)

    flaky.calls = 0
    guard = RewardGuard(build_reward(_cfg(), kinds=flaky), "'flaky'", False)
    guard(_responses(["a", "b"], RECORDS))
    guard.raise_errors(1)  # a good call: nothing to raise
    guard(_responses(["a", "b"], RECORDS))
    with pytest.raises(UserCodeError) as e:
        guard.raise_errors(2)
    assert str(e.value) == "reward 'flaky' at step 2: returned a non-finite score (inf) for response 0 of 2"
    assert e.value.frames == ""


def test_a_reward_that_stops_judging_correctness_is_stopped():
    calls = {"n": 0}

    def sometimes(responses):
        calls["n"] += 1
        n = len(responses.texts)
        return Scored(scores=torch.zeros(n), correct=torch.zeros(n, dtype=torch.bool) if calls["n"] == 1 else None)

    guard = RewardGuard(sometimes, "'sometimes'", True)
    guard(_responses(["a", "b"], RECORDS))
    guard.raise_errors(1)
    guard(_responses(["a", "b"], RECORDS))
    with pytest.raises(UserCodeError, match="at step 2: judged correctness on its dry call but not now"):
        guard.raise_errors(2)


def test_on_error_scores_a_failed_call_and_counts_it(rewards_dir, capsys):
    reward = build_reward(_cfg("--reward.kind=rewards.py:boom", "--reward.on_error=-0.5"))
    capsys.readouterr()
    for _ in range(2):
        scored = reward(_responses(["a", "b"], RECORDS))
        assert scored.scores.tolist() == [-0.5, -0.5] and scored.stats == {"errors": 1.0}
    assert capsys.readouterr().err.count("raised ValueError: cannot score 2 completions") == 1  # said once
    ok = build_reward(_cfg("--reward.kind=rewards.py:format_bonus", "--reward.on_error=-0.5"))
    assert ok(_responses(["a", "b"], RECORDS)).stats == {"errors": 0.0}
