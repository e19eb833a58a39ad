"""The paper commands' bad inputs (issue 20): `concise select`, `eval --compare`, `eval --tools`, `rm-train`, the
`pairwise`, `length_penalty` and `process` rewards under `rl`, `retro-search`, `swirl-data` and `reflection`.

Each case runs `reasonrl.cli.main` in this process and must end with one line on stderr naming the problem, exit
code 2 and no traceback, leaving every file that existed before byte for byte as it was: a copy of a finished
micro-model run (cases that would stop at "this directory already holds a run" pass `--overwrite`, so they also
check that validation happens before the old run is touched) and a copy of the inputs below (models, judges, eval
outputs, a retro-search output and a swirl-data output, each written by the real commands). The classes:

1. a late check after `--overwrite` (a judge, a reward, a record field, an input inside the run directory);
2. an output that destroys an input, or is checked only after the work (a directory, a path under a file, a
   previous evaluation);
3. NaN, infinite and out-of-range numbers, and counts that give an empty run;
4. user files that gave tracebacks (malformed summaries and samples, binary preference files, broken judges,
   records without a field the process judge reads, a lone UTF-16 surrogate in a prompt);
5. append-style outputs resumed with other settings, or rerun onto without `--resume` / `--overwrite`.

Every case here was run against the code before its fix and failed there (wrong exit code, a traceback, a changed
file, or a message that did not name the problem); see the commit messages.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

SURROGATE_LINE = ('{"prompt": "What is 1 + 1? \\ud800", "answer": "2", '
                  '"response": "1 + 1 = 2. The answer is \\\\boxed{2}."}\n')  # a lone surrogate, as JSON spells it
GOOD_LINE = ('{"prompt": "Ana has 2 pens. She buys 1 more. How many pens does Ana have now?", '
             '"response": "2 + 1 = 3. The answer is \\\\boxed{3}.", "answer": "3"}\n')
SWIRL = ["--swirl.kb_people=40", "--swirl.hotpotqa=false"]  # a small world without the HotpotQA corpus
SWIRL_DATA = ["swirl-data", "--source", "scripted", *SWIRL, "--num-questions", "2", "--num-per-question", "1",
              "--log.progress=false"]
RETRO = ["retro-search", "--data", "{f:traces.jsonl}", "--synthetic", "--max-new-tokens", "4", "--no-progress"]
CONCISE = ["concise", "select", "--model", "{f:model}", "--k", "1", "--max-problems", "2",
           "--rollout.max_new_tokens=4", "--log.progress=false"]
EVAL = ["eval", "--model", "{f:model}", "--rollout.max_new_tokens=4", "--log.progress=false"]
TOOLS = ["eval", "--tools", "--model", "{f:model}", *SWIRL, "--eval.max_examples=2", "--swirl.step_tokens=4",
         "--data.prompt_template={prompt}", "--log.progress=false"]
PAIRWISE = ["rl", "--overwrite", "--reward.kind=pairwise", "--data.source={f:good.jsonl}"]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root`: a file's bytes, None for a directory (a new empty directory counts too)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _save_judge(model_dir: Path, out: Path) -> None:
    from reasonrl.model.tiny import load_model
    from reasonrl.pairwise.judges import GenerativeJudge, save_judge

    model, tokenizer = load_model(model_dir)
    save_judge(GenerativeJudge(model, tokenizer), out)


def _eval_dir(d: Path, *, summary: object | None = None, samples: str | None = None) -> Path:
    d.mkdir()
    good = {"data": "gsm8k", "split": "test", "mean@n": 0.5, "mean_length": 10.0}
    (d / "summary.json").write_text(json.dumps(good if summary is None else summary))
    rows = [{"problem_id": f"p{i}", "prompt": "What is 1 + 1?", "answer": "2", "correct": i % 2 == 0, "length": 10}
            for i in range(4)]
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) if samples is None else samples)
    return d


@pytest.fixture(scope="module")
def files(tmp_path_factory, micro_model_dir, world_tokenizer):
    """Bad and good inputs on disk, by name (each case works on a copy)."""
    from reasonrl.cli import run
    from reasonrl.model.tiny import build_model
    from reasonrl.tasks import synthetic

    d = tmp_path_factory.mktemp("paper_inputs")
    (d / "good.jsonl").write_text(GOOD_LINE * 4)
    (d / "surrogate.jsonl").write_text(GOOD_LINE + SURROGATE_LINE)
    (d / "sel.jsonl.rates.jsonl").write_text(GOOD_LINE * 4)
    (d / "a_file").write_text("not a directory\n")
    (d / "a_dir").mkdir()
    shutil.copytree(micro_model_dir, d / "model")
    other = build_model("micro", world_tokenizer, seed=1)  # another model of the same shape
    other.save_pretrained(d / "model2")
    world_tokenizer.save_pretrained(d / "model2")
    shutil.copytree(micro_model_dir, d / "truncated_model")
    weights = d / "truncated_model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    # pairwise judges: a good one and broken ones
    _save_judge(d / "model", d / "judge")
    for name, text in [("judge_malformed", "{not json"), ("judge_no_kind", "{}"), ("judge_list", "[1, 2]")]:
        shutil.copytree(d / "judge", d / name)
        (d / name / "judge.json").write_text(text)
    shutil.copytree(d / "judge", d / "judge_truncated")
    weights = d / "judge_truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    shutil.copytree(d / "judge", d / "judge_no_tokenizer")
    for p in (d / "judge_no_tokenizer").glob("tokenizer*"):
        p.unlink()
    # states for the process reward: a good one (its judge reads only `task` and the state), one without the
    # `task` field and one with a task the judge does not know
    qa = {"prompt": "Question: Where was the manager of Tova Fenn born?\n", "answer": "Harlow", "task": "qa"}
    (d / "states.jsonl").write_text(json.dumps(qa) + "\n")
    (d / "states_no_task.jsonl").write_text(json.dumps({k: v for k, v in qa.items() if k != "task"}) + "\n")
    math = {"prompt": "Question: Ana has 2 pens and buys 1. How many?\n", "answer": "3", "task": "chess"}
    (d / "states_unknown_task.jsonl").write_text(json.dumps(math) + "\n")
    # preference files
    (d / "prefs_binary.jsonl").write_bytes(bytes(range(256)) * 8)
    pair = {"prompt": "What is 1 + 1?", "chosen": "2", "rejected": "3"}
    (d / "prefs_surrogate.jsonl").write_text(json.dumps(pair) + "\n" + SURROGATE_LINE.replace('"answer"', '"chosen"')
                                             .replace('"response"', '"rejected"'))
    # eval outputs for --compare, good and bad
    _eval_dir(d / "eval_a")
    _eval_dir(d / "eval_b")
    _eval_dir(d / "cmp_not_object", summary=42)
    _eval_dir(d / "cmp_str_mean", summary={"data": "gsm8k", "split": "test", "mean@n": "high", "mean_length": 10})
    _eval_dir(d / "cmp_nan_mean", summary={"data": "gsm8k", "split": "test", "mean@n": float("nan"),
                                           "mean_length": 10})
    _eval_dir(d / "cmp_bad_samples", samples='{"problem_id": "p0", "correct": true}\n{"problem_id": \n')
    _eval_dir(d / "cmp_samples_no_correct", samples='{"problem_id": "p0", "length": 3}\n')
    (_eval_dir(d / "cmp_not_utf8") / "summary.json").write_bytes(b'{"data": "caf\xe9"}')
    (d / "compared").mkdir()
    (d / "compared" / "compare.json").write_text('{"rows": []}\n')
    # an evaluation whose samples are also a data file
    (d / "evaldir").mkdir()
    (d / "evaldir" / "samples.jsonl").write_text(GOOD_LINE * 2)
    (d / "evaldir" / "summary.json").write_text(json.dumps({"data": "x", "split": "test", "mean@n": 0.0,
                                                            "mean_length": 1.0}))
    # traces for retro-search, and its output from a real run (and one from before settings were recorded)
    traces = synthetic.generate(2, seed=1, difficulty=1)
    (d / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in traces))
    (d / "traces_no_newline.jsonl").write_text("\n".join(json.dumps(r) for r in traces))
    assert run([_sub(a, d, None) for a in RETRO] + ["--model", str(d / "model"), "--out", str(d / "retro.jsonl")]) == 0
    shutil.copy(d / "retro.jsonl", d / "retro_old.jsonl")
    # a swirl-data output from a real run
    assert run([*SWIRL_DATA, "--out", str(d / "swirl_out")]) == 0
    return d


def _sub(arg: str, files: Path, run: Path | None) -> str:
    """`{f:name}` -> a file of `files`, `{run}` -> the run copy; other braces (e.g. `{prompt}`) stay."""
    arg = re.sub(r"\{f:([^}]*)\}", lambda m: str(files / m.group(1)), arg)
    return arg.replace("{run}", str(run)) if run is not None else arg


# (id, argv with {run} and {f:<name>} placeholders, text the one stderr line must contain)
CASES = [
    # 1. late checks: every one before the finished run (passed with --overwrite) is touched
    ("pairwise_sample_anchors_need_samples", [*PAIRWISE, "--pairwise.judge_path={f:judge}", "--pairwise.anchor=sample",
                                             "--pairwise.num_anchors=5"], "needs rollout.num_samples >= 6"),
    ("pairwise_judge_json_malformed", [*PAIRWISE, "--pairwise.judge_path={f:judge_malformed}"],
     "judge_malformed/judge.json: not valid JSON"),
    ("pairwise_judge_json_no_kind", [*PAIRWISE, "--pairwise.judge_path={f:judge_no_kind}"],
     "judge_no_kind/judge.json: missing key 'kind'"),
    ("pairwise_judge_json_a_list", [*PAIRWISE, "--pairwise.judge_path={f:judge_list}"],
     "judge_list/judge.json: expected a JSON object"),
    ("pairwise_judge_truncated_weights", [*PAIRWISE, "--pairwise.judge_path={f:judge_truncated}"],
     "pairwise.judge_path: ") ,
    ("pairwise_judge_no_tokenizer", [*PAIRWISE, "--pairwise.judge_path={f:judge_no_tokenizer}"],
     "pairwise.judge_path: "),
    ("pairwise_reference_anchor_missing_field", [*PAIRWISE, "--pairwise.judge_path={f:judge}",
                                                 "--pairwise.anchor_field=solution"], "no text field 'solution'"),
    ("process_states_without_task", ["rl", "--overwrite", "--reward.kind=process",
                                     "--data.source={f:states_no_task.jsonl}"], "has no 'task' field"),
    ("process_states_unknown_task", ["rl", "--overwrite", "--rl.algo=grpo", "--reward.kind=process",
                                     "--data.source={f:states_unknown_task.jsonl}"],
     "field 'task' must be one of qa, math, got 'chess'"),
    ("process_judge_not_a_model", ["rl", "--overwrite", "--reward.kind=process", "--swirl.judge={f:a_dir}",
                                   "--data.source={f:states.jsonl}"], "swirl.judge: "),
    ("process_judge_truncated", ["rl", "--overwrite", "--reward.kind=process", "--swirl.judge={f:truncated_model}",
                                 "--data.source={f:states.jsonl}"], "swirl.judge: "),
    ("rl_model_inside_the_run_it_overwrites", ["rl", "--overwrite", "--model.path={run}/final"],
     "contains the input model.path"),
    ("rm_train_model_inside_the_run", ["rm-train", "--overwrite", "--model.path={run}/final"],
     "contains the input model.path"),
    ("rl_prompt_lone_surrogate", ["rl", "--overwrite", "--data.source={f:surrogate.jsonl}"],
     "surrogate.jsonl:2: field 'prompt'"),
    ("grpo_prompt_lone_surrogate", ["rl", "--overwrite", "--rl.algo=grpo", "--data.source={f:surrogate.jsonl}"],
     "surrogate.jsonl:2: field 'prompt'"),
    ("sft_prompt_lone_surrogate", ["sft", "--overwrite", "--data.source={f:surrogate.jsonl}"],
     "surrogate.jsonl:2: field 'prompt'"),
    # 2. outputs: checked before any work, never onto an input
    ("concise_out_is_the_data", [*CONCISE, "--data", "{f:good.jsonl}", "--out", "{f:good.jsonl}"],
     "is also the input data.source"),
    ("concise_rates_file_is_the_data", [*CONCISE, "--data", "{f:sel.jsonl.rates.jsonl}", "--out", "{f:sel.jsonl}"],
     "is also the input data.source"),
    ("concise_out_is_a_directory", [*CONCISE, "--data", "{f:good.jsonl}", "--out", "{f:a_dir}"], "is a directory"),
    ("concise_out_under_a_file", [*CONCISE, "--data", "{f:good.jsonl}", "--out", "{f:a_file}/phase2.jsonl"],
     "is not a directory"),
    ("concise_out_inside_the_model", [*CONCISE, "--data", "{f:good.jsonl}", "--out", "{f:model}/model.safetensors"],
     "lies inside the input model.path"),
    ("eval_out_contains_the_data", [*EVAL, "--data", "{f:evaldir/samples.jsonl}", "--out", "{f:evaldir}",
                                    "--overwrite"], "contains the input data.source"),
    ("eval_out_onto_a_previous_eval", [*EVAL, "--data", "{f:good.jsonl}", "--out", "{f:eval_a}"],
     "already holds an evaluation"),
    ("eval_out_is_the_model", [*EVAL, "--data", "{f:good.jsonl}", "--out", "{f:model}"],
     "is also the input model.path"),
    ("eval_tools_out_is_a_file", [*TOOLS, "--out", "{f:a_file}"], "exists and is not a directory"),
    ("eval_tools_out_under_a_file", [*TOOLS, "--out", "{f:a_file}/tools"], "is not a directory"),
    ("eval_tools_onto_a_previous_eval", [*TOOLS, "--out", "{f:eval_a}"], "already holds an evaluation"),
    ("compare_out_is_a_file", ["eval", "--compare", "{f:eval_a}", "{f:eval_b}", "--out", "{f:a_file}"],
     "exists and is not a directory"),
    ("compare_out_is_an_input", ["eval", "--compare", "{f:eval_a}", "{f:eval_b}", "--out", "{f:eval_b}"],
     "is also the input B"),
    ("compare_onto_a_previous_compare", ["eval", "--compare", "{f:eval_a}", "{f:eval_b}", "--out", "{f:compared}"],
     "already holds a comparison (compare.json)"),
    ("retro_out_is_the_data", [*RETRO[:1], "--model", "{f:model}", "--data", "{f:traces_no_newline.jsonl}",
                               "--out", "{f:traces_no_newline.jsonl}", "--resume", "--synthetic"],
     "is also the input --data"),
    ("retro_out_is_a_directory", [*RETRO, "--model", "{f:model}", "--out", "{f:a_dir}", "--resume"],
     "is a directory"),
    ("retro_out_under_a_file", [*RETRO, "--model", "{f:model}", "--out", "{f:a_file}/revised.jsonl"],
     "is not a directory"),
    ("retro_out_inside_the_model", [*RETRO, "--model", "{f:model}", "--out", "{f:model}/revised.jsonl"],
     "lies inside the input --model"),
    ("swirl_data_out_is_a_file", [*SWIRL_DATA, "--out", "{f:a_file}"], "exists and is not a directory"),
    ("swirl_data_out_under_a_file", [*SWIRL_DATA, "--out", "{f:a_file}/swirl"], "is not a directory"),
    ("swirl_data_out_is_the_model", ["swirl-data", "--source", "model", "--model.path={f:model}", *SWIRL,
                                     "--out", "{f:model}"], "is also the input model.path"),
    ("reflection_out_is_a_file", ["reflection", "--checkpoints", "{run}", "--out", "{f:a_file}", "--num-items", "1",
                                  "--max-new-tokens", "2", "--trigger", "none"], "exists and is not a directory"),
    # 3. numbers: NaN, inf, out of range, counts that give an empty run
    ("pairwise_scale_nan", [*PAIRWISE, "--pairwise.judge_path={f:judge}", "--pairwise.scale=nan"],
     "pairwise.scale must be a finite number, got nan"),
    ("pairwise_scale_inf", [*PAIRWISE, "--pairwise.judge_path={f:judge}", "--pairwise.scale=inf"],
     "pairwise.scale must be a finite number, got inf"),
    ("length_penalty_nan", ["rl", "--overwrite", "--reward.kind=length_penalty", "--reward.length_penalty=nan"],
     "reward.length_penalty must be a finite number, got nan"),
    ("length_penalty_minus_inf", ["rl", "--overwrite", "--reward.kind=length_penalty",
                                  "--reward.length_penalty=-inf"], "reward.length_penalty must be a finite number"),
    ("rl_gamma_nan", ["rl", "--overwrite", "--rl.gamma=nan"], "rl.gamma must lie in [0, 1], got nan"),
    ("rl_rollout_top_p_zero", ["rl", "--overwrite", "--rollout.top_p=0"], "rollout.top_p must lie in (0, 1]"),
    ("process_judge_noise_nan", ["rl", "--overwrite", "--reward.kind=process", "--swirl.judge_noise=nan",
                                 "--data.source={f:swirl_out/states_none.jsonl}"],
     "swirl.judge_noise must lie in [0, 1], got nan"),
    ("rm_train_label_scale_nan", ["rm-train", "--overwrite", "--pairwise.label_scale=nan"],
     "pairwise.label_scale must be a finite number >= 0, got nan"),
    ("rm_train_chosen_first_above_one", ["rm-train", "--overwrite", "--pairwise.chosen_first=1.5"],
     "pairwise.chosen_first must lie in [0, 1], got 1.5"),
    ("rm_train_num_test_zero", ["rm-train", "--overwrite", "--pairwise.num_test=0"], "pairwise.num_test must be >= 1"),
    ("rm_train_num_train_zero", ["rm-train", "--overwrite", "--pairwise.num_train=0"],
     "pairwise.num_train must be >= 1"),
    ("swirl_data_judge_noise_nan", [*SWIRL_DATA, "--swirl.judge_noise=nan", "--out", "{f:a_dir}/s"],
     "swirl.judge_noise must lie in [0, 1], got nan"),
    ("swirl_data_judge_noise_above_one", [*SWIRL_DATA, "--swirl.judge_noise=1.5", "--out", "{f:a_dir}/s"],
     "swirl.judge_noise must lie in [0, 1], got 1.5"),
    ("swirl_data_mistake_rate_negative", [*SWIRL_DATA, "--mistake-rate", "-1", "--out", "{f:a_dir}/s"],
     "--mistake-rate must lie in [0, 1], got -1"),
    ("swirl_data_mistake_rate_nan", [*SWIRL_DATA, "--mistake-rate", "nan", "--out", "{f:a_dir}/s"],
     "--mistake-rate must lie in [0, 1], got nan"),
    ("swirl_data_kb_people_zero", [*SWIRL_DATA, "--swirl.kb_people=0", "--out", "{f:a_dir}/s"],
     "swirl.kb_people must be >= 3"),
    ("swirl_data_num_per_question_zero", [*SWIRL_DATA, "--num-per-question", "0", "--out", "{f:a_dir}/s"],
     "--num-per-question must be >= 1, got 0"),
    ("swirl_data_num_questions_negative", [*SWIRL_DATA, "--num-questions", "-1", "--out", "{f:a_dir}/s"],
     "--num-questions must be >= 0 (0: all), got -1"),
    ("swirl_data_no_questions", [*SWIRL_DATA, "--swirl.kb_people=3", "--swirl.kb_seed=287", "--out", "{f:a_dir}/s"],
     "has no train questions"),
    ("eval_tools_no_questions", [*TOOLS, "--swirl.kb_people=3", "--swirl.kb_seed=1", "--out", "{f:a_dir}/t"],
     "has no test questions"),
    ("eval_tools_max_steps_negative", [*TOOLS, "--swirl.max_steps=-1", "--out", "{f:a_dir}/t"],
     "swirl.max_steps must be >= 0"),
    ("concise_temperature_nan", [*CONCISE, "--data", "{f:good.jsonl}", "--out", "{f:a_dir}/p.jsonl",
                                 "--rollout.temperature=nan"], "rollout.temperature must be a finite number >= 0"),
    ("retro_temperature_negative", [*RETRO, "--model", "{f:model}", "--out", "{f:a_dir}/r.jsonl", "--temperature",
                                    "-1"], "--temperature must be a finite number >= 0, got -1"),
    ("retro_top_p_nan", [*RETRO, "--model", "{f:model}", "--out", "{f:a_dir}/r.jsonl", "--top-p", "nan"],
     "--top-p must lie in (0, 1], got nan"),
    ("reflection_max_new_tokens_zero", ["reflection", "--checkpoints", "{run}", "--out", "{f:a_dir}/refl",
                                        "--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
    # 4. user files: one line naming the file / line / key
    ("compare_summary_not_an_object", ["eval", "--compare", "{f:cmp_not_object}", "{f:eval_b}"],
     "cmp_not_object/summary.json: expected a JSON object"),
    ("compare_summary_mean_a_string", ["eval", "--compare", "{f:eval_a}", "{f:cmp_str_mean}"],
     "cmp_str_mean/summary.json: key 'mean@n' must be a finite number"),
    ("compare_summary_mean_nan", ["eval", "--compare", "{f:eval_a}", "{f:cmp_nan_mean}"],
     "cmp_nan_mean/summary.json: key 'mean@n' must be a finite number"),
    ("compare_summary_not_utf8", ["eval", "--compare", "{f:cmp_not_utf8}", "{f:eval_b}"],
     "cmp_not_utf8/summary.json: not UTF-8"),
    ("compare_samples_malformed", ["eval", "--compare", "{f:eval_a}", "{f:cmp_bad_samples}"],
     "cmp_bad_samples/samples.jsonl:2: not valid JSON"),
    ("compare_samples_without_correct", ["eval", "--compare", "{f:cmp_samples_no_correct}", "{f:eval_b}"],
     "cmp_samples_no_correct/samples.jsonl:1: field 'correct'"),
    ("rm_train_binary_preferences", ["rm-train", "--overwrite", "--pairwise.data={f:prefs_binary.jsonl}"],
     "prefs_binary.jsonl:1: not valid JSON"),
    ("rm_train_preference_lone_surrogate", ["rm-train", "--overwrite", "--pairwise.data={f:prefs_surrogate.jsonl}"],
     "prefs_surrogate.jsonl:2: field 'prompt'"),
    ("eval_prompt_lone_surrogate", [*EVAL, "--data", "{f:surrogate.jsonl}", "--out", "{f:a_dir}/e"],
     "surrogate.jsonl:2: field 'prompt'"),
    ("concise_prompt_lone_surrogate", [*CONCISE, "--data", "{f:surrogate.jsonl}", "--out", "{f:a_dir}/p.jsonl"],
     "surrogate.jsonl:2: field 'prompt'"),
    ("retro_trace_lone_surrogate", [*RETRO[:1], "--model", "{f:model}", "--data", "{f:surrogate.jsonl}", "--out",
                                    "{f:a_dir}/r.jsonl", "--synthetic", "--no-progress"],
     "surrogate.jsonl:2: field 'prompt'"),
    ("retro_reviser_truncated", [*RETRO, "--model", "{f:model}", "--reviser", "{f:truncated_model}", "--out",
                                 "{f:a_dir}/r.jsonl"], "--reviser: "),
    ("swirl_data_judge_truncated", [*SWIRL_DATA, "--swirl.judge={f:truncated_model}", "--out", "{f:a_dir}/s"],
     "swirl.judge: "),
    # 5. append-style outputs: settings recorded beside them; resume only with the same ones
    ("retro_resume_with_another_model", [*RETRO, "--model", "{f:model2}", "--out", "{f:retro.jsonl}", "--resume"],
     "model_weights"),
    ("retro_resume_with_another_temperature", [*RETRO, "--model", "{f:model}", "--out", "{f:retro.jsonl}",
                                               "--resume", "--temperature", "0.9"], "temperature 0.6 -> 0.9"),
    ("retro_resume_with_another_seed", [*RETRO, "--model", "{f:model}", "--out", "{f:retro.jsonl}", "--resume",
                                        "--seed", "3"], "seed 0 -> 3"),
    ("retro_fresh_onto_an_output", [*RETRO, "--model", "{f:model}", "--out", "{f:retro.jsonl}"],
     "pass --resume to continue it or --overwrite"),
    ("retro_resume_without_settings", [*RETRO, "--model", "{f:model}", "--out", "{f:retro_old.jsonl}", "--resume"],
     "retro_old.settings.json"),
    ("swirl_data_rerun_onto_an_output", [*SWIRL_DATA, "--out", "{f:swirl_out}"],
     "pass --resume to continue it or --overwrite"),
    ("swirl_data_resume_with_another_mistake_rate", [*SWIRL_DATA, "--out", "{f:swirl_out}", "--resume",
                                                     "--mistake-rate", "0.5"], "mistake_rate 0.3 -> 0.5"),
    ("swirl_data_resume_with_another_kb_seed", [*SWIRL_DATA, "--out", "{f:swirl_out}", "--resume",
                                                "--swirl.kb_seed=4"], "swirl.kb_seed 0 -> 4"),
    ("swirl_data_resume_with_another_source", ["swirl-data", "--source", "model", "--model.path={f:model}", *SWIRL,
                                               "--num-questions", "2", "--num-per-question", "1", "--out",
                                               "{f:swirl_out}", "--resume"], "source 'scripted' -> 'model'"),
]

CONFIG_COMMANDS = ("sft", "rl", "rm-train")  # these read the finished run's micro.toml
RUN_DIR_COMMANDS = ("sft", "rl", "rm-train", "eval")  # these get the run copy as log.run_dir


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_paper_command_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, finished_run, files, cli, argv,
                                                                        needle):
    run, inputs = tmp_path / "run", tmp_path / "inputs"
    shutil.copytree(finished_run, run)
    shutil.copytree(files, inputs)
    before, inputs_before = _snapshot(run), _snapshot(inputs)
    args = [_sub(a, inputs, run) for a in argv]
    head = [args[0]]
    if args[0] in CONFIG_COMMANDS:
        head += ["--config", str(finished_run.parent / "micro.toml")]
    if args[0] in RUN_DIR_COMMANDS and "--compare" not in args:
        head.append(f"--log.run_dir={run}")  # a case's own --log.run_dir comes later and wins
    code, _, err = cli(*head, *args[1:])
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("reasonrl: error: ") and needle in err, err
    assert _snapshot(run) == before
    assert _snapshot(inputs) == inputs_before
