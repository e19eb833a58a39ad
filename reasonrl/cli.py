"""`reasonrl <command> ...`: each command parses its arguments and calls exactly one function (`sft`, `rl` and `eval`
call the Python API, `reasonrl/api.py`, as a script would).

Config-driven commands take `--config FILE.toml` and any number of `--section.key=value` overrides. Bad
input (a missing file, malformed TOML, an unknown key, a wrong type, a malformed data line) prints one line
on stderr naming the file / line / key and exits with code 2, without a traceback. User code failing during a
run (a reward function) prints one line, then the user's own frames, and exits with code 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from reasonrl.errors import UserCodeError, UserError

COMMANDS = {
    "world": "write synthetic-world problems (prompt, gold chain of thought, answer) to a JSONL file",
    "tokenizer": "train the embedded byte-level BPE tokenizer on the synthetic world and save it",
    "init-model": "build a fresh tiny model (preset) with the embedded tokenizer and save it",
    "sft": "supervised fine-tuning on synthetic traces or a JSONL file (resumable)",
    "rl": "RL post-training: PPO, VAPO (rl.algo=ppo) or GRPO, DAPO (rl.algo=grpo); see configs/",
    "eval": "sample answers on a benchmark and report mean@N, pass@k, lengths, no-answer rate",
    "concise": "Concise RL (arXiv 2504.05185): `concise select` picks the phase-2 problems by solve rate",
    "swirl-data": "SWiRL: tool-use trajectories (scripted or sampled) -> judges -> filtered step-wise SFT / RL data",
    "rm-train": "Pairwise-RL (arXiv 2504.04950): train a pairwise YES/NO judge or a Bradley-Terry reward model",
    "reflection": "probe checkpoints with adversarial chains of thought: accuracy and explicit reflection vs compute",
    "retro-search": "Retro-Search (arXiv 2504.04383): revise correct traces into shorter correct ones (resumable)",
    "demo": "the main job on the embedded default: world -> tokenizer -> model -> SFT -> eval",
    "export": "export --merge RUN OUT: a LoRA run's adapter merged into its base, written as a plain HF model",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reasonrl", description="RL post-training of reasoning language models.")
    sub = p.add_subparsers(dest="command", metavar="<command>", required=True)
    cmds = {name: sub.add_parser(name, help=help_, description=help_) for name, help_ in COMMANDS.items()}
    for name in ("world", "tokenizer", "init-model", "sft", "rl", "eval", "concise", "swirl-data", "rm-train"):
        cmds[name].add_argument("--config", help="TOML config file (see configs/)")
        cmds[name].epilog = "Any config field can be overridden with --section.key=value."
    cmds["world"].add_argument("--out", required=True, help="output JSONL file")
    cmds["world"].add_argument("--split", choices=["train", "test"], default="train")
    cmds["world"].add_argument("--num", type=int, help="number of problems (default: data.num_train / num_test)")
    cmds["tokenizer"].add_argument("--out", required=True, help="output directory")
    cmds["init-model"].add_argument("--out", required=True, help="output directory (HF model + tokenizer)")
    for name in ("sft", "rl"):
        cmds[name].add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    for name in ("sft", "rl", "rm-train"):
        cmds[name].add_argument("--overwrite", action="store_true",
                                help="start afresh in a run dir that already holds a run, replacing that run (kept "
                                "in <run dir>/.overwritten/ until the new run's first checkpoint)")
    cmds["eval"].add_argument("--overwrite", action="store_true",
                              help="replace an earlier evaluation (or compare.json) in the output directory")
    cmds["swirl-data"].add_argument("--resume", action="store_true",
                                    help="continue the data in --out (same settings: <out>/settings.json)")
    cmds["swirl-data"].add_argument("--overwrite", action="store_true", help="replace the data in --out")
    cmds["eval"].add_argument("--model", help="local HF model directory (sets model.path)")
    cmds["eval"].add_argument("--data", help="synthetic, gsm8k, math500, aime24, amc23, a JSONL / parquet / JSON / "
                              "CSV / Arrow file, a save_to_disk directory or hub:owner/name")
    cmds["eval"].add_argument("--num-samples", type=int, help="samples per problem (sets eval.num_samples)")
    cmds["eval"].add_argument("--out", help="output directory (default: log.run_dir)")
    cmds["eval"].add_argument("--reward", action="append", metavar="KIND",
                              help="also score every sample with this reward (a kind, 'file.py:name' or "
                              "'package.module:name'; repeat for several: reward.kinds) and report its mean")
    cmds["eval"].add_argument("--tools", action="store_true", help="SWiRL multi-step tool use on the swirl.task test "
                              "questions: accuracy, steps used, tool errors, process score")
    cmds["swirl-data"].add_argument("--out", required=True, help="output directory")
    cmds["swirl-data"].add_argument("--source", choices=["scripted", "model"], default="model",
                                    help="model: sample model.path at rollout.temperature; scripted: the world's "
                                    "scripted solutions with injected mistakes (the base policy's SFT data)")
    cmds["swirl-data"].add_argument("--num-questions", type=int, default=0, help="training questions (0: all)")
    cmds["swirl-data"].add_argument("--num-per-question", type=int, default=5, help="trajectories each (paper: 5)")
    cmds["swirl-data"].add_argument("--mistake-rate", type=float, default=0.3, help="scripted: P(a step is a mistake)")
    cmds["eval"].add_argument("--compare", nargs=2, metavar=("A", "B"),
                              help="instead of evaluating: print two eval output dirs (or dirs of them, one per "
                              "benchmark) side by side: accuracy and length of B vs A; --out writes compare.json")
    cmds["concise"].add_argument("action", choices=["select"], help="select: solve rates -> phase-2 JSONL")
    cmds["concise"].add_argument("--model", help="local HF model directory (sets model.path)")
    cmds["concise"].add_argument("--data", help="candidate problems: synthetic, gsm8k, ... or a JSONL path")
    cmds["concise"].add_argument("--out", required=True, help="output JSONL (usable as data.source for `rl`)")
    cmds["concise"].add_argument("--k", type=int, default=8, help="samples per problem (paper: 8)")
    cmds["concise"].add_argument("--num", type=int, default=8, help="problems to keep (paper: 8)")
    cmds["concise"].add_argument("--p-min", type=float, default=0.0, help="keep p_min < solve rate (default 0)")
    cmds["concise"].add_argument("--p-max", type=float, default=1.0, help="keep solve rate < p_max (default 1)")
    cmds["concise"].add_argument("--max-problems", type=int, default=64, help="candidates evaluated, in data order")
    # the sample count is --k, and there is no reward to report; eval's options share the override code
    cmds["concise"].set_defaults(num_samples=None, reward=None)
    cmds["reflection"].add_argument("--checkpoints", required=True,
                                    help="run dir, checkpoints dir, or comma-separated checkpoint dirs")
    cmds["reflection"].add_argument("--data", default="synthetic", choices=["synthetic", "gsm8k"])
    cmds["reflection"].add_argument("--probe", default="situational", choices=["situational", "self"],
                                    help="situational: perturbed gold CoTs (paper Alg. 1); self: each checkpoint's "
                                    "own wrong CoTs on the questions every checkpoint got wrong (Alg. 2)")
    cmds["reflection"].add_argument("--out", default=None, help="output dir (default: <run dir>/reflection_<data>, "
                                    "or reflection_self_<data> with --probe self)")
    cmds["reflection"].add_argument("--num-items", type=int, default=200, help="probe items per seed")
    cmds["reflection"].add_argument("--max-new-tokens", type=int, default=64)
    cmds["reflection"].add_argument("--trigger", action="append", dest="triggers", metavar="TEXT",
                                    help='repeatable; "none" for no trigger (default: none and "Wait,")')
    cmds["reflection"].add_argument("--classifier", default="rules", help='"rules" or "judge:<local HF model dir>"')
    cmds["demo"].add_argument("--run-dir", default="runs/demo", help="where everything is written")
    cmds["demo"].add_argument("--quick", action="store_true", help="a much shorter run, for checking")
    cmds["export"].add_argument("--merge", action="store_true", required=True,
                                help="fold the adapter into the base model (the only export there is)")
    cmds["export"].add_argument("run", help="a LoRA run directory (its final/, else its newest checkpoint) or an "
                                "adapter directory")
    cmds["export"].add_argument("out", help="a new directory (refused if it exists and is not empty)")
    from reasonrl.retro.args import add_arguments as add_retro_arguments

    add_retro_arguments(cmds["retro-search"])
    return p


# Config sections each command reads; another [section] in its --config file gets a warning. Commands not listed
# here are not checked.
_TRAIN_SECTIONS = ("model", "data", "train", "optim", "rollout", "log", "dist")
USES = {
    "world": ("data",),
    "tokenizer": (),
    "init-model": ("model",),
    "sft": _TRAIN_SECTIONS,
    "eval": ("model", "data", "train", "rollout", "eval", "log", "dist", "swirl", "reward", "pairwise"),
}


def _config(args, overrides: list[str]):
    from reasonrl.config import Config, load_config

    uses = USES.get(args.command)
    if args.command == "rl":  # every section but [eval] (reward plug-ins may read theirs)
        uses = [name for name in Config.__dataclass_fields__ if name != "eval"]
    return load_config(args.config, overrides, uses=uses)


def run(argv: list[str]) -> int:
    args, rest = _parser().parse_known_args(argv)
    overrides = [a for a in rest if a.startswith("--")]
    stray = [a for a in rest if not a.startswith("--")]
    if stray:
        raise UserError(f"command line: unexpected argument(s) {' '.join(stray)}")
    if args.command == "reflection":
        if overrides:
            raise UserError("command line: reflection takes no config overrides")
        from reasonrl.reflection.probe import reflection_command

        triggers = tuple("" if t == "none" else t for t in (args.triggers or ["none", "Wait,"]))
        reflection_command(args.checkpoints, args.data, args.out, probe=args.probe, num_items=args.num_items,
                           max_new_tokens=args.max_new_tokens, triggers=triggers, classifier=args.classifier)
        return 0
    if args.command == "retro-search":
        if overrides:
            raise UserError("command line: retro-search takes no config overrides; see reasonrl retro-search --help")
        from reasonrl.retro.args import run_command

        run_command(args)
        return 0
    if args.command == "export":
        if overrides:
            raise UserError("command line: export takes no config overrides")
        from reasonrl.model.export import export_merged

        export_merged(args.run, args.out)
        return 0
    if args.command == "demo":
        if overrides:
            raise UserError("command line: demo takes no config overrides; use the individual commands")
        from reasonrl.demo import run_demo

        run_demo(args.run_dir, quick=args.quick)
        return 0
    if args.command in ("sft", "rl") and args.resume:
        overrides.append("--train.resume=true")
    if args.command in ("sft", "rl", "rm-train") and args.overwrite:
        overrides.append("--train.overwrite=true")
    if args.command == "world" and args.num is not None and args.num < 1:
        raise UserError(f"command line: world --num must be >= 1, got {args.num}")
    if args.command == "eval" and args.compare:
        if overrides or args.model or args.data or args.config:
            raise UserError("command line: eval --compare reads two eval output dirs; no model, data or config")
        from reasonrl.eval.compare import compare_command

        compare_command(*args.compare, out_dir=args.out, overwrite=args.overwrite)
        return 0
    if args.command in ("eval", "concise"):
        overrides = _eval_overrides(args) + overrides
    cfg = _config(args, overrides)
    if args.command == "world":
        from reasonrl.tasks.synthetic import write_split

        write_split(cfg.data, args.split, args.out, num=args.num)
    elif args.command == "tokenizer":
        from reasonrl.model.setup import save_embedded_tokenizer

        save_embedded_tokenizer(args.out)
    elif args.command == "init-model":
        from reasonrl.model.setup import init_model

        init_model(cfg, args.out)
    elif args.command == "sft":
        from reasonrl.api import sft

        sft(cfg)
    elif args.command == "rm-train":
        from reasonrl.pairwise.rm_train import rm_train

        rm_train(cfg)
    elif args.command == "rl":
        from reasonrl.api import rl

        rl(cfg)
    elif args.command == "eval" and args.tools:
        from reasonrl.swirl.evaluate import eval_tools_command

        eval_tools_command(cfg, out_dir=args.out, overwrite=args.overwrite)
    elif args.command == "swirl-data":
        from reasonrl.swirl.data import swirl_data_command

        swirl_data_command(cfg, out=args.out, source=args.source, num_questions=args.num_questions,
                           num_per_question=args.num_per_question, mistake_rate=args.mistake_rate,
                           resume=args.resume, overwrite=args.overwrite)
    elif args.command == "eval":
        from reasonrl.api import evaluate

        evaluate(cfg, out_dir=args.out, overwrite=args.overwrite)
    elif args.command == "concise":
        from reasonrl.concise.select import select_command

        select_command(cfg, out=args.out, k=args.k, num=args.num, p_min=args.p_min, p_max=args.p_max,
                       max_problems=args.max_problems)
    return 0


def _eval_overrides(args) -> list[str]:
    out = []
    if args.model:
        out.append(f"--model.path={args.model}")
    if args.data:  # exactly this data: not a config's test_source
        out += [f"--data.source={args.data}", "--data.test_source="]
    if args.num_samples:
        out.append(f"--eval.num_samples={args.num_samples}")
        out.append(f"--rollout.num_samples={args.num_samples}")
    if args.reward:  # one kind, or several summed (weights from reward.weights)
        out.append("--eval.reward=true")
        out.append(f"--reward.kind={args.reward[0]}" if len(args.reward) == 1 else
                   f"--reward.kinds={json.dumps(args.reward)}")
    return out


def main(argv: list[str] | None = None) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-shard "Writing model shards" bars drown our own progress
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except UserError as e:
        print(f"reasonrl: error: {e}", file=sys.stderr)
        code = 2
    except UserCodeError as e:  # the user's code failed mid-run: their frames follow the one line
        print(f"reasonrl: error: {e}", file=sys.stderr)
        print(e.frames, end="", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("reasonrl: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
