"""`reasonrl retro-search`: only correct traces, resume after a crash (== an uninterrupted run), the real CLI."""

from __future__ import annotations

import json

import pytest

from reasonrl import cli
from reasonrl.errors import UserError
from reasonrl.retro.command import retro_search
from reasonrl.retro.params import RetroParams
from reasonrl.retro.segment import SYNTHETIC_STEP_SEP, split_steps
from reasonrl.tasks import synthetic

P = RetroParams(step_sep=SYNTHETIC_STEP_SEP, keywords=("Wait", "Alternatively"))


def _traces(num: int = 8) -> list[dict]:
    records = synthetic.generate(num, seed=1, difficulty=2, alt_fraction=1.0)
    for i, r in enumerate(records):
        r["id"] = f"t{i}"
        if i % 4 == 3:  # every fourth trace ends on a wrong answer: not revised
            r["response"] = r["response"].replace(f"\\boxed{{{r['answer']}}}", f"\\boxed{{{int(r['answer']) + 1}}}")
    return records


class Honest:
    """A scripted reviser that, asked to keep going without switching, finishes the gold chain from the prefix's
    last value; it counts its calls and can crash on one of them."""

    def __init__(self, traces, crash_on: int | None = None):
        self.by_prompt = {}
        for r in traces:
            detour, restart = r["response"].split(" Alternatively, go step by step from the start.")
            done = len(split_steps(detour, SYNTHETIC_STEP_SEP))  # the detour did the first `done` gold steps
            self.by_prompt[r["prompt"]] = (detour, split_steps(restart, SYNTHETIC_STEP_SEP)[done:])
        self.calls, self.crash_on = 0, crash_on

    def __call__(self, prompts, prefixes, params):
        self.calls += 1
        if self.calls == self.crash_on:
            raise RuntimeError("crash")
        out = []
        for prompt, prefix in zip(prompts, prefixes, strict=True):
            detour, rest = self.by_prompt[prompt]
            assert prefix == (detour if params.banned_words else detour + rest[0])
            out += [rest[0] if params.banned_words else "".join(rest[1:])] * params.n
        return out


def _run(traces, out, cont, **kw):
    return retro_search(None, _Tok(), traces, out, verifier=synthetic.verify, p=P, batch_size=2, progress=False,
                        cont=cont, template="{prompt}", **kw)


class _Tok:
    def encode(self, text, add_special_tokens=False):
        return text.split()


def test_only_correct_traces_revised_and_all_correct(tmp_path):
    traces = _traces()
    stats = _run(traces, tmp_path / "r.jsonl", Honest(traces))
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in lines) == [0, 1, 2, 4, 5, 6]
    assert all(synthetic.verify(r["response"], r["answer"]) for r in lines)
    assert all(r["accepted"] == 1 and r["switches_before"] == 1 and r["switches_after"] == 0 for r in lines)
    assert stats["traces"] == 8 and stats["traces_correct"] == 6 and stats["accepted_revisions"] == 6
    assert stats["tokens_after"] < stats["tokens_before"]
    assert json.loads((tmp_path / "r.stats.json").read_text()) == stats


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    traces = _traces()
    _run(traces, tmp_path / "full.jsonl", Honest(traces))
    with pytest.raises(RuntimeError):  # chunk 1 (traces 0, 1) written, the crash hits chunk 2
        _run(traces, tmp_path / "r.jsonl", Honest(traces, crash_on=3))
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2
    with (tmp_path / "r.jsonl").open("a") as f:
        f.write('{"index": 2, "id": "t2", "resp')  # a torn line from a crash mid-write
    with pytest.raises(UserError, match="--resume"):
        _run(traces, tmp_path / "r.jsonl", Honest(traces))
    cont = Honest(traces)
    _run(traces, tmp_path / "r.jsonl", cont, resume=True)
    assert cont.calls == 4  # chunks 2 and 3 only, two calls each

    def by_index(name):
        return sorted((json.loads(x) for x in (tmp_path / name).read_text().splitlines()), key=lambda r: r["index"])

    assert by_index("r.jsonl") == by_index("full.jsonl")


def test_resume_refuses_another_input(tmp_path):
    traces = _traces()
    _run(traces, tmp_path / "r.jsonl", Honest(traces))
    other = [dict(r, id=f"x{i}") for i, r in enumerate(traces)]
    with pytest.raises(UserError, match="not in the input"):
        _run(other, tmp_path / "r.jsonl", Honest(other), resume=True)


