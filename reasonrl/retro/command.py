"""`reasonrl retro-search`: revise a JSONL file of traces into shorter correct ones, resumably.

Input: one trace a line with `prompt`, `response` and `answer` (what `reasonrl eval --eval.split=train` writes to
samples.jsonl). Traces whose response is wrong under the verifier are skipped; the others are revised in chunks
of `batch_size` and each is appended to `out` (one write + fsync) as soon as it is finished, so a crash loses
only the traces in flight; `--resume` continues after the last complete line. Output lines keep the input's
`prompt`, `answer` and `id`, hold the revised `response`, the `original_response`, and per-trace counts.
Summary statistics are printed and written to `<out stem>.stats.json`; the settings that determine the output
(models' and input's fingerprints, every RetroParams field, template, chunking, verifier) to
`<out stem>.settings.json`, which `--resume` must match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.eval.report import print_table
from reasonrl.outputs import read_appended, write_atomic
from reasonrl.retro.search import RetroParams, Revision, Verifier, engine_continue, revise, with_think_end
from reasonrl.retro.segment import num_switches, split_steps

STAT_KEYS = ("tokens", "switches", "steps")


def load_traces(path: str | Path) -> list[dict]:
    """Records `{prompt, response, answer, id}`; a missing field or bad line is a UserError naming file:line."""
    from reasonrl.tasks.datasets import load_jsonl

    return load_jsonl(path, require=("prompt", "response", "answer"))


def read_done(out: Path, traces: list[dict]) -> dict[int, dict]:
    """The finished records of an earlier run, by input index. A torn last line (a crash mid-write) is cut off;
    a record whose id does not match the input at its index means another input file: a UserError."""
    keep = read_appended(out)
    done = {}
    for lineno, line in enumerate(keep.decode("utf-8").splitlines(), start=1):
        try:
            rec = json.loads(line)
            index = rec["index"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{out}:{lineno}: not a retro-search record; remove it or pick another --out") from None
        if not isinstance(index, int) or not (0 <= index < len(traces)) or traces[index]["id"] != rec.get("id"):
            raise UserError(f"{out}:{lineno}: trace {index} is not in the input (another --data?); remove {out}")
        done[index] = rec
    return done


def _record(index: int, trace: dict, rev: Revision, tokenizer, p: RetroParams) -> dict:
    rec = {"index": index, "id": trace["id"], "prompt": trace["prompt"], "answer": trace["answer"],
           "response": rev.response, "original_response": rev.original, "accepted": rev.accepted}
    for name, text in (("before", rev.original), ("after", rev.response)):
        rec[f"tokens_{name}"] = len(tokenizer.encode(text, add_special_tokens=False))
        rec[f"switches_{name}"] = num_switches(text, p.keywords, p.step_sep)
        rec[f"steps_{name}"] = len(split_steps(text, p.step_sep))
    return rec


def summarize(records: list[dict], num_traces: int, num_correct: int) -> dict:
    """Totals over the written records; per-trace means of tokens, switches and steps before and after."""
    n = max(1, len(records))
    stats = {"traces": num_traces, "traces_correct": num_correct, "traces_revised": len(records),
             "traces_changed": sum(r["response"] != r["original_response"] for r in records),
             "accepted_revisions": sum(r["accepted"] for r in records)}
    for key in STAT_KEYS:
        for name in ("before", "after"):
            stats[f"{key}_{name}"] = sum(r[f"{key}_{name}"] for r in records) / n
    return stats


def _append(f, rec: dict) -> None:
    f.write(json.dumps(rec) + "\n")
    f.flush()
    os.fsync(f.fileno())


def retro_search(model, tokenizer, traces: list[dict], out: str | Path, *, verifier: Verifier, p: RetroParams,
                 template: str = "", batch_size: int = 16, resume: bool = False, progress: bool = True,
                 count_tokenizer=None, cont=None) -> dict:
    """Revise the correct `traces` with `model` (the reviser) and append them to `out`; returns the statistics.

    `count_tokenizer` counts tokens (default: `tokenizer`); `cont` replaces the engine (tests script it).
    """
    from reasonrl.tasks.prompts import format_prompt

    out = Path(out)
    if out.exists() and out.stat().st_size and not resume:
        raise UserError(f"{out} exists: pass --resume to continue it, or --overwrite to replace it")
    done = read_done(out, traces) if out.exists() else {}
    correct = [i for i, t in enumerate(traces) if verifier(t["response"], t["answer"])]
    if p.mode == "early_exit":  # close a thinking block only where the reviser has one
        p = with_think_end(p, tokenizer)
    cont = cont or engine_continue(model, tokenizer)
    count_tokenizer = count_tokenizer or tokenizer
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(correct), initial=len(done), desc="retro-search", dynamic_ncols=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for c in range(0, len(correct), batch_size):
            todo = [i for i in correct[c : c + batch_size] if i not in done]
            revs = {i: Revision(format_prompt(tokenizer, traces[i]["prompt"], template), traces[i]["answer"],
                                traces[i]["response"]) for i in todo}
            by_id = {id(r): i for i, r in revs.items()}
            for rev in revise(list(revs.values()), cont, verifier, p, seed=p.seed + 1000 * (c // batch_size)):
                i = by_id[id(rev)]
                assert verifier(rev.response, rev.answer), f"revised trace {i} is not correct"
                done[i] = _record(i, traces[i], rev, count_tokenizer, p)
                _append(f, done[i])
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    stats = summarize([done[i] for i in sorted(done)], len(traces), len(correct))
    write_atomic(out.with_name(out.stem + ".stats.json"), json.dumps(stats, indent=2) + "\n")
    return stats


def retro_settings(model_path: str, reviser_path: str | None, data: str, *, p: RetroParams, template: str,
                   batch_size: int, synthetic: bool) -> dict:
    """What determines the revised traces: the models' and the input's bytes (`outputs.fingerprint`, so a moved copy
    still matches), every RetroParams field, the prompt template, the chunking (its seeds) and the verifier."""
    from dataclasses import asdict

    from reasonrl.outputs import fingerprint

    return {"model_weights": fingerprint(model_path), "reviser_weights": fingerprint(reviser_path) if reviser_path
            else None, "data_file": fingerprint(data), **asdict(p), "template": template, "batch_size": batch_size,
            "synthetic": synthetic}


def retro_search_command(model_path: str, data: str, out: str, *, reviser_path: str | None, p: RetroParams,
                         template: str, batch_size: int, synthetic: bool, resume: bool, progress: bool,
                         overwrite: bool = False) -> dict:
    """`reasonrl retro-search`: self mode when no reviser is given (the model revises its own traces), else
    weak-to-strong (the reviser continues, the model's tokenizer counts tokens).

    Every check comes first: the outputs (`--out`, `<stem>.stats.json`, `<stem>.settings.json`: writable, not an
    input), the models, the traces, and the resume rule (`outputs.check_settings`: an existing `--out` continues
    only with `--resume` and the settings it was begun with, or is replaced with `--overwrite`)."""
    from reasonrl.model.tiny import check_model_dir, load_model
    from reasonrl.outputs import check_output_file, check_settings, write_settings
    from reasonrl.tasks import synthetic as world
    from reasonrl.tasks import verify

    inputs = [("--data", data), ("--model", model_path), ("--reviser", reviser_path)]
    out_path = check_output_file(out, "retro-search --out", inputs=inputs)
    stats_path, settings_path = (out_path.with_name(f"{out_path.stem}.{kind}.json") for kind in ("stats", "settings"))
    for path in (stats_path, settings_path):
        check_output_file(path, f"retro-search --out's {path.name}", inputs=inputs)
    check_model_dir(model_path, "--model")
    if reviser_path:
        check_model_dir(reviser_path, "--reviser")
    traces = load_traces(data)
    settings = retro_settings(model_path, reviser_path, data, p=p, template=template, batch_size=batch_size,
                              synthetic=synthetic)
    check_settings(out_path, settings_path, settings, what="retro-search --out", resume=resume, overwrite=overwrite,
                   exists=out_path.exists() and out_path.stat().st_size > 0)
    reviser, tokenizer = load_model(reviser_path or model_path, what="--reviser" if reviser_path else "--model")
    count_tokenizer = _tokenizer(model_path) if reviser_path else tokenizer
    if overwrite:  # every check passed: the old output goes now
        out_path.unlink(missing_ok=True)
        stats_path.unlink(missing_ok=True)
    write_settings(settings_path, settings)
    stats = retro_search(reviser, tokenizer, traces, out_path, verifier=world.verify if synthetic else verify.verify,
                         p=p, template=template, batch_size=batch_size, resume=resume, progress=progress,
                         count_tokenizer=count_tokenizer)
    mode = "self" if not reviser_path else "weak-to-strong"
    print_table(f"retro-search ({mode}, {p.mode}): {data} -> {out}", stats)
    return stats


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"--model {path}: no tokenizer there ({e})") from None
