"""Every bad input a user can give the CLI: one line on stderr naming the problem, exit 2, no traceback, and a
run directory that already held a finished run left byte for byte as it was.

Each case runs `reasonrl.cli.main` in this process on a copy of one real finished micro-model SFT run. Cases
that would otherwise stop at "this directory already holds a run" pass `--overwrite`, so they also check that
validation happens before the old run is touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HUGE = 2_000_000  # bytes of one JSONL line: above the default data.max_line_bytes (1 MB)


REWARDS_PY = """
def bonus(prompts, completions, **kw):
    return [0.5] * len(completions)

def boom(prompts, completions, **kw):
    raise KeyError("unit")

def nan(completions, **kw):
    return [float("nan")] * len(completions)

def two_args(a, b):
    return 0.0
"""


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` (Python's bytecode cache of an imported reward file is not a change)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def files(tmp_path_factory, micro_model_dir, finished_run):
    """Bad inputs on disk, by name."""
    d = tmp_path_factory.mktemp("bad_files")
    good = '{"prompt": "Ana has 2 pens. She buys 1 more. How many pens does Ana have now?", ' \
           '"response": "2 + 1 = 3. The answer is \\\\boxed{3}.", "answer": "3"}\n'
    (d / "good.jsonl").write_text(good * 4)
    (d / "empty.jsonl").write_text("")
    (d / "blank.jsonl").write_text("\n   \n\t\n")
    (d / "no_answer.jsonl").write_text('{"prompt": "What is 1 + 1?", "response": "2"}\n' * 4)
    (d / "huge_line.jsonl").write_text(good + '{"prompt": "' + "x" * HUGE + '", "answer": "1"}\n')
    (d / "long_prompt.jsonl").write_text('{"prompt": "' + "Ana has 12 pens. " * 400 + '", "answer": "1"}\n')
    (d / "not_utf8.toml").write_bytes(b"[train]\nsteps = 2  # caf\xe9\n")
    (d / "a_file").write_text("not a directory\n")
    (d / "rewards.py").write_text(REWARDS_PY)
    (d / "a_dir").mkdir()
    for name, damage in [("truncated_model", lambda b: b[: len(b) // 2]), ("random_model", lambda b: b"\x8f" * 4096)]:
        shutil.copytree(micro_model_dir, d / name)
        weights = d / name / "model.safetensors"
        weights.write_bytes(damage(weights.read_bytes()))
    for name, file, text in [("run_config_list", "config.json", "[1, 2]\n"),  # finished runs, one file damaged
                             ("run_config_section", "config.json", '{"train": 3}\n'),
                             ("run_tracker_ids", "trackers.json", '{"tensorboard": "abc"}\n')]:
        shutil.copytree(finished_run, d / name)
        (d / name / file).write_text(text)
    return d


# (id, argv with {run}, {f:<name>}, {model} placeholders, text the one stderr line must contain)
CASES = [
    # config values: type right, range wrong
    ("toml_not_utf8", ["sft", "--config", "{f:not_utf8.toml}"], "not UTF-8"),
    ("steps_zero", ["sft", "--train.steps=0"], "train.steps must be >= 1"),
    ("steps_negative", ["rl", "--train.steps=-3"], "train.steps must be >= 1"),
    ("lr_nan", ["sft", "--optim.lr=nan"], "optim.lr must be a finite number > 0"),
    ("lr_inf", ["sft", "--optim.lr=inf"], "optim.lr must be a finite number > 0"),
    ("lr_zero", ["rl", "--optim.lr=0"], "optim.lr must be a finite number > 0"),
    ("lr_negative", ["sft", "--optim.lr=-1e-3"], "optim.lr must be a finite number > 0"),
    ("batch_size_zero", ["sft", "--train.batch_size=0"], "train.batch_size must be >= 1"),
    ("batch_size_negative", ["sft", "--train.batch_size=-4"], "train.batch_size must be >= 1"),
    ("rollout_batch_size_zero", ["rl", "--rollout.batch_size=0"], "rollout.batch_size must be >= 1"),
    ("grad_accum_zero", ["sft", "--train.grad_accum=0"], "train.grad_accum must be >= 1"),
    ("num_train_zero", ["sft", "--data.num_train=0"], "data.num_train must be >= 1"),
    ("difficulty_zero", ["sft", "--data.difficulty=0"], "data.difficulty must be one of 1, 2, 3, 4, 5"),
    ("difficulty_six", ["rl", "--data.difficulty=6"], "data.difficulty must be one of 1, 2, 3, 4, 5"),
    ("eval_examples_negative", ["sft", "--train.eval_examples=-1"], "train.eval_examples must be >= 1"),
    ("max_examples_negative", ["eval", "--model", "{model}", "--eval.max_examples=-2"],
     "eval.max_examples must be >= 0"),
    ("max_line_bytes_zero", ["sft", "--data.max_line_bytes=0"], "data.max_line_bytes must be >= 1"),
    ("lora_r_negative", ["sft", "--model.lora_r=-1"], "model.lora_r must be >= 0"),
    ("lora_alpha_zero", ["rl", "--model.lora_alpha=0"], "model.lora_alpha must be a finite number > 0"),
    ("lora_dropout_one", ["sft", "--model.lora_dropout=1.0"], "model.lora_dropout must lie in [0, 1)"),
    ("lora_without_base", ["rl", "--overwrite", "--model.lora_r=8"], "model.lora_r = 8 needs model.path"),
    ("lora_target_unknown", ["sft", "--overwrite", "--model.path={model}", "--model.lora_r=4",
                             "--model.lora_target=['qq_proj']"], "model.lora_target: 'qq_proj' names no linear layer"),
    # data files
    ("sft_empty_jsonl", ["sft", "--overwrite", "--data.source={f:empty.jsonl}"], "empty.jsonl: no records"),
    ("sft_blank_jsonl", ["sft", "--overwrite", "--data.source={f:blank.jsonl}"], "blank.jsonl: no records"),
    ("sft_no_answer", ["sft", "--overwrite", "--data.source={f:no_answer.jsonl}"],
     "no_answer.jsonl:1: missing required field 'answer'"),
    ("sft_huge_line", ["sft", "--overwrite", "--data.source={f:huge_line.jsonl}"],
     "huge_line.jsonl:2: line longer than data.max_line_bytes=1000000"),
    ("sft_bad_test_source", ["sft", "--overwrite", "--data.source={f:good.jsonl}",
                             "--data.test_source={f:empty.jsonl}"], "empty.jsonl: no records"),
    ("rl_prompt_too_long", ["rl", "--overwrite", "--data.source={f:long_prompt.jsonl}"],
     "data: prompt long_prompt:1 has 2804 tokens, but the model has 1024 positions"),
    ("grpo_prompt_too_long", ["rl", "--overwrite", "--rl.algo=grpo", "--data.source={f:long_prompt.jsonl}"],
     "data: prompt long_prompt:1 has 2804 tokens"),
    ("rl_empty_jsonl", ["rl", "--overwrite", "--data.source={f:empty.jsonl}"], "empty.jsonl: no records"),
    ("rl_no_answer", ["rl", "--overwrite", "--data.source={f:no_answer.jsonl}"], "missing required field 'answer'"),
    # a reward that fails on the data: the dry call (reward/check.py) stops it before the old run is touched
    ("rl_process_reward_on_plain_records", ["rl", "--overwrite", "--reward.kind=process",
                                            "--data.source={f:good.jsonl}"], "has no 'task' field"),
    ("grpo_process_reward_on_plain_records", ["rl", "--overwrite", "--rl.algo=grpo", "--reward.kind=process",
                                              "--data.source={f:good.jsonl}"], "has no 'task' field"),
    ("eval_empty_jsonl", ["eval", "--model", "{model}", "--data", "{f:empty.jsonl}"], "empty.jsonl: no records"),
    ("eval_blank_jsonl", ["eval", "--model", "{model}", "--data", "{f:blank.jsonl}"], "blank.jsonl: no records"),
    ("eval_no_answer", ["eval", "--model", "{model}", "--data", "{f:no_answer.jsonl}"],
     "no_answer.jsonl:1: missing required field 'answer'"),
    ("eval_huge_line", ["eval", "--model", "{model}", "--data", "{f:huge_line.jsonl}"],
     "huge_line.jsonl:2: line longer than data.max_line_bytes"),
    ("eval_prompt_too_long", ["eval", "--model", "{model}", "--data", "{f:long_prompt.jsonl}"],
     "has 2804 tokens, but the model has 1024 positions"),
    ("sft_test_prompt_too_long", ["sft", "--overwrite", "--data.source={f:good.jsonl}",
                                  "--data.test_source={f:long_prompt.jsonl}"],
     "data: prompt long_prompt:1 has 2804 tokens, but the model has 1024 positions"),
    # your reward: loaded, its shape known and a dry call passed before the old run is touched (reward/custom.py)
    ("rl_reward_unknown_kind", ["rl", "--overwrite", "--reward.kind=nope"], "reward.kind 'nope' is not one of"),
    ("rl_reward_missing_file", ["rl", "--overwrite", "--reward.kind={f:a_dir}/missing.py:f"],
     "missing.py:f': no such file"),
    ("rl_reward_missing_name", ["rl", "--overwrite", "--reward.kind={f:rewards.py}:nope"], "rewards.py has no 'nope'"),
    ("rl_reward_fits_no_shape", ["rl", "--overwrite", "--reward.kind={f:rewards.py}:two_args"],
     "its parameters (a, b) fit no reward shape"),
    ("grpo_reward_raises_on_dry_call", ["rl", "--overwrite", "--rl.algo=grpo",
                                        '--reward.kinds=["verifier", "{f:rewards.py}:boom"]'],
     "rewards.py:boom' raised on a dry call on the first 2 records: KeyError: 'unit' (at "),
    ("rl_reward_returns_nan", ["rl", "--overwrite", "--reward.kind={f:rewards.py}:nan"],
     "rewards.py:nan': returned a non-finite score (nan) for response 0"),
    ("rl_reward_no_correctness_pos_nll", ["rl", "--overwrite", "--reward.kind={f:rewards.py}:bonus",
                                          "--rl.pos_nll_coef=0.1"], "rl.pos_nll_coef = 0.1 trains on correct"),
    ("grpo_reward_no_correctness_dynamic", ["rl", "--overwrite", "--rl.algo=grpo", "--rl.dynamic_sampling=true",
                                            "--reward.kind={f:rewards.py}:bonus"], "keeps groups by accuracy"),
    ("rl_reward_workers_without_function", ["rl", "--overwrite", "--reward.workers=2"],
     "reward.workers = 2 runs plain (TRL- or verl-style) functions, but reward 'verifier' has none"),
    ("rl_reward_weights_miscounted", ["rl", "--overwrite", "--reward.weights=[1, 2]"],
     "reward.weights has 2 entries for 1 rewards"),
    # models
    ("eval_truncated_safetensors", ["eval", "--model", "{f:truncated_model}", "--data", "{f:good.jsonl}"],
     "truncated_model: cannot load"),
    ("eval_random_safetensors", ["eval", "--model", "{f:random_model}", "--data", "{f:good.jsonl}"],
     "random_model: cannot load"),
    ("sft_random_safetensors", ["sft", "--overwrite", "--model.path={f:random_model}"], "random_model: cannot load"),
    # output paths
    ("eval_out_is_a_file", ["eval", "--model", "{model}", "--data", "{f:good.jsonl}", "--out", "{f:a_file}"],
     "a_file: exists and is not a directory"),
    ("eval_out_under_a_file", ["eval", "--model", "{model}", "--data", "{f:good.jsonl}", "--out", "{f:a_file}/sub"],
     "is not a directory"),
    ("sft_run_dir_is_a_file", ["sft", "--log.run_dir={f:a_file}"], "a_file: exists and is not a directory"),
    ("init_model_out_is_a_file", ["init-model", "--out", "{f:a_file}"], "a_file: exists and is not a directory"),
    ("world_out_is_a_dir", ["world", "--out", "{f:a_dir}"], "a_dir: is a directory"),
    ("world_num_zero", ["world", "--out", "{f:a_dir}/w.jsonl", "--num", "0"], "world --num must be >= 1"),
    ("world_num_negative", ["world", "--out", "{f:a_dir}/w.jsonl", "--num", "-5"], "world --num must be >= 1"),
    # run directories
    ("sft_into_a_finished_run", ["sft"], "already holds a run"),
    ("rl_into_a_finished_run", ["rl"], "already holds a run"),
    ("resume_with_changed_lr", ["sft", "--resume", "--optim.lr=0.1"], "optim.lr"),
    ("resume_and_overwrite", ["sft", "--resume", "--overwrite"], "--resume and --overwrite"),
    ("resume_config_json_not_an_object", ["sft", "--resume", "--log.run_dir={f:run_config_list}"],
     "run_config_list/config.json: expected a JSON object, got list"),
    ("resume_config_json_section_not_a_table", ["sft", "--resume", "--log.run_dir={f:run_config_section}"],
     "run_config_section/config.json: not a valid resolved config (section 'train' is a int, not an object)"),
    ("resume_trackers_json_ids_not_objects", ["sft", "--resume", "--log.run_dir={f:run_tracker_ids}",
                                              '--log.report_to=["tensorboard"]'],
     "run_tracker_ids/trackers.json: 'tensorboard' must be an object of run ids, got str"),
    ("resume_nothing_to_resume", ["sft", "--resume", "--log.run_dir={f:a_dir}/never_ran"], "nothing to resume"),
]


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, finished_run, files, micro_model_dir,
                                                          cli, argv, needle):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before, files_before = _snapshot(run), _snapshot(files)
    config = ["--config", str(finished_run.parent / "micro.toml")] if argv[0] in ("sft", "rl") else []
    args = [a.replace("{model}", str(micro_model_dir)).replace("{f:", f"{files}/").replace("}", "")
            for a in argv]
    if "--config" in args:
        config = []
    # the copy's own run dir (a case's own --log.run_dir comes later and wins), and the other commands' output
    code, _, err = cli(*args[:1], *config, f"--log.run_dir={run}", *args[1:])
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("reasonrl: error: ") and needle in err, err
    assert _snapshot(run) == before
    assert _snapshot(files) == files_before
    assert not list(files.glob("**/*.tmp")) and not (files / "a_dir" / "never_ran").exists()
