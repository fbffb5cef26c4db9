"""The package's import graph: no circles, and dependencies that point one way.

Every ``import`` statement of every module is read, including those inside functions
(which run later but still tie the modules together).  The layers, lowest first:

* foundation: argument checks, per-element arithmetic, window geometry;
* plans: what a call computes, for any backend (``plan``, ``token_plan``);
* backends: ``_cpu`` and ``_cuda``, which know nothing of each other;
* dispatch: which backend runs an array;
* public: the functions users call, the command line and the benchmark.

A module may import from its own layer and the layers below it, never above.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "numbapool"

LAYERS = (
    ("foundation", ("numbapool._checks", "numbapool._arith", "numbapool.geometry",
                    "numbapool._typing")),
    ("plans", ("numbapool.plan", "numbapool.token_plan")),
    ("backends", ("numbapool._cpu", "numbapool._cuda")),
    ("dispatch", ("numbapool.dispatch",)),
    ("public", ("numbapool",)),  # everything else
)


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name, path):
    """The package modules that module ``name`` imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # "from a import b" imports module a.b when there is one, else a name of a
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES
                       else source for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name):
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(name)


def test_the_graph_was_read():
    assert "numbapool.spatial" in GRAPH and "numbapool.dispatch" in GRAPH["numbapool.spatial"]
    assert "numbapool.token_plan" in GRAPH["numbapool._cpu.token_kernels"]


def test_no_import_circles():
    """Depth-first search; every back edge closes a circle, reported with its path."""
    state = {}
    path = []
    circles = []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_point_down(name):
    own = _layer(name)
    upward = sorted(m for m in GRAPH[name] if _layer(m) > own)
    assert not upward, f"{name} ({LAYERS[own][0]}) imports from higher layers: {upward}"


@pytest.mark.parametrize("backend,other", [("numbapool._cpu", "numbapool._cuda"),
                                           ("numbapool._cuda", "numbapool._cpu")])
def test_backends_do_not_import_each_other(backend, other):
    crossing = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if m.startswith(backend)
                      for t in targets if t.startswith(other))
    assert not crossing, crossing
