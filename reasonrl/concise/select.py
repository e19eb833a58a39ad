"""`reasonrl concise select`: estimate each problem's solve rate from k samples and pick the tiny phase-2 set.

Concise RL's phase 2 (arXiv 2504.05185 §5; released scripts: 8 MATH problems x 8 samples) trains on "a very small
set of problems that the model solves at least sometimes". The rule here: keep problems with
p_min < p_hat < p_max, p_hat = (# correct of k samples) / k, in data order, the first `num` of them. The paper
states only "solves at least sometimes", so the defaults are p_min = 0, p_max = 1 (strict: 0 < p_hat < 1); its
AIME runs pick buckets p in {1/16, 1/8, 1/4, 3/8}, which a narrower band reproduces.

The output is a JSONL file `reasonrl rl` reads as `data.source` (fields prompt, answer, id) with each problem's
`solve_rate`, `num_samples` and `mean_length` beside them; `<out>.rates.jsonl` holds every evaluated problem.
"""

from __future__ import annotations

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.outputs import MODEL_AND_DATA, check_output_file, config_inputs, write_jsonl


def select_problems(rates: list[float], *, p_min: float, p_max: float, num: int) -> list[int]:
    """Indices of the first `num` rates with p_min < rate < p_max, in order (both bounds strict)."""
    return [i for i, p in enumerate(rates) if p_min < p < p_max][:num]


def solve_rates(samples: list[dict], ids: list[str]) -> list[dict]:
    """Per problem id (in `ids` order): `{"solve_rate", "num_samples", "mean_length"}` from `run_eval` samples."""
    by_id: dict[str, list[dict]] = {i: [] for i in ids}
    for s in samples:
        by_id[s["problem_id"]].append(s)
    out = []
    for i in ids:
        rows = by_id[i]
        assert rows, f"problem {i} got no samples"
        out.append({"solve_rate": sum(r["correct"] for r in rows) / len(rows), "num_samples": len(rows),
                    "mean_length": sum(r["length"] for r in rows) / len(rows)})
    return out


def select_command(cfg: Config, *, out: str, k: int, num: int, p_min: float, p_max: float,
                   max_problems: int) -> list[dict]:
    """Sample `k` responses for each of the first `max_problems` training problems of `cfg.data` with
    `cfg.model` at `rollout.temperature`, write the selected set to `out`, print a summary, return it."""
    from reasonrl import dist
    from reasonrl.eval.evaluate import run_eval
    from reasonrl.eval.report import print_rows
    from reasonrl.model.setup import load_or_build
    from reasonrl.rollout.sampler import SamplingParams
    from reasonrl.tasks.sources import load_split, verifier_for

    if k < 1 or num < 1 or max_problems < 1:
        raise UserError(f"command line: --k, --num and --max-problems must be >= 1, got {k}, {num}, {max_problems}")
    if not 0.0 <= p_min < p_max <= 1.0:
        raise UserError(f"command line: need 0 <= --p-min < --p-max <= 1, got {p_min} / {p_max}")
    inputs = config_inputs(cfg, MODEL_AND_DATA)
    out_path = check_output_file(out, "concise select --out", inputs=inputs)  # before sampling, not onto an input
    rates_path = check_output_file(out_path.with_name(out_path.name + ".rates.jsonl"), "concise select --out's rates "
                                   "file", inputs=inputs)
    dist.init(cfg.dist.backend)
    model, tokenizer = load_or_build(cfg)
    model.to(dist.device())
    records = load_split(cfg.data, "train", num=max_problems)
    records = [{**r, "id": str(r.get("id") or f"problem-{i}")} for i, r in enumerate(records)]
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise UserError(f"data {cfg.data.source}: problem ids are not unique")
    params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                            max_new_tokens=cfg.rollout.max_new_tokens, n=k, stop=tuple(cfg.rollout.stop),
                            seed=cfg.train.seed)
    _, samples = run_eval(model, tokenizer, records, params=params, verifier=verifier_for(cfg.data),
                          template=cfg.data.prompt_template, batch_size=cfg.rollout.batch_size,
                          progress=cfg.log.progress)
    rates = solve_rates(samples, ids)
    all_rows = [{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"], **s}
                for r, s in zip(records, rates, strict=True)]
    chosen = [all_rows[i] for i in select_problems([s["solve_rate"] for s in rates], p_min=p_min, p_max=p_max,
                                                   num=num)]
    if not dist.is_main():
        return chosen
    write_jsonl(rates_path, all_rows)
    if not chosen:
        raise UserError(f"{cfg.data.source}: none of {len(records)} problems has {p_min} < solve rate < {p_max} "
                        f"({k} samples each); evaluate more (--max-problems) or widen the band")
    write_jsonl(out_path, chosen)
    p_hat = [s["solve_rate"] for s in rates]
    bands = {"0": lambda p: p == 0, "(0, 0.2]": lambda p: 0 < p <= 0.2, "(0.2, 0.5]": lambda p: 0.2 < p <= 0.5,
             "(0.5, 0.8]": lambda p: 0.5 < p <= 0.8, "(0.8, 1)": lambda p: 0.8 < p < 1, "1": lambda p: p == 1}
    hist = [{"solve rate": name, "problems": sum(map(test, p_hat))} for name, test in bands.items()]
    print_rows(f"solve rates of {len(records)} problems ({k} samples each, T = {params.temperature:g})", hist)
    print_rows(f"phase-2 set: {len(chosen)} problems with {p_min:g} < p < {p_max:g}",
               [{"id": c["id"], "solve_rate": c["solve_rate"], "mean_length": c["mean_length"]} for c in chosen])
    if len(chosen) < num:
        print(f"warning: only {len(chosen)} of the {num} requested problems qualify")
    print(f"phase-2 set -> {out_path}  (every rate: {out_path.name}.rates.jsonl)")
    return chosen
