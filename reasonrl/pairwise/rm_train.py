"""`reasonrl rm-train`: train a pairwise judge (or the Bradley-Terry baseline) on preference pairs and report
accuracy, swap consistency, ECE and a reliability plot on held-out pairs.

Generative judge (Pairwise-RL, notes B.3 [I]): the input is the judging prompt with (A, B), the target is the
single answer token, YES if A is the chosen response, else NO; the loss is the cross-entropy of that token over
{YES, NO} (`pairwise.loss = "pair"`) or over the whole vocabulary (`"vocab"`; the paper's choice is unknown).
With `pairwise.swap` every pair is also shown swapped with the flipped label. Bradley-Terry: -log sigmoid(r_c - r_r).

Reads top to bottom: run-dir check -> data -> model -> claim the run dir -> loop [batch -> loss -> update -> log]
-> evaluate -> save judge + plot. The run directory has the trainers' protections (`reasonrl.train.rundir`): a
used one is refused unless `--overwrite`, every input is read before the first write, and a lock keeps a second
process out. Judges train in minutes, so there are no checkpoints and no `--resume`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.model.setup import load_or_build
from reasonrl.model.value import value_model_from_policy
from reasonrl.outputs import write_atomic
from reasonrl.pairwise import metrics
from reasonrl.pairwise.judges import BradleyTerryJudge, GenerativeJudge, save_judge
from reasonrl.pairwise.world import load_preferences, preference_set
from reasonrl.train import rundir, trackers
from reasonrl.train.checkpoint import drop_overwritten
from reasonrl.train.data import micro_batch_indices
from reasonrl.train.run import check_run, open_log
from reasonrl.train.schedule import build_scheduler

RUN_FILES = ("config.json", "inputs.json", "metrics.jsonl", "plots", "judge", "eval.json",  # a judge run's
             *trackers.TRACKER_FILES)
assert set(RUN_FILES) <= set(rundir.ALL_RUN_FILES), "rundir.ALL_RUN_FILES must name every run file of rm-train"


@dataclass(frozen=True)
class Example:
    """One judge training row: is `a` better than `b`?"""

    prompt: str
    a: str
    b: str
    label: int  # 1: a is the chosen response (target YES), 0: b is (target NO)


def swap_augment(pairs: list[dict], *, swap: bool, chosen_first: float = 1.0, seed: int = 0) -> list[Example]:
    """Judge rows from (prompt, chosen, rejected) pairs. `swap`: each pair twice, (chosen, rejected) -> 1 and
    (rejected, chosen) -> 0 (notes B.3's augmentation). Else each pair once, chosen first with probability
    `chosen_first` (seeded), so labels inherit that order's bias."""
    rng = random.Random(f"swap|{seed}")
    rows = []
    for p in pairs:
        fwd = Example(p["prompt"], p["chosen"], p["rejected"], 1)
        rev = Example(p["prompt"], p["rejected"], p["chosen"], 0)
        if swap:
            rows += [fwd, rev]
        else:
            rows.append(fwd if rng.random() < chosen_first else rev)
    return rows


def preference_data(cfg: Config) -> tuple[list[dict], list[dict]]:
    """(train, test) pairs: the synthetic preference world's train / test splits, or a JSONL file's lines with
    the last `num_test` held out."""
    pw = cfg.pairwise
    if pw.data == "synthetic":
        if cfg.data.difficulty not in (1, 2):
            raise UserError(f"data.difficulty: the synthetic preference world uses levels 1 and 2 (+, -, * chains), "
                            f"got {cfg.data.difficulty}")
        kw = dict(seed=pw.seed, difficulty=cfg.data.difficulty, label_scale=pw.label_scale, offset=pw.offset,
                  recheck_cost=pw.recheck_cost, hidden_errors=pw.hidden_errors)
        return (preference_set(pw.num_train, split="train", **kw), preference_set(pw.num_test, split="test", **kw))
    pairs = load_preferences(pw.data)
    if len(pairs) <= pw.num_test:
        raise UserError(f"pairwise.num_test: {pw.data} has {len(pairs)} pairs, not more than num_test={pw.num_test}")
    return pairs[: -pw.num_test], pairs[-pw.num_test :]


def build_judge(cfg: Config) -> GenerativeJudge | BradleyTerryJudge:
    """A trainable judge from `model.path` (e.g. an SFT policy, as the paper starts from) or a fresh preset."""
    pw = cfg.pairwise
    model, tokenizer = load_or_build(cfg)
    if pw.judge == "bt":
        return BradleyTerryJudge(value_model_from_policy(model), tokenizer, max_length=pw.max_length,
                                 batch_size=pw.judge_batch_size)
    return GenerativeJudge(model, tokenizer, template=pw.template, yes=pw.yes, no=pw.no, max_length=pw.max_length,
                           batch_size=pw.judge_batch_size, principle=pw.principle)


def generative_loss(judge: GenerativeJudge, rows: list[Example], *, over: str = "pair") -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy of the answer token (YES for label 1, NO for 0), over the two answer tokens (`pair`)
    or the full vocabulary (`vocab`)."""
    logits, pair = judge.answer_logits([r.prompt for r in rows], [r.a for r in rows], [r.b for r in rows])
    labels = torch.tensor([r.label for r in rows], device=logits.device)
    if over == "pair":
        loss = F.cross_entropy(pair, 1 - labels)  # column 0 is YES
    else:
        loss = F.cross_entropy(logits, torch.where(labels == 1, judge.yes_id, judge.no_id))
    acc = ((pair[:, 0] > pair[:, 1]).long() == labels).float().mean()
    return loss, {"acc": acc.item()}


def bt_loss(judge: BradleyTerryJudge, pairs: list[dict]) -> tuple[torch.Tensor, dict]:
    """Bradley-Terry negative log-likelihood -log sigmoid(r(x, chosen) - r(x, rejected)), one pass for both."""
    n = len(pairs)
    r = judge.rewards([p["prompt"] for p in pairs] * 2, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs])
    margin = r[:n] - r[n:]
    return -F.logsigmoid(margin).mean(), {"acc": (margin > 0).float().mean().item()}


def evaluate_judge(judge, pairs: list[dict], *, num_bins: int = 10) -> dict:
    """Held-out accuracy (both orders), swap consistency and ECE of p(chosen > rejected) and p(rejected > chosen)
    against labels 1 and 0; `true_accuracy` counts pairs whose hidden qualities differ (synthetic world);
    `per_pair` keeps both probabilities of every pair (for comparisons of judges pair by pair)."""
    prompts = [p["prompt"] for p in pairs]
    chosen, rejected = [p["chosen"] for p in pairs], [p["rejected"] for p in pairs]
    both = judge.prob_better_batch(prompts * 2, chosen + rejected, rejected + chosen).double()
    n = len(pairs)
    p_cr, p_rc = both[:n], both[n:]
    out = {"accuracy": metrics.pair_accuracy(p_cr, p_rc), "consistency": metrics.swap_consistency(p_cr, p_rc),
           "ece": metrics.expected_calibration_error(torch.cat([p_cr, p_rc]), [1.0] * n + [0.0] * n,
                                                     num_bins=num_bins),
           "mean_p_first": both.mean().item(), "num_pairs": n}
    s = torch.as_tensor(metrics.debiased_score(p_cr, p_rc))
    out["debiased_accuracy"] = (s > 0.5).double().mean().item()
    out["debiased_ece"] = metrics.expected_calibration_error(torch.cat([s, 1 - s]), [1.0] * n + [0.0] * n,
                                                             num_bins=num_bins)
    if all("quality_chosen" in p for p in pairs):
        diff = torch.tensor([p["quality_chosen"] - p["quality_rejected"] for p in pairs], dtype=torch.float64)
        keep = diff != 0
        if keep.any():
            out["true_accuracy"] = ((s[keep] > 0.5) == (diff[keep] > 0)).double().mean().item()
    out["bins"] = metrics.calibration_bins(torch.cat([p_cr, p_rc]), [1.0] * n + [0.0] * n, num_bins)
    out["per_pair"] = {"p_chosen_first": p_cr.tolist(), "p_rejected_first": p_rc.tolist()}  # paired comparisons
    return out


def plot_reliability(curves: dict[str, list], out_path: str | Path, *, title: str = "") -> Path:
    """Reliability diagram: mean predicted P(A > B) per bin against the fraction of the bin's pairs where A won;
    marker area shows how many pairs the bin holds."""
    from reasonrl.eval.plots import plt  # the Agg backend is chosen there

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, bins in curves.items():
        pts = [(n, prob, lab) for n, prob, lab in bins if n]
        total = sum(n for n, _, _ in pts)
        line = ax.plot([p for _, p, _ in pts], [y for _, _, y in pts], linewidth=1, alpha=0.6, label=name)[0]
        # marker area ~ the bin's share of the pairs: a bin of two pairs should not look like one of two hundred
        ax.scatter([p for _, p, _ in pts], [y for _, _, y in pts], s=[8 + 400 * n / total for n, _, _ in pts],
                   color=line.get_color(), alpha=0.8)
    ax.set_xlabel("predicted P(A better than B)")
    ax.set_ylabel("fraction where A is the chosen response")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "judge reliability (held-out pairs, both orders)")
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def rm_train(cfg: Config) -> dict:
    """Train the configured judge; writes `<run_dir>/judge`, `metrics.jsonl`, `eval.json`, `plots/reliability.png`."""
    pw, run_dir = cfg.pairwise, Path(cfg.log.run_dir)
    if cfg.train.resume:
        raise UserError("train.resume: rm-train keeps no checkpoints and cannot resume; rerun with --overwrite")
    check_run(cfg, run_files=RUN_FILES)
    torch.manual_seed(cfg.train.seed)
    train_pairs, test_pairs = preference_data(cfg)
    judge = build_judge(cfg)
    log = open_log(cfg, run_dir, 0, run_files=RUN_FILES)  # the first write: lock, clear an --overwrite'd run
    rows = train_pairs if pw.judge == "bt" else swap_augment(train_pairs, swap=pw.swap, chosen_first=pw.chosen_first,
                                                             seed=cfg.train.seed)
    model = judge.model.train()
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    scheduler = build_scheduler(optimizer, o, cfg.train.steps)
    bar = _bar(cfg, cfg.train.steps, f"rm-train {pw.judge}{'' if pw.judge == 'bt' else ' swap' if pw.swap else ''}")
    for step in range(cfg.train.steps):
        idx = micro_batch_indices(step, batch_size=cfg.train.batch_size, num_examples=len(rows), seed=cfg.train.seed)
        batch = [rows[i] for i in idx]
        loss, stats = bt_loss(judge, batch) if pw.judge == "bt" else generative_loss(judge, batch, over=pw.loss)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        log.log({"step": step + 1, "loss": loss.item(), "train_acc": stats["acc"], "grad_norm": float(grad_norm),
                 "lr": scheduler.get_last_lr()[0]})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    result = evaluate_judge(judge, test_pairs, num_bins=pw.num_bins)
    log.log({"step": cfg.train.steps, **{f"heldout_{k}": v for k, v in result.items()
                                          if k not in ("bins", "per_pair")}})
    save_judge(judge, run_dir / "judge")
    if cfg.log.plots:
        plot_reliability({pw.judge: result["bins"]}, run_dir / "plots" / "reliability.png")
    write_atomic(run_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    log.close()
    drop_overwritten(run_dir)  # the new judge is saved: the run an --overwrite set aside can go
    rundir.release(run_dir)
    print(f"rm-train {pw.judge}: accuracy {result['accuracy']:.3f}  consistency {result['consistency']:.3f}  "
          f"ECE {result['ece']:.3f}  -> {run_dir / 'judge'}")
    return result


def _bar(cfg: Config, total: int, desc: str):
    if not cfg.log.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)
