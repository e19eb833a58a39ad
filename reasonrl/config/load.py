"""Loading a Config: defaults, then a TOML file, then `--section.key=value` overrides; type checks naming the file
and key; the resolved config as JSON (`write_resolved`, `from_dict`)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from reasonrl.config.checks import check_ranges
from reasonrl.config.sections import Config
from reasonrl.errors import UserError, warn


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """Return `value` coerced to type `tp` (int -> float only) or raise UserError naming `where`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(c) for c in typing.get_args(tp))
            raise UserError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):  # `float | str` only: a number or a word (`reward.on_error`)
        assert set(typing.get_args(tp)) == {float, str}, f"{where}: of unions, only float | str is supported"
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{where}: expected a number or a string, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float, str) and (not isinstance(value, tp) or isinstance(value, bool)):
        raise UserError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _apply(cfg: Config, section: str, key: str, value: Any, where: str) -> None:
    sections = _field_types(Config)
    if section not in sections:
        raise UserError(f"{where}: unknown section [{section}] (known: {', '.join(sections)})")
    sec = getattr(cfg, section)
    keys = _field_types(type(sec))
    if key not in keys:
        raise UserError(f"{where}: unknown key {section}.{key} (known: {', '.join(keys)})")
    setattr(sec, key, _check_value(value, keys[key], f"{where}: {section}.{key}"))


def _is_text(tp: Any) -> bool:
    return tp is str or typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in typing.get_args(tp))


def _parse_override_value(text: str, tp: Any) -> Any:
    """Interpret the text of `--section.key=value` for a field of type `tp`."""
    if _is_text(tp):
        return text
    if typing.get_origin(tp) is list and _is_text(typing.get_args(tp)[0]) and not text.lstrip().startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]  # --log.report_to=wandb,tensorboard
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # let the type check report it with the key named


def _apply_text(cfg: Config, item: str) -> None:
    """One `--section.key=value` override from the command line."""
    if not item.startswith("--") or "=" not in item or "." not in item.split("=", 1)[0]:
        raise UserError(f"command line: override {item!r} must look like --section.key=value")
    name, text = item[2:].split("=", 1)
    section, key = name.split(".", 1)
    sections = _field_types(Config)
    tp = _field_types(type(getattr(cfg, section))).get(key, str) if section in sections else str
    _apply(cfg, section, key, _parse_override_value(text, tp), "command line")


def load_config(path: str | Path | None = None, overrides: list[str] | Mapping[str, Any] | None = None, *,
                uses: Collection[str] | None = None) -> Config:
    """Build a Config from defaults, then the TOML file at `path`, then the overrides: `--section.key=value` texts
    (the command line) or `{"section.key": value}` (Python values, the API). `uses`: the sections the calling command
    reads; a [section] of the file outside it gets a one-line warning."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: config file not found")
        raw = p.read_bytes()
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise UserError(f"{p}: line {line}: not UTF-8 text (byte {raw[e.start]:#04x}); save the file as UTF-8") \
                from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{p}: malformed TOML: {e}") from None
        for section, table in data.items():
            if not isinstance(table, dict):
                raise UserError(f"{p}: top-level key {section!r} must be a [section] table")
            for key, value in table.items():
                _apply(cfg, section, key, value, str(p))
    if isinstance(overrides, Mapping):
        for name, value in overrides.items():
            if not isinstance(name, str) or name.count(".") != 1:
                raise UserError(f"overrides: key {name!r} must look like 'section.key'")
            _apply(cfg, *name.split("."), value, "overrides")
    else:
        for item in overrides or []:
            _apply_text(cfg, item)
    given = "overrides" if isinstance(overrides, Mapping) else "command-line overrides"
    where = ("overrides" if given == "overrides" else "command line") if path is None else \
        f"{path} (with {given})" if overrides else str(path)
    check_ranges(cfg, where)
    if path is not None and uses is not None:
        unused = [s for s in data if s not in uses]
        if unused:
            warn(f"{path}: this command does not use section(s) {', '.join(f'[{s}]' for s in unused)}")
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def write_resolved(cfg: Config, run_dir: str | Path) -> Path:
    """Write the resolved config as JSON (exact types) to `run_dir/config.json`."""
    out = Path(run_dir) / "config.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    tmp.replace(out)
    return out


def from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Inverse of `to_dict`, with the same checks as a TOML file."""
    cfg = Config()
    for section, table in data.items():
        for key, value in table.items():
            _apply(cfg, section, key, value, where)
    return cfg
