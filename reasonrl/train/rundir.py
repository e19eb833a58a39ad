"""Run directories: one run per directory, nothing lost and nothing mixed.

A run directory holds `config.json` (the resolved config), `inputs.json` (fingerprints of the files the run read:
`input_fingerprints`), `metrics.jsonl`, `checkpoints/`, `final/`, `plots/`, `resumes.jsonl` (what a resume changed)
and what the trackers of `log.report_to` keep there (`tensorboard/`,
`wandb/`, `trackers.json`). Two calls guard it:

- `check(cfg)`, first thing in every trainer (rank 0 looks, read only): a fresh run into a directory that
  holds a run is refused unless `train.overwrite`; `train.resume` needs a checkpoint and a config that agrees
  with the saved `config.json` except for `SAFE_TO_CHANGE` keys, and inputs whose bytes are those recorded in
  `inputs.json` (a retrained `model.path` at the same path is another base and reference model); a directory
  locked by a live process is refused.
- `claim(cfg, resume_step)`, once every input has been read and validated (rank 0 writes): lock the directory,
  move the old run aside on `train.overwrite` (into `.overwritten/`, deleted by `checkpoint.drop_overwritten` once
  the new run has saved a checkpoint or its final output), write `config.json` and (a fresh run) `inputs.json`,
  record changed safe keys in `resumes.jsonl`.

A directory "holds a run" when it holds any command's run files (`ALL_RUN_FILES`: a trainer's or rm-train's), and
`--overwrite` replaces all of them, so no run is left half replaced by another command's. A fresh run's directory
must not contain one of its inputs among those files (a `model.path` of `<run_dir>/final` would be replaced).

The lock is `run_dir/.lock` holding `{"pid", "host"}`; a lock whose process is gone (same host, dead pid) is
stale and taken over. It is released at the end of the run and when the process exits.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from reasonrl import dist
from reasonrl.config import Config, to_dict, write_resolved
from reasonrl.errors import UserError, warn
from reasonrl.outputs import (
    MODEL_AND_DATA,
    check_output_dir,
    config_inputs,
    fingerprint,
    settings_changes,
    write_atomic,
)
from reasonrl.train.checkpoint import OVERWRITTEN, latest_checkpoint
from reasonrl.train.trackers import TRACKER_FILES
from reasonrl.userfiles import read_json_object

INPUTS = "inputs.json"
RUN_FILES = ("config.json", INPUTS, "metrics.jsonl", "checkpoints", "final", "plots", "resumes.jsonl", *TRACKER_FILES)
ALL_RUN_FILES = (*RUN_FILES, "judge", "eval.json")  # and rm-train's (pairwise/rm_train.RUN_FILES)
LOCK = ".lock"
# Keys a resumed run may change: they steer how long it runs, what it logs and how often it evaluates or saves,
# or how much memory a step takes (gradient checkpointing: the same gradients), not what a step computes. Every
# other difference from the saved config.json refuses the resume. (A longer train.steps also stretches the lr
# schedule from the resumed step on; config.json and resumes.jsonl say so.)
SAFE_TO_CHANGE = frozenset({
    "train.steps", "train.eval_every", "train.eval_examples", "train.save_every", "train.log_checkpoints",
    "train.resume", "train.overwrite", "log.run_dir", "log.progress", "log.plots", "log.report_to", "dist.backend",
    "dist.rollout_params", "dist.lockstep_sync_every",  # how FSDP2 decodes: the same samples (test_rl_fsdp2)
    # how a reward function's failures and slowness are handled, not what a successful call computes: a run stopped
    # by a failing or hanging reward resumes with a worker pool, a timeout or a fallback score
    "reward.workers", "reward.timeout_s", "reward.on_error",
    "model.gradient_checkpointing",  # recomputes activations: the same gradients (tests/model)
})
SAFE_SECTIONS = ("eval",)  # read by `reasonrl eval` only


def existing_run(run_dir: Path, run_files: tuple[str, ...] = RUN_FILES) -> list[str]:
    """The names of `run_files` present in `run_dir` (an empty `checkpoints/` does not count)."""
    present = []
    for name in run_files:
        p = run_dir / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            present.append(name)
    return present


def config_changes(cfg: Config, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`section.key -> (saved, now)` for every key whose value differs from the saved resolved config (keys on
    one side only, from another version of reasonrl, are not compared: `outputs.settings_changes`)."""
    def flat(config: dict[str, dict]) -> dict[str, Any]:
        return {f"{section}.{key}": value for section, table in config.items() for key, value in table.items()}

    return settings_changes(flat(saved), flat(to_dict(cfg)), shared_only=True)


