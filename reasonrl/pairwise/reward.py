"""The `pairwise` reward kind: Pairwise-PPO's reward s(y, y*) of a policy sample y against an anchor y*.

    s(y, y*) = 1/2 [p(y > y* | x) + 1 - p(y* > y | x)]      (debiased; both orders in one judge pass)
    R(y)     = scale * (s - 1/2)   with `pairwise.center`, else scale * s

(arXiv 2504.04950; notes B.3 [I]: "terminal reward R(y) = s(y, y*), optionally centred as s - 1/2"). The anchor
is configurable (notes B.3: an open question of the paper): the record's reference answer, the judge's best of n
samples of the initial policy, or another sample of the same prompt (self-play). `anchor = "none"` with a
Bradley-Terry judge gives its scalar r(x, y): the classic RLHF reward, the baseline of benchmarks/pairwise.py.
The trainers call this through `reasonrl.reward` (`reward.kind = "pairwise"`) and add their usual shaping.

With `pairwise.critic_sees_anchor` each response's anchor is also returned as its critic context
(`Scored.critic_context`), so PPO's critic reads V(x, y*, y_<t) (notes B.3 [I]: "The critic should see the anchor
too ... because the reward depends on y*. This is our reading of 'value function consistency'"; B.5: "The critic
takes an optional anchor input"). That reading is ours, not the paper's text (B.6 lists the value model as open):
with the reference or the (cached) best-of-n anchor y* is fixed per prompt x, which the critic sees anyway; with a
sibling sample it is not, and a critic blind to y* can only predict the reward's mean over the anchors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.pairwise import metrics
from reasonrl.pairwise.judges import BradleyTerryJudge, Judge, load_judge
from reasonrl.pairwise.world import has_recheck, prompt_offset
from reasonrl.reward.base import Responses, Scored

ANCHOR_SEPARATOR = "\n\n"  # between the anchors a critic reads when a response has several (`num_anchors`)


def anchor_scores(judge: Judge, prompts: Sequence[str], ys: Sequence[str], anchors: Sequence[str], *,
                  debias: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`(s, p_ya, p_ay)`: s(y, y*) per pair, from one batched judge call over both orders when `debias`
    (p_ay is None without it, and s = p(y > y*))."""
    n = len(ys)
    if not debias:
        p_ya = judge.prob_better_batch(prompts, ys, anchors).double()
        return p_ya, p_ya, None
    both = judge.prob_better_batch(list(prompts) * 2, list(ys) + list(anchors), list(anchors) + list(ys)).double()
    p_ya, p_ay = both[:n], both[n:]
    return torch.as_tensor(metrics.debiased_score(p_ya, p_ay)), p_ya, p_ay


def sibling_anchors(texts: Sequence[str], group: torch.Tensor, k: int = 1) -> list[list[str]]:
    """Self-play anchors: each sample is judged against the next `k` samples of its own prompt (cyclically); the
    samples are i.i.d., so these are random policy samples. Every prompt needs at least k + 1 samples."""
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(i)
    out: list[list[str]] = [[] for _ in texts]
    for rows in members.values():
        if len(rows) < k + 1:
            raise UserError(f"pairwise.anchor = 'sample' with pairwise.num_anchors = {k} needs rollout.num_samples "
                            f">= {k + 1} (the anchors are other samples of the same prompt)")
        for pos, i in enumerate(rows):
            out[i] = [texts[rows[(pos + j) % len(rows)]] for j in range(1, k + 1)]
    return out


class BestOfN:
    """Anchors = the judge's best of `n` samples of the initial policy per prompt (by mean debiased score
    against the other n - 1), sampled once per prompt and cached."""

    def __init__(self, cfg: Config, judge: Judge, tokenizer, device):
        from reasonrl.model.setup import load_or_build

        self.cfg, self.judge, self.tokenizer = cfg, judge, tokenizer
        self.policy = load_or_build(cfg)[0].eval().requires_grad_(False).to(device or "cpu")
        self.cache: dict[str, str] = {}

    def __call__(self, responses: Responses) -> list[str]:
        from reasonrl.rollout.sampler import SamplingParams, sample

        todo = sorted({p for p in responses.prompts if p not in self.cache})
        if todo:
            r, n = self.cfg.rollout, self.cfg.pairwise.best_of_n
            params = SamplingParams(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, n=n,
                                    max_new_tokens=r.max_new_tokens, stop=tuple(r.stop), seed=self.cfg.train.seed)
            texts = sample(self.policy, self.tokenizer, todo, params).response_texts
            raw = {p: rec["prompt"] for p, rec in zip(responses.prompts, responses.records, strict=True)}
            for k, p in enumerate(todo):
                cands = texts[k * n : (k + 1) * n]
                ii = [i for i in range(n) for j in range(n) if i != j]
                jj = [j for i in range(n) for j in range(n) if i != j]
                s, _, _ = anchor_scores(self.judge, [raw[p]] * len(ii), [cands[i] for i in ii],
                                        [cands[j] for j in jj])
                wins = torch.zeros(n, dtype=torch.float64).index_add_(0, torch.tensor(ii), s)
                self.cache[p] = cands[int(wins.argmax())]
        return [self.cache[p] for p in responses.prompts]