def test_cli_retro_search_on_a_real_model(tmp_path, tokenizer_dir, capsys):
    """The real entry point on a fresh micro model: every correct trace goes through the engine's rollouts and
    comes out correct; token and switch counts are those of the input; a bad option exits 2."""
    model_dir = tmp_path / "model"
    assert cli.run(["init-model", "--out", str(model_dir), "--model.preset=micro",
                    f"--model.tokenizer_path={tokenizer_dir}"]) == 0
    traces = _traces(6)
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in traces))
    out = tmp_path / "revised.jsonl"
    args = ["retro-search", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--synthetic",
            "--max-new-tokens", "12", "--num-rollouts", "2", "--batch-size", "4", "--no-progress"]
    assert cli.run(args) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["index"] for r in lines) == [0, 1, 2, 4, 5]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    for r in lines:
        assert synthetic.verify(r["response"], r["answer"])
        assert r["tokens_before"] == len(tok.encode(traces[r["index"]]["response"], add_special_tokens=False))
        assert r["switches_before"] == 1
    stats = json.loads((tmp_path / "revised.stats.json").read_text())
    assert stats["traces"] == 6 and stats["traces_revised"] == 5 and stats["switches_before"] == 1.0
    assert "retro-search (self, full)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(args[:-1] + ["--gamma", "1.5"])
    assert e.value.code == 2


@pytest.mark.parametrize("has_think", [False, True])
def test_early_exit_closes_the_thinking_block_when_the_reviser_has_one(tmp_path, tokenizer_dir, has_think):
    """Through `retro_search`: the tiny tokenizer has no `</think>`, so the exit text is forced as it is; a model
    tokenizer with `</think>` (R1-style) gets the block closed first. Mutation: skipping `with_think_end` forces
    `</think>` on the tiny model too."""
    from transformers import AutoTokenizer

    from reasonrl.tasks.answers import extract_boxed

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if has_think:
        tok.add_tokens(["<think>", "</think>"])
    trace = "A is 1/2.\n\nSo 1/2.\n\nWait, check.\n\n</think>\n\n**Final Answer**\n\\boxed{\\frac{1}{2}}"
    seen = []

    def cont(prompts, prefixes, params):
        seen.extend(prefixes)
        return ["\\frac{1}{2}} and then more words"] * len(prefixes) * params.n

    p = RetroParams(keywords=("Wait",), mode="early_exit", exit_max_new_tokens=24)
    stats = retro_search(None, tok, [{"id": "t0", "prompt": "q", "answer": "\\frac{1}{2}", "response": trace}],
                         tmp_path / "out.jsonl", verifier=lambda t, g: extract_boxed(t) == g, p=p, template="{prompt}",
                         progress=False, cont=cont)
    close = "</think>\n\n" if has_think else ""
    assert seen == ["A is 1/2.\n\nSo 1/2.\n\n" + close + "**Final Answer**\n\\boxed{"]
    (rec,) = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rec["response"].endswith("\\boxed{\\frac{1}{2}}") and stats["accepted_revisions"] == 1


def test_exit_options_reach_the_params():
    import argparse

    from reasonrl.retro.args import add_arguments, params_from_args

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    base = ["--model", "m", "--data", "d", "--out", "o", "--mode", "early_exit"]
    p = params_from_args(ap.parse_args([*base, "--exit-max-new-tokens", "80", "--think-end", ""]))
    assert p.exit_max_new_tokens == 80 and p.think_end == ""
    assert params_from_args(ap.parse_args(base)).think_end == "</think>"
    with pytest.raises(UserError, match="--exit-max-new-tokens"):
        params_from_args(ap.parse_args([*base, "--exit-max-new-tokens", "0"]))


def test_cli_settings_beside_the_output_guard_resume(tmp_path, tokenizer_dir):
    """`<stem>.settings.json` records what determines the output; `--resume` with the same settings continues an
    interrupted output (a moved copy of the model is the same model), `--overwrite` replaces it and its settings."""
    model_dir = tmp_path / "model"
    assert cli.run(["init-model", "--out", str(model_dir), "--model.preset=micro",
                    f"--model.tokenizer_path={tokenizer_dir}"]) == 0
    data = tmp_path / "traces.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _traces(4)))
    out = tmp_path / "revised.jsonl"
    args = ["retro-search", "--data", str(data), "--out", str(out), "--synthetic", "--max-new-tokens", "4",
            "--batch-size", "1", "--no-progress"]
    assert cli.run([*args, "--model", str(model_dir)]) == 0
    settings = json.loads((tmp_path / "revised.settings.json").read_text())
    assert settings["temperature"] == 0.6 and settings["batch_size"] == 1 and len(settings["model_weights"]) == 16
    full = out.read_text().splitlines()
    assert len(full) == 3  # traces 0, 1, 2 are correct

    out.write_text(full[0] + "\n")  # interrupted after the first trace
    moved = tmp_path / "moved_model"
    model_dir.rename(moved)
    assert cli.run([*args, "--model", str(moved), "--resume"]) == 0
    assert [json.loads(x)["index"] for x in out.read_text().splitlines()] == [0, 1, 2]
    assert json.loads((tmp_path / "revised.settings.json").read_text()) == settings

    assert cli.run([*args, "--model", str(moved), "--overwrite", "--seed", "5"]) == 0
    assert json.loads((tmp_path / "revised.settings.json").read_text()) == {**settings, "seed": 5}
    assert len(out.read_text().splitlines()) == 3
    with pytest.raises(UserError, match="seed 5 -> 0"):
        cli.run([*args, "--model", str(moved), "--resume"])
