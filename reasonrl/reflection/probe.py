"""Reflection probes across checkpoints (Rethinking Reflection in Pre-Training, arXiv 2504.04022, §4-5, Table 6).

For each checkpoint x trigger x seed: continue adversarial chains of thought (situational reflection, Alg. 1,
or, with `probe="self"`, each checkpoint's own wrong ones: self-reflection, Alg. 2, see `self_probe`), judge the
final answer of the continuation against the gold answer, classify explicit reflection on the continuation only,
and compute the paper's Table 3 metrics. Across checkpoints, each metric is correlated with log pre-training
compute 6·N·D (Tables 6 and 7) and plotted.

Decoding [I]: greedy (temperature 0). The notes give greedy for BBH and TriviaQA and only stop strings for
GSM8K, whose lm-eval task defaults to greedy; CruxEval's T = 0.2 is for code. Under greedy decoding the paper's
"average of 3 runs" would repeat one run, so here a seed also draws the perturbations' random choices (which
wrong value, which factor): each seed is its own adversarial set of the same items, and the sampler's seed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.reflection.classify import LLMJudgeClassifier, ReflectionClassifier, RuleBasedClassifier
from reasonrl.reflection.metrics import METRICS, correlations_with_compute, reflection_metrics
from reasonrl.reflection.perturb import (
    GSM8K_TEMPLATE,
    SYNTHETIC_TRIGGER_FORMAT,
    build_gsm8k_set,
    build_prompt,
    build_synthetic_set,
)
from reasonrl.reflection.perturbations import PERTURBATIONS

DATASETS = ("synthetic", "gsm8k")
PROBES = ("situational", "self")
"""Situational reflection (paper Alg. 1) or self-reflection (Alg. 2)."""
GSM8K_STOP = ("</s>", "<|im_end|>")
"""Stop strings of the released gsm8k_adv task [C] (paper notes D.4)."""
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
"""lm-eval "flexible-extract": the paper's GSM8K answer is the last match in the output [C]."""


# ---------------------------------------------------------------- checkpoints


def parse_checkpoints(spec: str) -> list[Path]:
    """Checkpoint directories from a run dir (its `checkpoints/` in step order, even when the run dir also holds
    the exported final model), a checkpoints dir (its `step_*`
    in step order), one checkpoint dir, or a comma-separated list of checkpoint dirs (kept in that order).
    Each must be a Hugging Face model dir (or a LoRA run's adapter dir: loaded merged into its base) with a
    `meta.json` holding step, params and tokens_seen."""
    from reasonrl.model.lora import is_model_dir

    parts = [s.strip() for s in spec.split(",") if s.strip()]
    if not parts:
        raise UserError("--checkpoints: empty")
    if len(parts) > 1:
        return [_check_checkpoint(Path(p)) for p in parts]
    root = Path(parts[0])
    if not root.is_dir():
        raise UserError(f"--checkpoints: {root} is not a directory")
    if is_model_dir(root) and not (root / "checkpoints").is_dir():
        return [_check_checkpoint(root)]
    folder = root / "checkpoints" if (root / "checkpoints").is_dir() else root
    steps = sorted((d for d in folder.iterdir() if re.fullmatch(r"step_\d+", d.name) and d.is_dir()),
                   key=lambda d: int(d.name.split("_")[1]))
    if not steps:
        raise UserError(f"--checkpoints: {root} holds no checkpoints (no config.json, no step_* directories)")
    return [_check_checkpoint(d) for d in steps]


def _check_checkpoint(path: Path) -> Path:
    from reasonrl.model.lora import is_model_dir

    if not is_model_dir(path):
        raise UserError(f"--checkpoints: {path} is not a Hugging Face model directory (no config.json) or a LoRA "
                        "adapter directory (no adapter_config.json)")
    read_meta(path)
    return path


def read_meta(ckpt: Path) -> dict:
    """`meta.json` of a checkpoint: {step, params, tokens_seen, ...}; UserError if missing or incomplete."""
    meta_file = ckpt / "meta.json"
    if not meta_file.is_file():
        raise UserError(f"--checkpoints: {ckpt} has no meta.json (step, params, tokens_seen)")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{meta_file}: not valid JSON ({e.msg})") from None
    missing = [k for k in ("step", "params", "tokens_seen") if k not in meta]
    if missing:
        raise UserError(f"{meta_file}: missing key {missing[0]!r}")
    if meta["params"] <= 0 or meta["tokens_seen"] <= 0:
        raise UserError(f"{meta_file}: params and tokens_seen must be positive (log compute)")
    return meta


