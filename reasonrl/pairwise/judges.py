"""Pairwise judges behind one interface: `prob_better(prompt, a, b)` = P(a is better than b | prompt).

- `GenerativeJudge`: any causal LM reads a judging prompt holding both responses and answers YES or NO; the
  probability is the softmax over the YES / NO logits at the answer position (Pairwise-RL's generative reward
  model, arXiv 2504.04950; notes B.3: "uses the probability of 'YES' or 'NO' as the final reward score").
- `BradleyTerryJudge`: a scalar reward model r(x, y) (the LM with a one-output head), P = sigmoid(r_a - r_b)
  (the Bradley-Terry baseline the paper replaces, notes B.3).
- `OracleJudge`: a programmatic quality function, P = sigmoid(scale (q_a - q_b)), for tests and ceilings.

Every judge also has the batched form `prob_better_batch(prompts, a, b) -> (N,)`: one forward pass per chunk
of `batch_size` pairs. A trained judge is saved as a HF directory plus `judge.json` (kind, template, answer
strings), which `load_judge` reads back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from reasonrl.errors import UserError, one_line
from reasonrl.model.logprobs import position_ids
from reasonrl.outputs import write_atomic

DEFAULT_TEMPLATE = "{principle}{prompt}\nA: {a}\nB: {b}\nA better: "
"""The judging prompt for the embedded tokenizer; the next token is YES or NO (their first tokens differ there).
For a real HF LM use something like '...Is response A better than response B? Answer:' with ' Yes' / ' No'.
`{principle}` is optional: it becomes the judge's principle and a newline, or nothing when there is none."""
BT_TEMPLATE = "{prompt}\n{response}"
"""What the Bradley-Terry model reads; its scalar head's output at the last token is r(x, y)."""


class Judge(Protocol):
    def prob_better(self, prompt: str, a: str, b: str) -> float:
        """P(a better than b | prompt)."""
        ...

    def prob_better_batch(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """(N,) float32: P(a_i better than b_i | prompt_i)."""
        ...


def check_template(template: str, fields: tuple[str, ...] = ("prompt", "a", "b"), where: str = "pairwise.template",
                   optional: tuple[str, ...] = ("principle",)):
    """A template must hold each field exactly as `{name}` and no other braces (the responses may hold any);
    the `optional` fields may appear too."""
    try:
        template.format(**{f: "" for f in fields + optional})
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"{where}: {template!r} is not a format string over {{{'}, {'.join(fields)}}} ({e})") from None
    missing = [f for f in fields if "{" + f + "}" not in template]
    if missing:
        raise UserError(f"{where}: {template!r} lacks {', '.join('{' + f + '}' for f in missing)}")


