"""benchsel's imports go one way: computed from the source with ast, no cycle and no import that goes up
the layer order of docs/architecture.md. Imports inside functions and under TYPE_CHECKING count too:
a lazy import that dodges a cycle is still the cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "benchsel"

# Bottom first. A module may import from its own component (the name itself, or a package and what is
# below it) and from any component of a lower layer; components of one layer are independent of each
# other. The root package "benchsel" only holds __version__ and lazy string lookups.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("benchsel", "benchsel.errors", "benchsel.defaults"),
    (
        "benchsel.records",
        "benchsel.jsonio",
        "benchsel.normalize",
        "benchsel.bounds",
        "benchsel.runconfig",
        "benchsel.contention",
        "benchsel.paths",
        "benchsel.chat_templates",
        "benchsel.gcpause",
        "benchsel.digest",
    ),
    ("benchsel.hardware", "benchsel.evalset", "benchsel.store"),
    ("benchsel.synthetic",),
    ("benchsel.labels",),
    ("benchsel.importers",),
    ("benchsel.scoring",),
    ("benchsel.backends",),
    ("benchsel.prefix_cache", "benchsel.slots", "benchsel.hosts"),
    ("benchsel.runner", "benchsel.summary"),
    ("benchsel.multihost",),
    ("benchsel.raymode",),
    ("benchsel.selection",),
    ("benchsel.train",),
    ("benchsel.api",),
    ("benchsel.probe",),
    ("benchsel.report",),
    ("benchsel.loop",),
    ("benchsel.cli",),
    ("benchsel.__main__",),
)

# Known violations still to straighten (issue 14), each with its reason. Emptied as the work lands.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported(module: str, tree: ast.Module) -> Iterator[str]:
    """Every benchsel module the source imports, with the packages whose __init__ that import runs."""
    is_package = MODULES[module].name == "__init__.py"
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name in MODULES:
                yield name
                # importing a.b.c runs a.b's __init__, except for the packages this module is inside
                yield from (a for a in _ancestors(name) if a not in _ancestors(module) and a != "benchsel")


def import_graph() -> dict[str, set[str]]:
    return {
        module: set(_imported(module, ast.parse(path.read_text(encoding="utf-8")))) - {module}
        for module, path in MODULES.items()
    }


def component(module: str) -> tuple[int, str]:
    """(layer index, component) of a module: the longest component name that is it or a package above it."""
    best: tuple[int, str] | None = None
    for index, layer in enumerate(LAYERS):
        for name in layer:
            inside = module == name or (name != "benchsel" and module.startswith(name + "."))
            if inside and (best is None or len(name) > len(best[1])):
                best = (index, name)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")
    return best


def violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for source, targets in graph.items():
        layer, comp = component(source)
        for target in sorted(targets):
            target_layer, target_comp = component(target)
            if target_comp != comp and target_layer >= layer:
                bad.append((source, target))
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        component(module)


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_upward_import() -> None:
    bad = [edge for edge in violations(import_graph()) if edge not in ALLOWED]
    assert bad == [], "\n".join(f"{a} imports {b}: against the layer order" for a, b in bad)


def test_allow_list_has_no_stale_entry() -> None:
    stale = sorted(set(ALLOWED) - set(violations(import_graph())))
    assert stale == [], f"no longer violated, remove from ALLOWED: {stale}"


def test_the_check_sees_lazy_and_package_imports(tmp_path: Path) -> None:
    source = "def f():\n    from benchsel.scoring.match import extract\n"
    found = set(_imported("benchsel.evalset", ast.parse(source)))
    assert found == {"benchsel.scoring.match", "benchsel.scoring"}
    assert violations({"benchsel.evalset": found}) == [
        ("benchsel.evalset", "benchsel.scoring"),
        ("benchsel.evalset", "benchsel.scoring.match"),
    ]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


@pytest.mark.parametrize("doc", ["docs/architecture.md"])
def test_the_documented_order_is_the_enforced_one(doc: str) -> None:
    text = (PACKAGE.parent / doc).read_text(encoding="utf-8")
    for layer in LAYERS:
        for name in layer:
            short = name.removeprefix("benchsel.") if name != "benchsel" else "benchsel"
            assert f"`{short}" in text, f"{name} is missing from {doc}"
