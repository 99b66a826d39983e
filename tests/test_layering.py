"""The packages keep their layers: flowkit never needs stddcn, and stddcn reads flowkit only
through its public data API (test_models checks that models import no flowkit at all)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the training package may use of flowkit: its public data API, errors and the reader
PUBLIC_FLOWKIT = {"flowkit", "flowkit.data", "flowkit.errors"}


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute imports, anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_flowkit_never_imports_stddcn():
    """The extraction library installs and runs without the training package."""
    for path in _under("flowkit"):
        assert not {n for n in _imports(path) if n.split(".")[0] == "stddcn"}, path


def test_stddcn_uses_only_flowkits_public_data_api():
    """Outside its models, stddcn imports flowkit, flowkit.data and flowkit.errors only."""
    for path in _under("stddcn"):
        used = {n for n in _imports(path) if n.split(".")[0] == "flowkit"}
        assert used <= PUBLIC_FLOWKIT, (path, used - PUBLIC_FLOWKIT)