# ---------------------------------------------------------------- probe items, prompts and grading


def probe_items(data: str, num_items: int, *, seed: int, difficulty: int = 2) -> list[dict]:
    """The first `num_items` adversarial items (all seven perturbations of each base problem in turn)."""
    if data == "gsm8k":
        from reasonrl.tasks.datasets import data_root

        path = data_root() / "gsm8k" / "test.jsonl"
        if not path.is_file():
            raise UserError(f"--data gsm8k: {path} not found")
        items, _ = build_gsm8k_set(path, seed=seed)
        return items[:num_items]
    if data != "synthetic":
        raise UserError(f"--data: {data!r} is not one of {', '.join(DATASETS)}")
    from reasonrl.tasks import synthetic

    num_base = math.ceil(num_items / len(PERTURBATIONS)) + 2
    while True:  # a few perturbations cannot change some answers; grow until there are enough items
        records = synthetic.generate(num_base, seed=0, difficulty=difficulty, split="test")
        items, _ = build_synthetic_set(records, seed=seed)
        if len(items) >= num_items or num_base > 10 * num_items:
            return items[:num_items]
        num_base *= 2


def prompt_template(data: str, tokenizer) -> tuple[str, str]:
    """(template, trigger_format): the released gsm8k_adv continuation as raw text [C]; for the synthetic
    world the format SFT trained on (chat-formatted prompt, then the trace) [I]."""
    if data == "gsm8k":
        return GSM8K_TEMPLATE, " {trigger} "
    from reasonrl.tasks.prompts import format_prompt

    return format_prompt(tokenizer, "{question}") + "{cot}{trigger}", SYNTHETIC_TRIGGER_FORMAT


def final_answer(data: str, text: str) -> str | None:
    """The answer `text` ends on, or None. Synthetic: the last `\\boxed{}`. GSM8K: the last number
    (flexible-extract, paper notes D.4) without commas, `$` and a trailing '.'."""
    if data == "synthetic":
        from reasonrl.tasks.answers import extract_boxed

        return extract_boxed(text)
    found = [m.group(0) for m in _FLEXIBLE.finditer(text)]
    return found[-1].replace(",", "").replace("$", "").rstrip(".") if found else None


def is_correct(data: str, continuation: str, gold: str) -> bool:
    """Synthetic: the exact verifier (last `\\boxed{}`). GSM8K: `final_answer` of the continuation compared
    with the general verifier's equivalence."""
    if data == "synthetic":
        from reasonrl.tasks.synthetic import verify

        return verify(continuation, gold)
    from reasonrl.tasks.verify import is_equivalent

    pred = final_answer(data, continuation)
    return bool(pred) and is_equivalent(pred, gold)


def make_classifier(spec: str) -> ReflectionClassifier:
    """`rules` (RuleBasedClassifier) or `judge:<model dir>` (LLMJudgeClassifier with a local causal LM)."""
    if spec == "rules":
        return RuleBasedClassifier()
    if spec.startswith("judge:"):
        from reasonrl.model.tiny import load_model

        model, tokenizer = load_model(spec.removeprefix("judge:"))
        return LLMJudgeClassifier(model.eval(), tokenizer)
    raise UserError(f"--classifier: {spec!r} is not 'rules' or 'judge:<model dir>'")


def trigger_name(trigger: str) -> str:
    return trigger or "none"


# ---------------------------------------------------------------- one checkpoint


def load_checkpoint(ckpt: Path):
    """(model, tokenizer) of a checkpoint, the model in eval mode on the GPU when there is one."""
    import torch

    from reasonrl.model.tiny import load_model

    model, tokenizer = load_model(ckpt)
    return model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu")).eval(), tokenizer


def greedy_texts(model, tokenizer, prompts: Sequence[str], *, data: str, seed: int, max_new_tokens: int,
                 batch_size: int = 64) -> list[str]:
    """Greedy continuations of `prompts`, in order, with the dataset's stop strings (the probe's decoding)."""
    from reasonrl.rollout.sampler import SamplingParams, sample

    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, n=1, seed=seed,
                            stop=GSM8K_STOP if data == "gsm8k" else ())
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        rollout = sample(model, tokenizer, list(prompts[start : start + batch_size]), params)
        order = rollout.prompt_index.tolist()
        assert order == sorted(order), "sampler rows must follow prompt order when n == 1"
        texts += rollout.response_texts
    return texts


