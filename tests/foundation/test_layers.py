"""The config package is the bottom layer above errors: it imports nothing of reasonrl above it, lazily or not
(it validated `reward.kind` with the reward registry and `data.difficulty` with the synthetic world: an import circle,
config -> reward.base -> config and config -> tasks.synthetic -> ... -> config)."""

from __future__ import annotations

import ast
from pathlib import Path

import reasonrl.config
from reasonrl.config.sections import SYNTHETIC_LEVELS
from reasonrl.tasks.synthetic import LEVELS

ALLOWED = ("reasonrl.config", "reasonrl.errors")


def _imports(path: Path) -> list[str]:
    """Every module an import statement anywhere in `path` names (inside functions too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_config_imports_no_layer_above_it():
    files = sorted(Path(reasonrl.config.__file__).parent.glob("*.py"))
    assert len(files) >= 4
    above = {f"{f.name}: {m}" for f in files for m in _imports(f)
             if m.startswith("reasonrl") and not m.startswith(ALLOWED)}
    assert not above


def test_the_config_knows_every_level_of_the_world():
    assert tuple(LEVELS) == SYNTHETIC_LEVELS