def first_token(tokenizer, text: str, where: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise UserError(f"{where}: the tokenizer encodes {text!r} as no tokens")
    return ids[0]


def encode_left(tokenizer, texts: Sequence[str], *, max_length: int | None, device) -> tuple[torch.Tensor, ...]:
    """Left-padded `(input_ids, attention_mask)`, each (N, L); a text longer than `max_length` keeps its end
    (the answer position and the second response)."""
    rows = [tokenizer.encode(t) for t in texts]
    if max_length is not None:
        rows = [r[-max_length:] for r in rows]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids.to(device), mask.to(device)


def last_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(N, V) float32 output at the last position (the left padding puts every row's end there)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
    return out.logits[:, -1].float()


def _chunks(n: int, size: int):
    return (slice(i, i + size) for i in range(0, n, size))


def principle_text(principle: str) -> str:
    """What a template's `{principle}` becomes: the principle and a newline, or "" when there is none."""
    return f"{principle}\n" if principle else ""


class GenerativeJudge:
    """P(YES) / (P(YES) + P(NO)) at the next token after `template` filled with (principle, prompt, a, b).

    The principle is the seed's "principle + response pair" input (notes B.3 [S], one third-party note): a text
    stating what makes a response better, placed where the template says `{principle}` (a principle with a
    template that has no such field is a UserError)."""

    kind = "generative"

    def __init__(self, model, tokenizer, *, template: str = DEFAULT_TEMPLATE, yes: str = "YES", no: str = "NO",
                 max_length: int | None = None, batch_size: int = 64, principle: str = ""):
        check_template(template)
        if principle and "{principle}" not in template:
            raise UserError(f"pairwise.principle is set but pairwise.template {template!r} has no {{principle}} to "
                            "put it in (a judge saved before issue 23 keeps its template: retrain it to add one)")
        self.model, self.tokenizer, self.template, self.principle = model, tokenizer, template, principle
        self.yes, self.no, self.max_length, self.batch_size = yes, no, max_length, batch_size
        self.yes_id = first_token(tokenizer, yes, "pairwise.yes")
        self.no_id = first_token(tokenizer, no, "pairwise.no")
        if self.yes_id == self.no_id:
            raise UserError(f"pairwise.yes / pairwise.no: {yes!r} and {no!r} start with the same token")

    def texts(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[str]:
        head = principle_text(self.principle)
        return [self.template.format(principle=head, prompt=p, a=x, b=y) for p, x, y in zip(prompts, a, b, strict=True)]

    def answer_logits(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> tuple[torch.Tensor, ...]:
        """`(logits (N, V), pair (N, 2))` at the answer position, pair = the [YES, NO] columns (differentiable)."""
        device = next(self.model.parameters()).device
        ids, mask = encode_left(self.tokenizer, self.texts(prompts, a, b), max_length=self.max_length, device=device)
        logits = last_logits(self.model, ids, mask)  # (N, V)
        return logits, logits[:, [self.yes_id, self.no_id]]

    @torch.no_grad()
    def prob_better_batch(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        out = [self.answer_logits(prompts[s], a[s], b[s])[1].softmax(-1)[:, 0].cpu()
               for s in _chunks(len(prompts), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    def prob_better(self, prompt: str, a: str, b: str) -> float:
        return self.prob_better_batch([prompt], [a], [b])[0].item()

    def spec(self) -> dict:
        return {"kind": self.kind, "template": self.template, "yes": self.yes, "no": self.no,
                "max_length": self.max_length, "principle": self.principle}


class BradleyTerryJudge:
    """P(a > b) = sigmoid(r(x, a) - r(x, b)), r the scalar head's output at the last token of BT_TEMPLATE."""

    kind = "bt"

    def __init__(self, model, tokenizer, *, max_length: int | None = None, batch_size: int = 64):
        self.model, self.tokenizer, self.max_length, self.batch_size = model, tokenizer, max_length, batch_size

    def rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """(N,) float32 r(x, y) (differentiable)."""
        device = next(self.model.parameters()).device
        texts = [BT_TEMPLATE.format(prompt=p, response=y) for p, y in zip(prompts, responses, strict=True)]
        ids, mask = encode_left(self.tokenizer, texts, max_length=self.max_length, device=device)
        return last_logits(self.model, ids, mask)[:, 0]

    @torch.no_grad()
    def reward_batch(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        out = [self.rewards(prompts[s], responses[s]).cpu() for s in _chunks(len(prompts), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def prob_better_batch(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        r = self.reward_batch(list(prompts) * 2, list(a) + list(b))  # one pass over both sides
        n = len(prompts)
        return torch.sigmoid(r[:n] - r[n:])

    def prob_better(self, prompt: str, a: str, b: str) -> float:
        return self.prob_better_batch([prompt], [a], [b])[0].item()

    def spec(self) -> dict:
        return {"kind": self.kind, "template": BT_TEMPLATE, "max_length": self.max_length}


class OracleJudge:
    """P(a > b) = sigmoid(scale (q(prompt, a) - q(prompt, b))) for a programmatic quality q."""

    kind = "oracle"

    def __init__(self, quality: Callable[[str, str], float], *, scale: float = 1.0):
        self.quality, self.scale = quality, scale

    def prob_better(self, prompt: str, a: str, b: str) -> float:
        return 1.0 / (1.0 + math.exp(-self.scale * (self.quality(prompt, a) - self.quality(prompt, b))))

    def prob_better_batch(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.prob_better(p, x, y) for p, x, y in zip(prompts, a, b, strict=True)])


def save_judge(judge: GenerativeJudge | BradleyTerryJudge, out: str | Path) -> Path:
    """The judge's model and tokenizer as a HF directory, plus `judge.json` (how to ask it)."""
    out = Path(out)
    judge.model.save_pretrained(out)
    judge.tokenizer.save_pretrained(out)
    write_atomic(out / "judge.json", json.dumps(judge.spec(), indent=2) + "\n")
    return out


def load_judge(path: str | Path, *, device=None, batch_size: int = 64,
               principle: str = "") -> GenerativeJudge | BradleyTerryJudge:
    """A judge saved by `save_judge` (`reasonrl rm-train` writes one to `<run_dir>/judge`). A generative judge
    asks with the principle it was trained with (`judge.json`), or with `principle` when one is given."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    from reasonrl.userfiles import read_json_object, require

    p = Path(path)
    if not (p / "judge.json").is_file():
        raise UserError(f"pairwise.judge_path: {p} holds no judge.json (train one with `reasonrl rm-train`)")
    where = str(p / "judge.json")
    spec = read_json_object(p / "judge.json")
    kind = require(spec, where, "kind", "str")
    if kind not in ("generative", "bt"):
        raise UserError(f"{where}: unknown judge kind {kind!r} (generative or bt)")
    max_length = require(spec, where, "max_length", "int_or_none")
    if kind == "generative":
        template, yes, no = (require(spec, where, key, "str") for key in ("template", "yes", "no"))
        saved_principle = spec.get("principle", "")  # judges saved before pairwise.principle have none
        if not isinstance(saved_principle, str):
            raise UserError(f"{where}: key 'principle' must be a string, got {type(saved_principle).__name__}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
        if kind == "generative":
            model = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32, local_files_only=True)
        else:
            model = AutoModelForTokenClassification.from_pretrained(p, num_labels=1, local_files_only=True)
    except (OSError, ValueError, SafetensorError) as e:  # no tokenizer, truncated or corrupt weights, ...
        raise UserError(f"pairwise.judge_path: {p}: cannot load: {one_line(e)}"
                        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if kind == "generative":
        judge = GenerativeJudge(model, tokenizer, template=template, yes=yes, no=no, max_length=max_length,
                                batch_size=batch_size, principle=principle or saved_principle)
    else:
        judge = BradleyTerryJudge(model, tokenizer, max_length=max_length, batch_size=batch_size)
    judge.model.eval().requires_grad_(False).to(device or "cpu")
    return judge
