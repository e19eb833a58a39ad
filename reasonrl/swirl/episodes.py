"""Multi-step episodes: the inference loop, synthetic trajectory generation (JSONL, resumable), decomposition.

A trajectory is tau = (s_1, a_1, ..., s_K, a_K) (arXiv 2504.04736 §2.1): s_1 is the prompt, and
s_{i+1} = s_i + a_i + the tool's response to a_i. Each step is one sampling call that stops at the first closing
action tag (`actions.CLOSING`), so a step holds at most one action; the episode ends at an answer, at a step
without a well-formed action, or at the step limit (5 for QA, 10 for math, §2.3).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from reasonrl.rollout.sampler import SamplingParams, sample
from reasonrl.swirl.actions import CLOSING, format_result, parse_action


def cut_step(text: str) -> str:
    """The step's text up to and including its first closing action tag (a stop token may carry more text)."""
    ends = [text.find(c) + len(c) for c in CLOSING if c in text]
    return text[: min(ends)] if ends else text


def step_text(step: dict) -> str:
    """What a step adds to the state: the action, then the tool's `QUERY -> RESULT` line (or a newline)."""
    return step["text"] + (format_result(step["content"], step["result"]) if step["result"] is not None else "\n")


def states(trajectory: dict) -> list[str]:
    """s_1 .. s_{K+1}: the prompt, then the text after each step."""
    out = [trajectory["prompt"]]
    for step in trajectory["steps"]:
        out.append(out[-1] + step_text(step))
    return out


def decompose(trajectory: dict) -> list[tuple[str, str]]:
    """(state, action) pairs, one per action: state s_i is the prompt plus every earlier action and tool result."""
    return list(zip(states(trajectory), [step["text"] for step in trajectory["steps"]], strict=False))


def run_step(action_text: str, tools: Mapping[str, Callable[[str], str]]) -> dict:
    """One step's record: its text, parsed action and (for a tool call) the tool's result."""
    kind, content = parse_action(action_text)
    result = tools[kind](content) if kind in tools else None
    return {"text": action_text, "kind": kind, "content": content, "result": result}


def run_episodes(model, tokenizer, records: list[dict], *, tools: Mapping[str, Callable[[str], str]],
                 max_steps: Callable[[dict], int], params: SamplingParams, template: str = "{prompt}",
                 batch_size: int = 64) -> list[dict]:
    """One trajectory per record, all records stepped together: each round samples the next action of every
    unfinished episode (`params.n` must be 1; repeat a record for several trajectories). Returns
    `{"prompt", "steps", "finish"}` per record, finish in "answer" | "no_action" | "max_steps"."""
    assert params.n == 1, "run_episodes samples one action per state; repeat records for more trajectories"
    params = replace(params, stop=tuple(dict.fromkeys((*params.stop, *CLOSING))))
    episodes = [{"prompt": r["prompt"], "steps": [], "finish": None} for r in records]
    limits = [max_steps(r) for r in records]
    for round_ in range(max(limits, default=0)):
        live = [i for i, e in enumerate(episodes) if e["finish"] is None]
        if not live:
            break
        for start in range(0, len(live), batch_size):
            chunk = live[start : start + batch_size]
            inputs = [template.replace("{prompt}", states(episodes[i])[-1]) for i in chunk]
            out = sample(model, tokenizer, inputs, replace(params, seed=params.seed + 1000 * round_ + start))
            for i, text in zip(chunk, out.response_texts, strict=True):
                step = run_step(cut_step(text), tools)
                episodes[i]["steps"].append(step)
                if step["kind"] is None:
                    episodes[i]["finish"] = "no_action"
                elif step["kind"] == "answer":
                    episodes[i]["finish"] = "answer"
                elif len(episodes[i]["steps"]) >= limits[i]:
                    episodes[i]["finish"] = "max_steps"
    for e in episodes:
        e["finish"] = e["finish"] or "max_steps"
    return episodes


def final_answer(trajectory: dict) -> str | None:
    last = trajectory["steps"][-1] if trajectory["steps"] else None
    return last["content"] if last is not None and last["kind"] == "answer" else None


# ------------------------------------------------------------------------------------------ generation to JSONL


def read_jsonl(path: Path) -> list[dict]:
    """The objects of a JSONL file (a resumed run's trajectories, a data file): the data loader's checks and
    file:line messages (`tasks.datasets.read_objects`)."""
    from reasonrl.tasks.datasets import read_objects

    return [obj for _, obj in read_objects(path)]


def generate_trajectories(out: str | Path, records: list[dict], *, num_per_question: int,
                          episode_fn: Callable[[list[dict], int], list[dict]], chunk: int = 64,
                          progress: bool = False) -> list[dict]:
    """`num_per_question` trajectories per record appended to the JSONL `out`, `chunk` episodes per write, each
    write flushed and fsynced. Resumable: rows already in `out` (by `id` = `<record id>#<sample>`) are kept and
    not generated again, and a torn last line from a crash is dropped. `episode_fn(records, seed)` runs the
    episodes (the model's `run_episodes`, or scripted ones); its rows get the record's fields and an `id`."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _complete_rows(path)
    have = {row["id"] for row in done}
    todo = [(r, k) for r in records for k in range(num_per_question) if f"{r['id']}#{k}" not in have]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="trajectories", leave=False)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        episodes = episode_fn([r for r, _ in part], start + len(done))
        rows = [{**r, **e, "id": f"{r['id']}#{k}", "question_id": r["id"], "sample": k}
                for (r, k), e in zip(part, episodes, strict=True)]
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())
        done.extend(rows)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return done


def _complete_rows(path: Path) -> list[dict]:
    """Rows of an earlier (possibly interrupted) run; a torn last line is cut off the file."""
    from reasonrl.outputs import read_appended

    return read_jsonl(path) if read_appended(path) else []


def iter_pairs(trajectories: list[dict]) -> Iterator[tuple[dict, str, str]]:
    """(trajectory, state, action) over every step of every trajectory."""
    for t in trajectories:
        for state, action in decompose(t):
            yield t, state, action
