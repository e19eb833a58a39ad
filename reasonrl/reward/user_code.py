"""Your reward code: finding it (`"path/to/file.py:name"`, `"package.module:name"`), telling its shape from its
signature, calling it, and the frames of its tracebacks that are yours.

Light on purpose (no torch): the worker processes of `reward.workers` import this module and nothing heavier.

Shapes, decided by `shape(fn)` from the parameter names, exactly one of the first three must match:
- `builder`: keyword-only `tokenizer` and `device` -> `fn(cfg, tokenizer=..., device=...)` returns a `Reward`
  (the built-in kinds' interface, `reasonrl.reward.base`), called with `Responses`, returning `Scored`;
- `trl`: a parameter `completions` -> TRL's `fn(prompts=[...], completions=[...], **columns) -> list[float]`;
- `verl`: parameters `solution_str` and `ground_truth` -> verl's `fn(data_source=..., solution_str=...,
  ground_truth=..., extra_info=...) -> float` (or a dict with a "score"), one call per completion;
- else, one required positional parameter: a `Reward` itself, `fn(responses) -> Scored`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pickle
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import reasonrl
from reasonrl.errors import UserError, one_line

SHAPES = ("builder", "trl", "verl", "reward")
_PACKAGE_DIR = Path(reasonrl.__file__).resolve().parent
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def parse_spec(kind: str) -> tuple[str, str, str]:
    """`("file", absolute path, name)` for `"path/to/file.py:name"` (relative to the working directory) or
    `("module", "package.module", name)` for `"package.module:name"`; a UserError naming `kind` otherwise."""
    where, sep, name = kind.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise UserError(f"reward.kind {kind!r}: expected a built-in kind, 'path/to/file.py:name' or "
                        f"'package.module:name'")
    if where.endswith(".py") or "/" in where or "\\" in where:
        return "file", str(Path(where).resolve()), name
    if not _MODULE.match(where):
        raise UserError(f"reward.kind {kind!r}: {where!r} is neither a .py file nor a module name")
    return "module", where, name


def load_object(spec: tuple, label: str | None = None) -> Any:
    """The object a spec names: `parse_spec`'s tuples, or `("pickle", bytes)` (a function handed to the API, sent
    to a worker process). Import problems are one UserError line naming the reward (`label`, else the spec)."""
    if spec[0] == "pickle":
        return pickle.loads(spec[1])
    how, where, name = spec
    label = label or f"{where}:{name}"
    module = _load_file(Path(where), label) if how == "file" else _import(where, label)
    if name not in vars(module):
        defined = ", ".join(n for n, v in vars(module).items() if not n.startswith("_") and callable(v))
        raise UserError(f"reward {label}: {Path(where).name if how == 'file' else where} has no {name!r} (its "
                        f"callables: {defined or 'none'})")
    obj = getattr(module, name)
    if not callable(obj):
        raise UserError(f"reward {label}: {name!r} is a {type(obj).__name__}, not a function")
    return obj


def _load_file(path: Path, label: str):
    if not path.is_file():
        raise UserError(f"reward {label}: no such file {path} (a path in reward.kind is relative to the working "
                        f"directory)")
    # a stable, unique module name, registered so that what the file defines (dataclasses, pickling) finds it;
    # executed afresh on every load, so that a fixed file is what a resumed run in the same process uses
    stem, digest = re.sub(r"\W", "_", path.stem), hashlib.sha1(str(path).encode()).hexdigest()[:8]
    name = f"_reasonrl_reward_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise UserError(f"reward {label}: importing {path.name} raised {_describe(e)}") from None
    return module


def _import(name: str, label: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise UserError(f"reward {label}: no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from None
    except Exception as e:
        raise UserError(f"reward {label}: importing {name} raised {_describe(e)}") from None


def shape(fn: Any, label: str) -> str:
    """Which of `SHAPES` `fn` has (module docstring); a UserError naming `label` when none or several match."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise UserError(f"reward {label}: its signature cannot be read, so its shape is unknown") from None
    keyword_only = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    matches = [s for s, ok in (("builder", {"tokenizer", "device"} <= keyword_only), ("trl", "completions" in params),
                               ("verl", {"solution_str", "ground_truth"} <= set(params))) if ok]
    if len(matches) > 1:
        raise UserError(f"reward {label}: its signature fits several shapes ({', '.join(matches)}): rename its "
                        f"parameters so that exactly one fits (docs/rewards.md)")
    if matches:
        return matches[0]
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params.values() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                                      p.VAR_KEYWORD)]
    if len(positional) >= 1 and required == positional[:1]:
        return "reward"
    got = ", ".join(params) or "none"
    raise UserError(f"reward {label}: its parameters ({got}) fit no reward shape: a builder (cfg, *, tokenizer, "
                    f"device), TRL's (prompts, completions, **columns), verl's (data_source, solution_str, "
                    f"ground_truth, extra_info) or a Reward (responses)")


def accepted(fn: Any) -> tuple[set[str] | None, set[str]]:
    """`(names fn accepts by keyword or None when it takes **kwargs, names it requires)`."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)}
    required = {n for n, p in params.items() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                                         p.VAR_KEYWORD)}
    return (None if var_kw else named), required


def call_unit(fn: Any, kwargs: dict) -> tuple:
    """One call of a plain reward function: `("ok", value)` or `("error", exception type, message, your frames)`.
    Runs in this process or in a worker (`reward/pool.py`), so an error comes back as text, never as an object."""
    try:
        return ("ok", fn(**kwargs))
    except Exception as e:
        return ("error", type(e).__name__, one_line(str(e)), user_frames(e.__traceback__))


def user_frames(tb) -> str:
    """The traceback's frames outside the reasonrl package (your code and what it called), formatted as Python
    formats a traceback; reasonrl's own frames say nothing about your bug."""
    frames = [f for f in traceback.extract_tb(tb) if not Path(f.filename).resolve().is_relative_to(_PACKAGE_DIR)]
    return "".join(traceback.format_list(frames))


def _describe(e: Exception) -> str:
    where = f" (line {e.lineno})" if isinstance(e, SyntaxError) and e.lineno else ""
    return f"{type(e).__name__}: {one_line(str(e))}{where}"
