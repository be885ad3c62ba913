"""The packages' layering (docs/architecture.md): nothing imports a package above it.

Every import statement of every module is read with `ast` (imports inside functions included),
so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("tasks", "mixers", "runners", "analysis", "bench", "tests")

# package -> the project packages it may import (itself included); tasks and mixers are
# independent, runners uses both, analysis is the top layer
ALLOWED = {
    "tasks": {"tasks"},
    "mixers": {"mixers"},
    "runners": {"runners", "tasks", "mixers"},
    "analysis": {"analysis", "runners", "tasks", "mixers"},
}
# analysis reads results through the light runners modules (the schema, the metric table, the
# config folder), and rebuilds a trained model for routing; it never composes or runs a config
# (runners.config, runners.train)
ANALYSIS_USES_OF_RUNNERS = {"runners.schema", "runners.metrics", "runners.paths", "runners.model",
                            "runners.checkpoint"}


def imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file (relative ones resolved)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module
            out.append((node.lineno, module))
            # `from runners import train`: the module imported is runners.train
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return out


def violations(package: str, root: Path = REPO) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imports(path, root):
            top = module.split(".")[0]
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if top in PROJECT and top not in ALLOWED[package]:
                bad.append(where)
            elif (package == "analysis" and top == "runners" and module.count(".") == 1
                  and module not in ANALYSIS_USES_OF_RUNNERS
                  and (REPO / f"{module.replace('.', '/')}.py").exists()):
                bad.append(where)
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_package_imports_one_above_it(package):
    assert violations(package) == []


def test_the_check_sees_an_upward_import(tmp_path):
    fake = tmp_path / "mixers"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from analysis.leaderboard import main\n")
    (fake / "rel.py").write_text("from ..runners import train\n")
    found = violations("mixers", tmp_path)
    assert any("bad.py:2 imports analysis.leaderboard" in v for v in found)
    assert any("rel.py:1 imports runners" in v for v in found)
