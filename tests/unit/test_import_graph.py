"""The registry and audit modules import one another in one direction only (no cycles).

The graph is read from the source (every ``import``, also those inside functions and under
``TYPE_CHECKING``), over every module of the ``refit`` package, so a cycle that passes through
another package is found too. Importing ``a.b.c`` counts as importing ``a``, ``a.b`` and ``a.b.c``
(Python runs each package's ``__init__``), except a module's own packages, which Python has
initialised before the module runs.
"""

import ast
from pathlib import Path

import refit

SRC = Path(refit.__file__).parent
LAYER = ("refit.registry", "refit.audit", "refit.io.storage")


def _module_name(path: Path) -> str:
    parts = ["refit", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        edges = set()
        for target in targets:
            # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
            parts = target.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        # a module's own packages are initialised before it, whatever it imports: not an edge
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in edges if t in modules and t != name and t not in ancestors}
    return graph


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    """Pop Tarjan's stack down to ``root``: the modules of one strongly connected component."""
    component = []
    while True:
        top = stack.pop()
        on_stack.discard(top)
        component.append(top)
        if top == root:
            return component


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = _pop_component(stack, on_stack, node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in_layer(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in LAYER)


def test_registry_and_audit_modules_form_a_dag():
    graph = _graph()
    assert {"refit.registry.core", "refit.registry.records", "refit.audit.events"} <= set(graph)
    assert graph["refit.registry.core"] >= {"refit.registry.records", "refit.io.storage"}
    tangled = [c for c in _cycles(graph) if any(_in_layer(m) for m in c)]
    assert tangled == []


def test_layers_point_one_way():
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("refit.audit"):
            assert not any(t.startswith("refit.registry") for t in targets), module
        if module == "refit.io.storage":
            assert not any(t.startswith(("refit.registry", "refit.audit")) for t in targets)


def test_a_cycle_is_detected():
    """The checker itself finds a cycle (so an empty answer above means something)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
