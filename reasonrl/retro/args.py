"""The `reasonrl retro-search` command line: its options (read by cli.py's parser) and the call they make."""

from __future__ import annotations

import argparse
import math

from reasonrl.errors import UserError
from reasonrl.retro.params import RetroParams
from reasonrl.retro.segment import SYNTHETIC_STEP_SEP
from reasonrl.userfiles import check_text

SYNTHETIC_EXIT_TEXT = " The answer is \\boxed{"
"""The synthetic world's answer sentence, up to the answer (early-exit mode)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = RetroParams()
    p.add_argument("--model", required=True, help="the model whose traces these are (HF dir; counts tokens)")
    p.add_argument("--reviser", default=None, help="a smaller reviser (weak-to-strong); default: --model (self)")
    p.add_argument("--data", required=True, help="JSONL traces: prompt, response, answer (eval's samples.jsonl)")
    p.add_argument("--out", required=True, help="output JSONL of revised traces (+ <stem>.stats.json)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted --out (same settings: "
                   "<stem>.settings.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--synthetic", action="store_true",
                   help=f"the synthetic world: step separator {SYNTHETIC_STEP_SEP!r}, its answer sentence as exit "
                   "text, its exact verifier")
    p.add_argument("--mode", choices=["full", "partial", "early_exit"], default=d.mode)
    p.add_argument("--max-thoughts", type=int, default=d.max_thoughts, help="partial mode: boundaries to revise")
    p.add_argument("--keyword", action="append", dest="keywords", metavar="WORD",
                   help=f"repeatable transition keyword (default: {', '.join(d.keywords)})")
    p.add_argument("--step-sep", default=None, help="step separator (default: a blank line; --synthetic: '.')")
    p.add_argument("--exit-text", default=None, help="early_exit: text forced to make the model answer")
    p.add_argument("--exit-max-new-tokens", type=int, default=d.exit_max_new_tokens,
                   help="early_exit: tokens the model may write after the exit text (cut after the boxed answer)")
    p.add_argument("--think-end", default=d.think_end,
                   help="early_exit: the tag closing a thinking block, forced first when the reviser's tokenizer has "
                   "it ('' = never)")
    p.add_argument("--gamma", type=float, default=d.gamma, help="value discount gamma^(N - i) (paper: not given)")
    p.add_argument("--num-rollouts", type=int, default=d.num_rollouts, help="rollouts per thought boundary")
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch-size", type=int, default=32, help="traces revised together")
    p.add_argument("--template", default="", help="prompt format with {prompt}; default: the chat template")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def params_from_args(args: argparse.Namespace) -> RetroParams:
    """RetroParams from the parsed options; an out-of-range value is a UserError naming the option."""
    checks = [(args.gamma, 0 < args.gamma < 1, "--gamma must lie in (0, 1)"),
              (args.temperature, 0 <= args.temperature < math.inf, "--temperature must be a finite number >= 0"),
              (args.top_p, 0 < args.top_p <= 1, "--top-p must lie in (0, 1]"),
              (args.seed, args.seed >= 0, "--seed must be >= 0"),
              (args.num_rollouts, args.num_rollouts >= 1, "--num-rollouts must be >= 1"),
              (args.max_thoughts, args.max_thoughts >= 1, "--max-thoughts must be >= 1"),
              (args.batch_size, args.batch_size >= 1, "--batch-size must be >= 1"),
              (args.max_new_tokens, args.max_new_tokens >= 1, "--max-new-tokens must be >= 1"),
              (args.exit_max_new_tokens, args.exit_max_new_tokens >= 1, "--exit-max-new-tokens must be >= 1"),
              (args.step_sep, args.step_sep is None or args.step_sep != "", "--step-sep must be non-empty"),
              (args.keywords, not args.keywords or all(args.keywords), "--keyword must be non-empty")]
    for value, ok, message in checks:
        if not ok:
            raise UserError(f"retro-search: {message}, got {value!r}")
    texts = {"--keyword": args.keywords or [], "--step-sep": [args.step_sep or ""],
             "--exit-text": [args.exit_text or ""], "--template": [args.template]}
    for option, values in texts.items():
        for text in values:
            check_text(text, "retro-search", option)
    d = RetroParams()
    return RetroParams(
        keywords=tuple(args.keywords) if args.keywords else d.keywords,
        step_sep=args.step_sep or (SYNTHETIC_STEP_SEP if args.synthetic else d.step_sep),
        mode=args.mode, max_thoughts=args.max_thoughts, gamma=args.gamma, num_rollouts=args.num_rollouts,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        exit_text=args.exit_text if args.exit_text is not None else (
            SYNTHETIC_EXIT_TEXT if args.synthetic else d.exit_text),
        exit_max_new_tokens=args.exit_max_new_tokens, think_end=args.think_end, seed=args.seed)


def run_command(args: argparse.Namespace) -> dict:
    from reasonrl.retro.command import retro_search_command

    return retro_search_command(args.model, args.data, args.out, reviser_path=args.reviser,
                                p=params_from_args(args), template=args.template, batch_size=args.batch_size,
                                synthetic=args.synthetic, resume=args.resume, overwrite=args.overwrite,
                                progress=not args.no_progress)
