"""SWiRL with models: LLM judge plumbing on a tiny model, the `process` reward, the episode loop, resumable
generation, and the real CLI (swirl-data -> step-wise RL, eval --tools)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.reward import Responses, build_reward
from reasonrl.swirl import episodes as E
from reasonrl.swirl.actions import format_result
from reasonrl.swirl.judges import PROCESS_PROMPT, LLMJudge, build_judges, label
from reasonrl.swirl.search import SearchIndex
from reasonrl.swirl.worlds import knowledge_base, qa_questions, scripted_trajectory, world_tools
from reasonrl.tasks.sources import load_split


@pytest.fixture(scope="module")
def world():
    people = knowledge_base(40, seed=0)
    return people, world_tools(SearchIndex([p.article() for p in people]))


def test_tokenizer_encodes_tags_and_knowledge_base(world_tokenizer, world):
    people, tools = world
    record = qa_questions(people, "train")[0]
    steps = scripted_trajectory(record, tools, random.Random(0), people=people)
    text = E.states({"prompt": record["prompt"], "steps": steps})[-1] + "<math_exp>7 * (3 - 1)</math_exp>"
    ids = world_tokenizer.encode(text, add_special_tokens=False)
    assert world_tokenizer.decode(ids) == text  # byte-level BPE: every tag and name round-trips
    assert world_tokenizer.unk_token_id not in ids


def test_llm_judge_plumbing_on_a_tiny_model(world_tokenizer, tmp_path, world):
    from reasonrl.model.tiny import build_model

    model = build_model("micro", world_tokenizer, seed=3).eval()
    model.save_pretrained(tmp_path)
    world_tokenizer.save_pretrained(tmp_path)
    process, outcome = build_judges(str(tmp_path))
    state, action = "Question: who?\n", "<search_query>Bo Lind</search_query>"
    p = process({}, state, action)
    # the same number by hand: softmax over the logits of the first differing tokens of " GOOD" and " BAD",
    # after the tokens they share (this byte-level tokenizer writes the space as its own token)
    prompt = PROCESS_PROMPT.format(state=state, action=action)
    g, b = (world_tokenizer.encode(w, add_special_tokens=False) for w in (" GOOD", " BAD"))
    k = next(i for i in range(len(g)) if g[i] != b[i])
    ids = torch.tensor([world_tokenizer.encode(prompt, add_special_tokens=False) + g[:k]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    good, bad = g[k], b[k]
    assert p == pytest.approx(torch.stack([logits[good], logits[bad]]).softmax(-1)[0].item(), abs=1e-5)
    assert 0 < p < 1 and p != process({}, state, "<answer>Tarrow</answer>")  # the judged action matters
    o = outcome({"prompt": "q", "answer": "Tarrow"}, "Tarrow")
    assert 0 < o < 1
    people, tools = world
    record = qa_questions(people, "train")[0]
    traj = {**record, "steps": scripted_trajectory(record, tools, random.Random(0), people=people)}
    (row,) = label([traj], process, outcome)
    assert len(row["process"]) == len(traj["steps"]) and all(0 < x < 1 for x in row["process"])
    judge = LLMJudge(model, world_tokenizer, yes=" GOOD", no=" BAD", max_length=16)
    assert 0 < judge.prob(prompt) < 1  # a prompt longer than max_length keeps its end


def _states_file(tmp_path, world, n=4):
    people, tools = world
    rows = []
    for i, record in enumerate(qa_questions(people, "train")[:n]):
        prompt = record["prompt"]
        if i == 1:  # a later state: the subject was already searched
            subject = record["subject"]
            prompt += f"<search_query>{subject}</search_query>" + format_result(subject, tools["search"](subject))
        rows.append({"id": record["id"], "prompt": prompt, **{k: record[k] for k in
                     ("task", "answer", "subject", "relation", "attribute")}})
    path = tmp_path / "states.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_process_reward_kind_scores_actions(tmp_path, world):
    path, rows = _states_file(tmp_path, world, n=2)
    cfg = load_config(None, ["--reward.kind=process", f"--data.source={path}"])
    reward = build_reward(cfg)
    records = [r for r in load_split(cfg.data, "train") for _ in range(2)]  # as the trainer reads the states
    texts = [f"<search_query>{rows[0]['subject']}</search_query> extra", "<answer>Tarrow</answer>",
             "<search_query>Nobody Here</search_query>", f"think <search_query>{rows[1]['subject']}</search_query>"]
    scored = reward(Responses(records=records, prompts=[r["prompt"] for r in records], texts=texts,
                              lengths=torch.tensor([5, 5, 5, 5]), truncated=torch.zeros(4, dtype=torch.bool),
                              group=torch.tensor([0, 0, 1, 1])))
    # the last action repeats the query its state already holds. Mutation: judging every response against the
    # first row's state (no results yet) scores it 1.
    assert scored.scores.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert scored.correct.tolist() == [True, False, False, False]
    assert scored.stats["process_good"] == 0.25


def test_process_reward_needs_only_the_task_of_a_state(tmp_path, world):
    # The programmatic judge reads a state's `task` and its text, nothing else of the world: states without
    # subject / relation / attribute are scored as those with them. Mutation: requiring the world fields again
    # (the old PROGRAM_JUDGE_FIELDS check) refuses them with a UserError.
    path, rows = _states_file(tmp_path, world, n=2)
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({k: r[k] for k in ("id", "prompt", "task", "answer")}) + "\n" for r in rows))
    texts = [f"<search_query>{rows[0]['subject']}</search_query>", "<answer>Tarrow</answer>",
             "<search_query>Nobody Here</search_query>", f"<search_query>{rows[1]['subject']}</search_query>"]
    scores = []
    for source in (path, bare):
        cfg = load_config(None, ["--reward.kind=process", f"--data.source={source}"])
        records = [r for r in load_split(cfg.data, "train") for _ in range(2)]
        scored = build_reward(cfg)(Responses(records=records, prompts=[r["prompt"] for r in records], texts=texts,
                                             lengths=torch.tensor([5, 5, 5, 5]),
                                             truncated=torch.zeros(4, dtype=torch.bool),
                                             group=torch.tensor([0, 0, 1, 1])))
        scores.append(scored.scores.tolist())
    assert scores[0] == scores[1] == [1.0, 0.0, 0.0, 0.0]


class _Scripted:
    """A stand-in for `sample`: answers each state with the next scripted action of its record."""

    def __init__(self, actions: dict[str, list[str]]):
        self.actions, self.calls = actions, 0

    def __call__(self, model, tokenizer, prompts, params):
        self.calls += 1
        texts = []
        for p in prompts:
            key = next(k for k in self.actions if p.startswith(k))
            done = p.count(" -> ") + (1 if p.endswith("</answer>\n") else 0)
            texts.append(self.actions[key][done] + "<|tail|>")
        return type("R", (), {"response_texts": texts})()


def test_run_episodes_loop(monkeypatch):
    tools = {"math": lambda x: str(eval_free(x)), "search": lambda q: f"about {q}"}
    fake = _Scripted({"A\n": ["<math_exp>1 + 2</math_exp>", "<answer>3</answer>"],
                      "B\n": ["<search_query>x</search_query>"] * 9,
                      "C\n": ["no action here"]})
    monkeypatch.setattr(E, "sample", fake)
    from reasonrl.rollout.sampler import SamplingParams

    out = E.run_episodes(None, None, [{"prompt": "A\n"}, {"prompt": "B\n"}, {"prompt": "C\n"}], tools=tools,
                         max_steps=lambda r: 3, params=SamplingParams(temperature=0.0), batch_size=2)
    assert [e["finish"] for e in out] == ["answer", "max_steps", "no_action"]
    assert [len(e["steps"]) for e in out] == [2, 3, 1]
    assert out[0]["steps"][0]["result"] == "3" and out[0]["steps"][0]["text"] == "<math_exp>1 + 2</math_exp>"
    assert E.final_answer(out[0]) == "3" and E.final_answer(out[1]) is None
    assert E.decompose(out[0])[1][0] == "A\n<math_exp>1 + 2</math_exp>" + format_result("1 + 2", "3")


def eval_free(expr: str) -> int:
    a, b = expr.split("+")
    return int(a) + int(b)


def test_generation_is_resumable(tmp_path):
    records = [{"id": f"q{i}", "prompt": f"P{i}\n"} for i in range(5)]
    calls = []

    def episode_fn(recs, seed):
        calls.append(len(recs))
        return [{"prompt": r["prompt"], "steps": [], "finish": "answer", "seed": seed} for r in recs]

    whole = E.generate_trajectories(tmp_path / "a.jsonl", records, num_per_question=2, episode_fn=episode_fn, chunk=4)
    assert [r["id"] for r in whole] == [f"q{i}#{k}" for i in range(5) for k in range(2)]
    # a crash after 3 complete rows and a torn fourth line
    part = tmp_path / "b.jsonl"
    lines = (tmp_path / "a.jsonl").read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:3]) + lines[3][:10])
    calls.clear()
    resumed = E.generate_trajectories(part, records, num_per_question=2, episode_fn=episode_fn, chunk=4)
    # Mutation: not truncating the torn line makes read_jsonl fail on it.
    assert sorted(r["id"] for r in resumed) == sorted(r["id"] for r in whole)
    assert sum(calls) == 7  # only the missing trajectories were generated
    assert len(E.read_jsonl(part)) == 10


def _cli(argv):
    from reasonrl.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    return e.value.code


def test_step_wise_rl_smoke_via_cli(tmp_path, tokenizer_dir):
    data, run = tmp_path / "data", tmp_path / "rl"
    common = ["--swirl.kb_people=40", "--swirl.hotpotqa=false", "--log.progress=false"]
    assert _cli(["swirl-data", "--out", data, "--source", "scripted", "--num-questions", 6,
                 "--num-per-question", 2, *common]) == 0
    states = E.read_jsonl(data / "states_process.jsonl")
    kept = E.read_jsonl(data / "labelled.jsonl")
    assert len(states) == sum(len(t["steps"]) for t in kept if all(p > 0.5 for p in t["process"]))
    # A fresh micro model never writes a valid action, so the judge's labels are made noisy (coin flips) to give
    # the group baseline something to work on: this checks the plumbing, the benchmark checks the direction.
    assert _cli(["rl", "--config", "configs/swirl_rl_tiny.toml", f"--data.source={data / 'states_process.jsonl'}",
                 f"--log.run_dir={run}", f"--model.tokenizer_path={tokenizer_dir}", "--swirl.judge_noise=0.5",
                 "--rollout.max_new_tokens=12", *common]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "reward" in r]
    assert len(steps) == 2
    # the process reward reached the trainer: 0/1 scores, "correct" = GOOD, so reward == acc, groups not constant
    assert all(r["reward"] == r["acc"] for r in steps) and any(0 < r["reward"] < 1 for r in steps)
    assert all(r["grad_norm"] > 0 for r in steps)  # an update happened
    assert steps[0]["kl"] == 0 and steps[1]["kl"] > 0  # KL to the initial policy: zero before the first update
    assert (run / "final" / "config.json").is_file()


def test_eval_tools_via_cli(tmp_path, tokenizer_dir):
    out = tmp_path / "eval"
    assert _cli(["eval", "--tools", "--out", out, "--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}",
                 "--swirl.kb_people=40", "--swirl.hotpotqa=false", "--swirl.max_steps=2", "--swirl.step_tokens=8",
                 "--eval.max_examples=3", "--log.progress=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_episodes"] == 3 and 1 <= summary["mean_steps"] <= 2
    assert {"accuracy", "tool_errors", "process_score", "answered"} <= set(summary)
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 3
