"""The paper sections of the config: `[swirl]` (SWiRL, arXiv 2504.04736) and `[pairwise]` (Pairwise-RL, arXiv
2504.04950). The spine's sections are in `sections.py`, which gathers both into `Config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class SwirlConfig:
    """SWiRL (arXiv 2504.04736, `reasonrl.swirl`): the toy tool-use worlds, judges and multi-step episodes."""

    task: Literal["qa", "math"] = "qa"
    """Toy world: 2-hop QA over a generated knowledge base with search, or word problems with the calculator."""
    judge: str = "program"
    """Process / outcome judge: `program` (the toy worlds' checkers) or a local HF model directory (LLM prompts)."""
    judge_noise: float = 0.0
    """Probability that a programmatic judge's label is flipped (seed-papers.md E.6: inject some label noise)."""
    max_steps: int = 0
    """Most steps per episode; 0 = the paper's 5 for QA and 10 for math."""
    step_tokens: int = 40
    """Most new tokens per step (one chain of thought and one action)."""
    kb_people: int = 120
    """People (articles) in the generated knowledge base."""
    kb_seed: int = 0
    """Knowledge-base generator seed."""
    hotpotqa: bool = True
    """Also index the HotpotQA sample's paragraphs (../shared/data/hotpotqa) in the search corpus."""
    result_chars: int = 400
    """A search result (one article) is cut to this many characters."""
    math_difficulty: int = 1
    """Synthetic-world difficulty of the math word problems."""


@dataclass
class PairwiseConfig:
    """Pairwise-RL (arXiv 2504.04950, `reasonrl.pairwise`): judges, `reasonrl rm-train`, the `pairwise` reward.
    The paper's text was not available (notes B.3 [I]); its open details are the options below."""

    data: str = "synthetic"
    """rm-train pairs: `synthetic` (the preference world, `reasonrl.pairwise.world`) or a JSONL path with
    prompt / chosen / rejected fields (the last `num_test` lines are held out)."""
    num_train: int = 4000
    """Synthetic preference world: training pairs."""
    num_test: int = 500
    """Held-out pairs (synthetic: drawn from the world's test split; JSONL: the file's last lines)."""
    seed: int = 0
    """Synthetic preference world: generator seed."""
    label_scale: float = 3.0
    """Synthetic labeler: P(A > B) = sigmoid(label_scale (u_A - u_B)) (notes B.7's k)."""
    offset: float = 1.0
    """Synthetic labeler: the prompt-dependent offset b(x) on re-checks for prompts about OFFSET_ITEMS."""
    recheck_cost: float = 0.5
    """Synthetic world: hidden quality lost by a redundant `Wait,` re-check."""
    hidden_errors: float = 0.0
    """Synthetic world: fraction of wrong candidates whose error is a carried step error (else a visible wrong box)."""
    loss: Literal["pair", "vocab"] = "pair"
    """rm-train (generative): cross-entropy of the answer token over {YES, NO} only, or over the whole vocabulary
    (the paper's choice is not known to us, notes B.3 [I]; "pair" learns faster at toy scale)."""
    judge: Literal["generative", "bt"] = "generative"
    """rm-train: the generative YES/NO judge, or the Bradley-Terry scalar baseline."""
    swap: bool = True
    """rm-train (generative): train on every pair in both orders with flipped labels (notes B.3 [I])."""
    chosen_first: float = 0.75
    """rm-train without `swap`: each pair is shown once, the chosen response first with this probability (a
    position-biased collection; 1.0 = always first, as a (prompt, chosen, rejected) file reads)."""
    template: str = "{principle}{prompt}\nA: {a}\nB: {b}\nA better: "
    """Generative judge prompt; the next token is `yes` or `no` (their first tokens must differ). `{prompt}`, `{a}`,
    `{b}` are required; `{principle}` (optional) becomes `principle` and a newline, or nothing."""
    principle: str = ""
    """Generative judge: the principle placed in the template, what makes a response better (notes B.3 [S]: the
    judge's input is "a principle plus a response pair"; the wording is the user's). Empty for the toy world, whose
    labeler's taste is what the judge should learn. rm-train saves it with the judge; under the `pairwise` reward
    a non-empty value replaces the saved one (empty: the judge's own)."""
    yes: str = "YES"
    """Answer string meaning A is better (its first token is read); e.g. " Yes" for a real HF LM."""
    no: str = "NO"
    """Answer string meaning B is better."""
    max_length: int = 512
    """Judge input tokens; a longer input keeps its end."""
    num_bins: int = 10
    """Equal-width bins of the ECE and the reliability plot."""
    judge_path: str = ""
    """`pairwise` reward: a judge directory written by rm-train (`<run_dir>/judge`)."""
    anchor: Literal["reference", "best_of_n", "sample", "none"] = "reference"
    """`pairwise` reward: the anchor y* of s(y, y*): the record's reference answer (`anchor_field`), the judge's
    best of `best_of_n` samples of the initial policy, another sample of the same prompt (self-play), or `none`
    (a Bradley-Terry judge's scalar r(x, y): the classic RLHF reward)."""
    anchor_field: str = "response"
    """Record field holding the reference answer (the synthetic world's gold response is `response`)."""
    best_of_n: int = 4
    """`best_of_n` anchor: reference-policy samples per prompt (sampled once per prompt, then cached)."""
    num_anchors: int = 1
    """`sample` anchor: judge each response against this many other samples of its prompt and average s over them
    (notes B.6 leave open "whether multiple anchors are averaged"; 1 = one anchor). Needs rollout.num_samples >
    num_anchors; the other anchors are one per prompt."""
    debias: bool = True
    """`pairwise` reward: s = 1/2 (p(y > y*) + 1 - p(y* > y)) (both orders in one forward pass); False: p(y > y*)."""
    center: bool = True
    """`pairwise` reward: use s - 1/2 (notes B.3: "optionally centred")."""
    scale: float = 2.0
    """`pairwise` reward: multiply the (centred) score; 2 maps s in [0, 1] to [-1, 1] like the verifier's +-1."""
    judge_batch_size: int = 64
    """Pairs per judge forward pass."""
    critic_sees_anchor: bool = True
    """`pairwise` reward under PPO: the critic reads the anchor beside the prompt (`rl.critic_context_template`), a
    value V(x, y*, y_<t). Notes B.3 [I] read the paper's "value function consistency" this way; the paper's value
    model is an open question (B.6), hence the switch. No effect with `anchor = "none"` (there is no anchor)."""