def reference_anchors(records: Sequence[dict], field: str) -> list[str]:
    out = []
    for rec in records:
        if not isinstance(rec.get(field), str) or not rec[field]:
            raise UserError(f"pairwise.anchor_field: a record has no text field {field!r} (keys: {', '.join(rec)})")
        out.append(rec[field])
    return out


def build(cfg: Config, *, tokenizer=None, device=None):
    """The `pairwise` reward plug-in (see the module docstring)."""
    pw = cfg.pairwise
    if not pw.judge_path:
        raise UserError("pairwise.judge_path: the pairwise reward needs a judge (train one with `reasonrl rm-train`)")
    judge = load_judge(pw.judge_path, device=device, batch_size=pw.judge_batch_size, principle=pw.principle)
    if pw.anchor == "none" and not isinstance(judge, BradleyTerryJudge):
        raise UserError("pairwise.anchor = 'none' (a scalar reward) needs a Bradley-Terry judge (pairwise.judge=bt)")
    if pw.num_anchors < 1 or (pw.num_anchors > 1 and pw.anchor != "sample"):
        raise UserError(f"pairwise.num_anchors = {pw.num_anchors}: must be >= 1, and above 1 only with "
                        "pairwise.anchor = 'sample' (the other anchors are one per prompt)")
    best_of_n = BestOfN(cfg, judge, tokenizer, device) if pw.anchor == "best_of_n" else None

    def reward(responses: Responses) -> Scored:
        from reasonrl.reward.verifier import verify_responses

        prompts = [rec["prompt"] for rec in responses.records]
        stats: dict[str, float] = {}
        anchors = None
        if pw.anchor == "none":
            s = judge.reward_batch(prompts, responses.texts).double()
            scores = pw.scale * s
        else:
            if pw.anchor == "reference":
                sets = [[a] for a in reference_anchors(responses.records, pw.anchor_field)]
            elif pw.anchor == "sample":
                sets = sibling_anchors(responses.texts, responses.group, k=pw.num_anchors)
            else:
                sets = [[a] for a in best_of_n(responses)]
            k = pw.num_anchors  # s(y) = mean over its k anchors, all pairs in one batched judge call
            s, p_ya, p_ay = anchor_scores(judge, [p for p in prompts for _ in range(k)],
                                          [y for y in responses.texts for _ in range(k)],
                                          [a for anchor_set in sets for a in anchor_set], debias=pw.debias)
            s = s.view(-1, k).mean(dim=1)
            anchors = [ANCHOR_SEPARATOR.join(anchor_set) for anchor_set in sets]  # what the critic reads
            scores = pw.scale * (s - 0.5 if pw.center else s)
            stats["beats_anchor"] = (s > 0.5).double().mean().item()
            if p_ay is not None:
                stats["consistency"] = metrics.swap_consistency(p_ya, p_ay)
        stats["score"] = s.mean().item()
        correct = (verify_responses(cfg, responses)[0] if all("answer" in r for r in responses.records)
                   else torch.zeros(len(prompts), dtype=torch.bool))
        stats.update(_world_stats(prompts, responses, correct, cfg))
        return Scored(scores=scores.float(), correct=correct, stats=stats,
                      critic_context=anchors if pw.critic_sees_anchor else None)

    return reward


def _world_stats(prompts: Sequence[str], responses: Responses, correct: torch.Tensor, cfg: Config) -> dict:
    """The preference world's diagnostics: hidden quality q = correct - recheck_cost * re-check (`true_quality`)
    and the re-check rates on prompts with and without the labeler's offset (how much the offset is exploited)."""
    offset = [prompt_offset(p, 1.0) > 0 for p in prompts]
    recheck = [has_recheck(t) for t in responses.texts]
    q = correct.double() - cfg.pairwise.recheck_cost * torch.tensor(recheck, dtype=torch.float64)
    out = {"true_quality": q.mean().item()}
    for name, want in (("recheck_offset", True), ("recheck_other", False)):
        sel = [r for o, r in zip(offset, recheck, strict=True) if o == want]
        if sel:
            out[name] = sum(sel) / len(sel)
    return out
