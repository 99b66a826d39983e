"""The packages keep their layers (docs/architecture.md): flowkit's parts import only the parts
below them, no modules import each other in a loop (imports inside functions count), flowkit
never needs stddcn, and stddcn reads flowkit only through its public data API (test_models
checks that models import no flowkit at all)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flowkit.flow import _ENTRIES as FLOW_BACKENDS

ROOT = Path(__file__).resolve().parents[1]
# what the training package may use of flowkit: its public data API, errors and the reader
PUBLIC_FLOWKIT = {"flowkit", "flowkit.data", "flowkit.errors"}

# flowkit's parts, bottom up: a module imports modules of its own part, or of parts with a
# lower rank. Parts of one rank stand beside each other and never import each other.
RANKS = {
    "flowkit.errors": 0,
    "flowkit.checks": 1, "flowkit.writing": 1, "flowkit.lifecycle": 1,
    "flowkit.video": 2, "flowkit.flow": 2, "flowkit.lock": 2,
    "flowkit.store": 3,
    "flowkit": 4, "flowkit.config": 4,  # "flowkit": the package's face, its __init__
    "flowkit.versions": 5,
    "flowkit.extract": 6, "flowkit.data": 6,
    "flowkit.interop": 7, "flowkit.preview": 7,
    "flowkit.cli": 8,
    "flowkit.__main__": 9,
}


def _module_names() -> dict[str, Path]:
    """Every module of flowkit, stddcn and the CLI (installed as flowkit.cli), by name."""
    modules = {}
    for folder, package in (("flowkit", "flowkit"), ("stddcn", "stddcn"), ("cli", "flowkit.cli")):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _module_names()


def _imported(module: str, path: Path) -> dict[str, int]:
    """The modules of this tree that ``module`` imports, anywhere in its file (top level or
    inside functions, absolute or relative), with the line of the first import of each."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        while name and name not in MODULES:  # a name imported from a module: the module
            name = name.rpartition(".")[0]
        if name and name != module:
            found.setdefault(name, line)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # "from package import module" imports the module
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base,
                    node.lineno)
    return found


def _graph() -> dict[str, dict[str, int]]:
    graph = {module: _imported(module, path) for module, path in MODULES.items()}
    # the flow registry imports its backends by name (importlib), when one is asked for
    for entry in FLOW_BACKENDS.values():
        for qualified in (entry.backend, entry.config):
            graph["flowkit.flow"].setdefault(qualified.split(":")[0], 0)
    return graph


GRAPH = _graph()


def _part(module: str) -> str | None:
    """The part of flowkit ``module`` belongs to: the longest name in RANKS it starts with."""
    candidates = [part for part in RANKS if module == part or module.startswith(part + ".")]
    candidates = [part for part in candidates if part != "flowkit" or module == "flowkit"]
    return max(candidates, key=len, default=None)


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_modules_import_each_other_in_a_loop():
    """Counting imports inside functions: a lazy import only hides a loop."""
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_loop_through_a_lazy_import():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 9}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_every_flowkit_module_has_a_place_in_the_layers():
    """A new module is placed on purpose: under a subpackage, or named in RANKS."""
    unplaced = [m for m in MODULES if m.split(".")[0] == "flowkit" and _part(m) is None]
    assert unplaced == []


def _wrong_imports(module: str, imports: dict[str, int]) -> list[str]:
    """The imports of ``module`` that reach a part of flowkit beside or above its own."""
    part = _part(module)
    return [f"{module} -> {target} (line {line}: {_part(target)} is not below {part})"
            for target, line in imports.items()
            if target.split(".")[0] == "flowkit" and _part(target) != part
            and RANKS[_part(target)] >= RANKS[part]]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "flowkit"))
def test_flowkit_modules_import_only_their_own_part_or_parts_below(module):
    assert _wrong_imports(module, GRAPH[module]) == []


def test_the_layer_check_refuses_an_import_upwards_and_one_beside():
    assert _wrong_imports("flowkit.store.writer", {"flowkit.extract.run": 3}) == [
        "flowkit.store.writer -> flowkit.extract.run (line 3: flowkit.extract is not below "
        "flowkit.store)"]
    assert len(_wrong_imports("flowkit.extract.run", {"flowkit.data.dataset": 1})) == 1
    assert len(_wrong_imports("flowkit.video.synth", {"flowkit.flow.base": 1})) == 1
    assert len(_wrong_imports("flowkit.versions", {"flowkit": 1, "flowkit.errors": 2})) == 0
    assert _wrong_imports("flowkit.extract.run", {"flowkit.extract.plan": 1, "numpy": 2,
                                                  "flowkit.store.writer": 3}) == []


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items()
                                            if p.name == "__init__.py"
                                            and m.split(".")[0] == "flowkit"))
def test_every_subpackage_says_what_lives_there(package):
    docstring = ast.get_docstring(ast.parse(MODULES[package].read_text()))
    assert docstring and len(docstring.splitlines()) >= 2, package


def test_flowkit_never_imports_stddcn():
    """The extraction library installs and runs without the training package."""
    for module in MODULES:
        if module.split(".")[0] == "flowkit" and not module.startswith("flowkit.cli"):
            assert not [n for n in GRAPH[module] if n.split(".")[0] == "stddcn"], module


def test_stddcn_uses_only_flowkits_public_data_api():
    """stddcn imports flowkit, flowkit.data and flowkit.errors only."""
    for module in MODULES:
        if module.split(".")[0] == "stddcn":
            used = {n for n in GRAPH[module] if n.split(".")[0] == "flowkit"}
            assert used <= PUBLIC_FLOWKIT, (module, used - PUBLIC_FLOWKIT)