def _safe(key: str) -> bool:
    return key in SAFE_TO_CHANGE or key.split(".")[0] in SAFE_SECTIONS


def _saved_config(run_dir: Path) -> dict[str, Any]:
    """The run's `config.json`: an object of sections, each an object (a UserError naming the file if not)."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"log.run_dir {run_dir}: --resume, but it has no config.json to compare with")
    saved = read_json_object(path)
    for section, table in saved.items():
        if not isinstance(table, dict):
            raise UserError(f"{path}: not a valid resolved config (section {section!r} is a "
                            f"{type(table).__name__}, not an object)")
    return saved


def check(cfg: Config, *, run_files: tuple[str, ...] = RUN_FILES) -> Path:
    """Refuse, before anything is read or written, a run that would lose or mix runs (see the module docstring).
    Rank 0 looks and every rank raises its error: the broadcast also keeps rank 0 from claiming the directory
    (`claim`) before every rank has passed this check. `run_files`: what a run of the calling command writes
    (`reasonrl rm-train` adds its judge and report)."""
    dist.main_decides(lambda: _check(cfg, run_files))
    return Path(cfg.log.run_dir)


def run_inputs(cfg: Config) -> list[tuple[str, str]]:
    """The paths a run reads (`outputs.Inputs`): a fresh run's directory must not hold them among its files."""
    return config_inputs(cfg, (*MODEL_AND_DATA, "data.test_source", "rl.critic_path", "pairwise.judge_path",
                               "pairwise.data", "swirl.judge"))


FINGERPRINTED = ("model.path", "model.tokenizer_path", "rl.critic_path", "pairwise.judge_path", "pairwise.data",
                 "swirl.judge", "data.source", "data.test_source")
"""The inputs a resumed run reads again (the reference model and a LoRA run's base come from `model.path`)."""


def input_fingerprints(cfg: Config) -> dict[str, str]:
    """`key -> outputs.fingerprint` of each `FINGERPRINTED` input that is a file or directory here (not a hub model,
    `synthetic`, a benchmark name or `swirl.judge = 'program'`): what `inputs.json` records. A LoRA adapter
    directory's fingerprint covers the models under it too (`lora.adapter_chain`): a retrained base changes it."""
    from reasonrl.model.lora import adapter_chain

    return {k: "+".join(fingerprint(d) for d in adapter_chain(p)) for k, p in run_inputs(cfg)
            if k in FINGERPRINTED and Path(p).exists()}


def _check_inputs_unchanged(cfg: Config, run_dir: Path) -> None:
    """A resume reads the inputs its run started from: each recorded in `inputs.json` has the same fingerprint (the
    paths are in config.json, compared there). A run from before inputs were recorded resumes with a warning."""
    path = run_dir / INPUTS
    if not path.is_file():
        warn(f"log.run_dir {run_dir}: no {INPUTS} (written before inputs were recorded), so the resume cannot check "
             "that model.path and the other inputs hold what the run started from; recording them now")
        return
    saved = read_json_object(path)
    if not all(isinstance(v, str) for v in saved.values()):
        raise UserError(f"{path}: expected an object of input fingerprints (text values); delete it to resume "
                        "without the check")
    now, paths = input_fingerprints(cfg), dict(run_inputs(cfg))
    for key, old in saved.items():
        if now.get(key) != old:
            how = ("no longer exists" if key not in now else
                   f"holds other bytes than when the run started (fingerprint {old} -> {now[key]}; retrained?)")
            raise UserError(f"log.run_dir {run_dir}: --resume, but {key} {paths.get(key)} {how}: resume with the "
                            "inputs the run started from, or start a new run")