def probe_checkpoint(model, tokenizer, items: Sequence[dict], *, data: str, trigger: str, seed: int,
                     max_new_tokens: int, classifier: ReflectionClassifier, batch_size: int = 64) -> list[dict]:
    """One record per item: {id, seed, trigger, perturbation, correct, reflective, continuation}."""
    template, trigger_format = prompt_template(data, tokenizer)
    prompts = [build_prompt(it, trigger=trigger, template=template, trigger_format=trigger_format) for it in items]
    texts = greedy_texts(model, tokenizer, prompts, data=data, seed=seed, max_new_tokens=max_new_tokens,
                         batch_size=batch_size)
    return [{"id": it["id"], "seed": seed, "trigger": trigger_name(trigger), "perturbation": it["perturbation"],
             "correct": is_correct(data, text, it["gold_answer"]),
             "reflective": classifier.classify(it["question"], it["adversarial_cot"], text), "continuation": text}
            for it, text in zip(items, texts, strict=True)]


# ---------------------------------------------------------------- across checkpoints


def run_probe(checkpoints: list[Path], *, data: str = "synthetic", num_items: int = 200,
              seeds: Sequence[int] = (0, 1, 2), triggers: Sequence[str] = ("", "Wait,"), max_new_tokens: int = 64,
              classifier: str = "rules", out_dir: Path, difficulty: int = 2, quiet: bool = False,
              probe: str = "situational") -> dict:
    """Probe every checkpoint, on perturbed gold CoTs (`probe="situational"`, paper Alg. 1) or on its own wrong CoTs
    (`"self"`, Alg. 2: `self_probe.self_items`, one seed as the set has no random choices); write `table.jsonl`
    (one row per checkpoint x trigger, with `probe`), `correlations.json` ({trigger: paper Table 6 / 7 row}),
    `samples.jsonl`, `plots/<metric>.png` and for `"self"` `self_set.jsonl` (the CoTs fed back); print the table.
    Returns {"table": rows, "correlations": {...}, "out_dir": str}."""
    _check_args(checkpoints, data=data, probe=probe, seeds=seeds, triggers=triggers, num_items=num_items)
    judge = make_classifier(classifier)
    out_dir = Path(out_dir)
    items = _items_by_checkpoint(checkpoints, probe=probe, data=data, num_items=num_items, seeds=seeds,
                                 difficulty=difficulty, max_new_tokens=max_new_tokens, out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "samples.jsonl", "w", encoding="utf-8") as samples:
        rows = [row for ckpt in checkpoints for row in _probe_one(
            ckpt, items[str(ckpt)], probe=probe, data=data, triggers=triggers, max_new_tokens=max_new_tokens,
            judge=judge, samples=samples)]
    return _write_results(rows, out_dir, quiet=quiet)


def _check_args(checkpoints: Sequence[Path], *, data: str, probe: str, seeds: Sequence[int],
                triggers: Sequence[str], num_items: int) -> None:
    if data not in DATASETS:
        raise UserError(f"--data: {data!r} is not one of {', '.join(DATASETS)}")
    if probe not in PROBES:
        raise UserError(f"--probe: {probe!r} is not one of {', '.join(PROBES)}")
    if not checkpoints or not seeds or not triggers or num_items < 1:
        raise UserError("reflection probe: needs at least one checkpoint, seed, trigger and item")


def _items_by_checkpoint(checkpoints: Sequence[Path], *, probe: str, data: str, num_items: int,
                         seeds: Sequence[int], difficulty: int, max_new_tokens: int,
                         out_dir: Path) -> dict[str, dict[int, list]]:
    """{str(checkpoint): {seed: items}}: the same situational items for every checkpoint, or each one's self set."""
    if probe == "self":
        from reasonrl.reflection.self_probe import self_items

        sets = self_items(checkpoints, data=data, num_items=num_items, seed=seeds[0], difficulty=difficulty,
                          max_new_tokens=max_new_tokens, out_dir=out_dir)
        return {ckpt: {seeds[0]: its} for ckpt, its in sets.items()}
    by_seed = {s: probe_items(data, num_items, seed=s, difficulty=difficulty) for s in seeds}
    return {str(ckpt): by_seed for ckpt in checkpoints}


