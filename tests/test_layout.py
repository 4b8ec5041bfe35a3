"""The package layout's promises: the pure modules import no I/O library, and no module imports another in a
cycle. Both are read from the code itself (a fresh interpreter, the import statements), not from a list."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
PURE = [
    "medix_reward.scoring.rules",
    "medix_reward.scoring.checks",
    "medix_reward.scoring.screening",
    "medix_reward.judge.prompts",
    "medix_reward.judge.types",
    "medix_reward.evaluation.rules",
]
IO_LIBRARIES = ["aiohttp", "httpx", "redis", "fastapi", "starlette", "uvicorn"]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_library(module):
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert module in loaded  # the probe imported what it claims
    assert [name for name in loaded if name.split(".")[0] in IO_LIBRARIES] == []


def _imports(path: Path, package: str) -> set[str]:
    """The project modules a file imports at module level, by statement (imports inside functions are lazy)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.If) else node.body:
            if isinstance(child, ast.Import):
                found |= {alias.name for alias in child.names}
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
                found |= {f"{child.module}.{alias.name}" for alias in child.names}
    return {name for name in found if name.split(".")[0] == package}


def _graph(package: str) -> dict[str, set[str]]:
    modules = {}
    for path in (SERVICE / package).rglob("*.py"):
        parts = path.relative_to(SERVICE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: _imports(path, package) & set(modules) for name, path in modules.items()}


@pytest.mark.parametrize("package", ["medix_reward", "medix_reward_tools"])
def test_no_import_cycle(package):
    graph = _graph(package)
    assert len(graph) > 10  # the walk found the package's modules
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            assert state.get(imported) != 1, f"import cycle: {' -> '.join([*path, module, imported])}"
            if imported not in state:
                visit(imported, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_serving_imports_no_tooling():
    graph = _graph("medix_reward")
    sources = "\n".join(path.read_text() for path in (SERVICE / "medix_reward").rglob("*.py") if path.name != "cli.py")
    assert all(not name.startswith("medix_reward_tools") for imports in graph.values() for name in imports)
    assert "medix_reward_tools" not in sources  # not even lazily, outside the CLI's dev subcommands