def _check(cfg: Config, run_files: tuple[str, ...]) -> None:
    t = cfg.train
    # a resumed run reads its checkpoint, not model.path, and moves nothing aside
    run_dir = check_output_dir(cfg.log.run_dir, "log.run_dir", inputs=() if t.resume else run_inputs(cfg),
                               owns=(*ALL_RUN_FILES, OVERWRITTEN))
    if t.resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"log.run_dir {run_dir}: --resume, but there is nothing to resume (no checkpoint)"
                            + _aside_note(run_dir))
        changes = config_changes(cfg, _saved_config(run_dir))
        unsafe = {k: v for k, v in changes.items() if not _safe(k)}
        if unsafe:
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in unsafe.items())
            raise UserError(f"log.run_dir {run_dir}: --resume with a config that differs from its config.json in "
                            f"{listed}; only {', '.join(sorted(SAFE_TO_CHANGE))} may change (or start a new run)")
        if "train.steps" in changes and t.steps < changes["train.steps"][0]:
            raise UserError(f"log.run_dir {run_dir}: --resume may extend train.steps, not shorten it "
                            f"({changes['train.steps'][0]} -> {t.steps})")
        _check_inputs_unchanged(cfg, run_dir)
    elif (present := existing_run(run_dir, ALL_RUN_FILES)) and not t.overwrite:
        raise UserError(_used(run_dir, present, run_files))
    holder = _live_holder(run_dir / LOCK)
    if holder is not None:
        raise UserError(_busy(run_dir, holder))


def _used(run_dir: Path, present: list[str], run_files: tuple[str, ...]) -> str:
    """The refusal of a fresh run in a used directory; a command whose runs keep no checkpoints cannot resume."""
    how = "pass --resume to continue it or --overwrite" if "checkpoints" in run_files else "pass --overwrite"
    return f"log.run_dir {run_dir} already holds a run ({', '.join(present)}): {how} to replace it" + _aside_note(
        run_dir)


def _aside_note(run_dir: Path) -> str:
    aside = run_dir / OVERWRITTEN
    if not aside.is_dir():
        return ""
    return (f"; the run an --overwrite replaced waits in {aside} until the new run saves a checkpoint (to restore it, "
            "see docs/runs.md)")


def claim(cfg: Config, resume_step: int, *, run_files: tuple[str, ...] = RUN_FILES) -> None:
    """Lock the run directory and write the run's config (rank 0; every rank raises the same error). Call it
    after every input has been read and validated, before the first write; `run_files` as in `check`."""
    dist.main_decides(lambda: _claim(cfg, Path(cfg.log.run_dir), resume_step, run_files))


