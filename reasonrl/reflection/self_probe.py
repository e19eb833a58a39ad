"""Self-reflection probe (Rethinking Reflection in Pre-Training, arXiv 2504.04022, §3.1-3.2, Alg. 2).

Alg. 2: run every checkpoint of a series on the base task; keep each one's chains of thought (CoTs) that ended on a
wrong answer; keep only the questions that EVERY checkpoint got wrong, so the set is the same across the series;
then continue each checkpoint's own wrong CoT after a trigger ("Wait,") and score it as situational reflection is
scored (accuracy, explicit reflection; Table 7). `probe.run_probe(..., probe="self")` does the last step on the
items `self_items` returns.

Choices [I]:
- The base task is the distinct questions behind the situational probe's items (same `--data` and `--num-items`),
  so both probes draw on one question pool; `--num-items` items cover about `num_items / 7` questions.
- Each CoT is greedy, from the probe's own prompt cut before the CoT (`build_prompt` with an empty CoT and no
  trigger), so the probe then sees exactly the generation prompt + the model's CoT + the trigger; it is graded with
  the probe's `is_correct`.
- As the situational CoTs (and the released task's `messy_cot`, cut before `\\n####` [C]), the CoT fed back stops
  before its final-answer line; it is also cut at a stop string and loses trailing whitespace.
- The set is fixed by the checkpoints and decoding is greedy, so one seed is probed (more would repeat the run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.reflection.perturb import build_prompt, self_reflection_set
from reasonrl.reflection.probe import (
    GSM8K_STOP,
    final_answer,
    greedy_texts,
    is_correct,
    load_checkpoint,
    probe_items,
    prompt_template,
)

ANSWER_LINES = {"synthetic": "The answer is \\boxed", "gsm8k": "\n####"}
"""Where a CoT's final-answer line starts: the synthetic world's closing sentence, GSM8K's `#### answer`."""


def base_questions(items: Sequence[Mapping]) -> list[dict]:
    """The distinct questions behind situational items, in order: `{id, question, gold_answer}`, the id without
    its `/<perturbation>` suffix."""
    questions: dict[str, dict] = {}
    for it in items:
        qid = it["id"].rsplit("/", 1)[0]
        questions.setdefault(qid, {"id": qid, "question": it["question"], "gold_answer": it["gold_answer"]})
    return list(questions.values())


def own_cot(data: str, text: str) -> str:
    """The CoT fed back to the model: `text` up to its first stop string and before its last final-answer line."""
    for stop in GSM8K_STOP:
        text = text.split(stop, 1)[0]
    cut = text.rfind(ANSWER_LINES[data])
    return (text if cut < 0 else text[:cut]).rstrip()


def answer_questions(model, tokenizer, questions: Sequence[Mapping], *, data: str, max_new_tokens: int,
                     seed: int = 0) -> list[dict]:
    """Alg. 2, step 1: the model's greedy CoT on each question, graded like the probe. Records
    `{id, question, cot, correct, gold_answer, answer}` (`answer`: the final answer of the whole generation)."""
    template, _ = prompt_template(data, tokenizer)
    prompts = [build_prompt({**q, "adversarial_cot": ""}, trigger="", template=template) for q in questions]
    texts = greedy_texts(model, tokenizer, prompts, data=data, seed=seed, max_new_tokens=max_new_tokens)
    return [{"id": q["id"], "question": q["question"], "cot": own_cot(data, text),
             "correct": is_correct(data, text, q["gold_answer"]), "gold_answer": q["gold_answer"],
             "answer": final_answer(data, text) or ""} for q, text in zip(questions, texts, strict=True)]


def checkpoint_results(ckpt: Path, questions: Sequence[Mapping], *, data: str, max_new_tokens: int,
                       seed: int = 0) -> list[dict]:
    """`answer_questions` for the model stored in `ckpt` (the generation step of the self probe)."""
    model, tokenizer = load_checkpoint(ckpt)
    return answer_questions(model, tokenizer, questions, data=data, max_new_tokens=max_new_tokens, seed=seed)


def self_items(checkpoints: Sequence[Path], *, data: str, num_items: int, seed: int, difficulty: int,
               max_new_tokens: int, out_dir: Path) -> dict[str, list[dict]]:
    """Self-reflection sets (paper Alg. 2): `{str(checkpoint): its own wrong CoTs, as probe items with perturbation
    "self", on the questions every checkpoint got wrong}`, also written to `out_dir/self_set.jsonl`.
    UserError if no question is wrong for every checkpoint."""
    questions = base_questions(probe_items(data, num_items, seed=seed, difficulty=difficulty))
    results = {str(c): checkpoint_results(c, questions, data=data, max_new_tokens=max_new_tokens, seed=seed)
               for c in dict.fromkeys(checkpoints)}
    sets = self_reflection_set(results)
    if not any(sets.values()):
        raise UserError(_empty_message(results, num_questions=len(questions)))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "self_set.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"checkpoint": ckpt, **it}) + "\n" for ckpt, its in sets.items() for it in its)
    return sets


def _empty_message(results: Mapping[str, Sequence[Mapping]], *, num_questions: int) -> str:
    wrong = ", ".join(f"{Path(c).name}: {sum(not r['correct'] for r in rs)}" for c, rs in results.items())
    return (f"--probe self: none of the {num_questions} questions is wrong for every checkpoint (wrong per "
            f"checkpoint: {wrong}), so the self-reflection set is empty; use more --num-items or fewer checkpoints")