def _probe_one(ckpt: Path, items_by_seed: Mapping[int, Sequence[dict]], *, probe: str, data: str,
               triggers: Sequence[str], max_new_tokens: int, judge: ReflectionClassifier, samples) -> list[dict]:
    """One checkpoint's table rows, one per trigger; its records are written to `samples`."""
    meta = read_meta(ckpt)
    model, tokenizer = load_checkpoint(ckpt)
    rows = []
    for trigger in triggers:
        records = [r for seed, items in items_by_seed.items()
                   for r in probe_checkpoint(model, tokenizer, items, data=data, trigger=trigger, seed=seed,
                                             max_new_tokens=max_new_tokens, classifier=judge)]
        samples.writelines(json.dumps({"step": meta["step"], "probe": probe, **r}) + "\n" for r in records)
        m = reflection_metrics(records)
        rows.append({"step": meta["step"], "trigger": trigger_name(trigger), "probe": probe, "params": meta["params"],
                     "tokens": meta["tokens_seen"], "compute": 6.0 * meta["params"] * meta["tokens_seen"],
                     **{k: m[k] for k in METRICS}, "num_records": m["num_records"], "checkpoint": str(ckpt)})
    return rows


def _write_results(rows: list[dict], out_dir: Path, *, quiet: bool) -> dict:
    with open(out_dir / "table.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    correlations = {t: _correlations([r for r in rows if r["trigger"] == t]) for t in _triggers(rows)}
    (out_dir / "correlations.json").write_text(json.dumps(correlations, indent=2) + "\n")
    plot_metrics(rows, out_dir / "plots")
    if not quiet:
        _print(rows, correlations)
    return {"table": rows, "correlations": correlations, "out_dir": str(out_dir)}


def _triggers(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["trigger"] for r in rows))


def _correlations(rows: Sequence[dict]) -> dict:
    """Pearson r with log compute (None where undefined: fewer than 2 checkpoints or a constant metric)."""
    if len(rows) < 2:
        return {m: None for m in METRICS} | {"num_checkpoints_correcting": sum(r["accuracy"] > 0 for r in rows)}
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in correlations_with_compute(rows).items()}


def plot_metrics(rows: Sequence[dict], out_dir: Path) -> list[Path]:
    """`out_dir/<metric>.png`: the metric against log10 compute, one line per trigger."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for t in _triggers(rows):
            pts = sorted((math.log10(r["compute"]), r[metric]) for r in rows if r["trigger"] == t)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"trigger: {t}")
        ax.set_xlabel("log10 train compute (6ND FLOPs)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        paths.append(out_dir / f"{metric}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def _print(rows: Sequence[dict], correlations: dict) -> None:
    from reasonrl.eval.report import print_rows

    short = ("acc", "expl_rate", "expl_acc", "impl_acc")
    probe = rows[0]["probe"]
    print_rows(f"reflection probe ({probe})", [{"step": r["step"], "trigger": r["trigger"], "log10_compute":
                                     math.log10(r["compute"]), **{s: r[m] for s, m in zip(short, METRICS, strict=True)}}
                                    for r in rows])
    print_rows(f"Pearson r with log compute (paper Table {7 if probe == 'self' else 6})",
               [{"trigger": t, **{s: ("n/a" if c[m] is None else c[m]) for s, m in zip(short, METRICS, strict=True)},
                 "ckpts_correcting": c["num_checkpoints_correcting"]} for t, c in correlations.items()])


def reflection_command(args_checkpoints: str, data: str, out: str | None, *, probe: str = "situational",
                       **kw) -> dict:
    """`reasonrl reflection --checkpoints DIR_OR_LIST --data NAME [--probe self] [--out DIR]`; `kw` go to
    `run_probe`. Default output beside the first checkpoint's `checkpoints/` folder: `<run dir>/reflection_<data>`,
    or `<run dir>/reflection_self_<data>` for the self-reflection probe."""
    from reasonrl.outputs import check_output_dir

    if kw.get("max_new_tokens", 1) < 1:
        raise UserError(f"reflection: --max-new-tokens must be >= 1, got {kw['max_new_tokens']}")
    ckpts = parse_checkpoints(args_checkpoints)
    name = f"reflection_{data}" if probe == "situational" else f"reflection_{probe}_{data}"
    out_dir = Path(out) if out else ckpts[0].parent.parent / name
    check_output_dir(out_dir, "reflection --out", inputs=[("--checkpoints", c) for c in ckpts],
                     owns=("table.jsonl", "correlations.json", "samples.jsonl", "plots", "self_set.jsonl"))
    return run_probe(ckpts, data=data, out_dir=out_dir, probe=probe, **kw)