def _claim(cfg: Config, run_dir: Path, resume_step: int, run_files: tuple[str, ...]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    acquire(run_dir)
    if cfg.train.resume:
        changes = {k: v for k, v in config_changes(cfg, _saved_config(run_dir)).items() if k != "train.resume"}
        if changes:
            line = json.dumps({"step": resume_step, "changed": {k: {"from": a, "to": b} for k, (a, b) in
                                                                 changes.items()}})
            with (run_dir / "resumes.jsonl").open("a") as f:
                f.write(line + "\n")
    else:  # a fresh run: check() let an old run through only with train.overwrite; one may have appeared since
        present = existing_run(run_dir, ALL_RUN_FILES)
        if present and not cfg.train.overwrite:
            release(run_dir)
            raise UserError(_used(run_dir, present, run_files))
        if cfg.train.overwrite:
            set_aside(run_dir)
    write_resolved(cfg, run_dir)
    if not cfg.train.resume or not (run_dir / INPUTS).is_file():  # a resume keeps what its run started from
        write_atomic(run_dir / INPUTS, json.dumps(input_fingerprints(cfg), indent=2) + "\n")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def set_aside(run_dir: Path) -> None:
    """`--overwrite`: move the old run's files into `run_dir/.overwritten/` (deleted once the new run saves a
    checkpoint or its final output: `checkpoint.drop_overwritten`). If an earlier `--overwrite` left one there and
    the directory now holds only that attempt's start (no checkpoint, final model or judge), the attempt is deleted
    and the older run stays aside; if it got further, the old aside is stale and goes first."""
    aside = run_dir / OVERWRITTEN
    names = [n for n in ALL_RUN_FILES if (run_dir / n).exists() or (run_dir / n).is_symlink()]
    if aside.exists():
        progressed = latest_checkpoint(run_dir) is not None or any((run_dir / n).exists() for n in ("final", "judge"))
        if not progressed:
            for name in names:
                _remove(run_dir / name)
            return
        _remove(aside)
    if not names:
        return
    aside.mkdir()
    for name in names:
        os.replace(run_dir / name, aside / name)


# ------------------------------------------------------------------------------------------------------- the lock

_HELD: set[Path] = set()


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _read_lock(lock: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": None, "host": "?"}  # unreadable: treat as held, the message names the file
    return holder if isinstance(holder, dict) else {"pid": None, "host": "?"}


def _alive(holder: dict[str, Any]) -> bool:
    """A holder on another host (or unreadable) counts as alive: only a local dead pid is provably stale."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_holder(lock: Path) -> dict[str, Any] | None:
    """The lock's holder if it is another live process, else None."""
    holder = _read_lock(lock)
    if holder is None or holder == _me() or not _alive(holder):
        return None
    return holder


def _busy(run_dir: Path, holder: dict[str, Any]) -> str:
    return (f"log.run_dir {run_dir} is in use by process {holder.get('pid')} on {holder.get('host')} (lock "
            f"{run_dir / LOCK}); wait for it to finish, or delete the lock file if that process is gone")


def acquire(run_dir: Path) -> None:
    """Take `run_dir/.lock`, or raise UserError if another live process holds it; a stale lock is taken over."""
    lock, me = run_dir / LOCK, _me()
    tmp = run_dir / f"{LOCK}.{me['pid']}.tmp"
    tmp.write_text(json.dumps(me) + "\n")
    try:
        for _ in range(3):
            try:
                _link_exclusive(tmp, lock)
                break
            except FileExistsError:
                holder = _read_lock(lock)
                if holder == me:
                    break
                if holder is not None and _alive(holder):
                    raise UserError(_busy(run_dir, holder)) from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
        else:
            raise UserError(_busy(run_dir, _read_lock(lock) or {}))
    finally:
        tmp.unlink(missing_ok=True)
    _HELD.add(run_dir)


def _link_exclusive(tmp: Path, lock: Path) -> None:
    """Create `lock` with `tmp`'s content, or raise FileExistsError. A hard link is atomic and the lock never
    exists half-written; where the filesystem has no hard links, an exclusive create does the same job."""
    try:
        os.link(tmp, lock)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # raises FileExistsError if it exists
        with os.fdopen(fd, "w") as f:
            f.write(tmp.read_text())


def release(run_dir: str | Path) -> None:
    """Remove the lock if this process holds it."""
    run_dir = Path(run_dir)
    _HELD.discard(run_dir)
    if _read_lock(run_dir / LOCK) == _me():
        (run_dir / LOCK).unlink(missing_ok=True)


@atexit.register
def release_all() -> None:
    """Every lock this process holds (also at exit, so a failed run leaves no live-looking lock behind)."""
    for run_dir in list(_HELD):
        release(run_dir)
