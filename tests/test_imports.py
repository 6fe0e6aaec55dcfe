"""rowstat's import graph (read with ast from the source files, so imports inside functions
count too): no circles, and no import from a lower layer to a higher one.

The layers, lowest first: configuration (ArchConfig, LayerSpec, errors, version) -> the command
set -> hardware -> schedule, mapping and compiler (gen) -> models and simulation (sim) -> FPGA
-> networks (net) -> command line (cli). A module may import its own layer and those below.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layer of each module: the first matching prefix wins.
LAYERS = [
    ("rowstat.gen.config", 0), ("rowstat.gen.layer", 0), ("rowstat.gen.errors", 0),
    ("rowstat.version", 0),
    ("rowstat.gen.program", 1),
    ("rowstat.hw", 2),
    ("rowstat.gen", 3),
    ("rowstat.sim", 4),
    ("rowstat.fpga", 5),
    ("rowstat.net", 6),
    ("rowstat.cli", 7),
    # The package itself: run_layer, a shortcut to rowstat.sim.run for library users.
    ("rowstat", 4),
]

#: Edges the tests below let pass (none: keep it so).
KNOWN_EDGES = set()


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "benchmarks", "build", "out") or rel.parts[0].startswith("."):
            continue
        parts = ("rowstat",) + rel.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name, path, mods):
    """The rowstat modules ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in mods:
                    out.add(full)
                elif target in mods:
                    out.add(target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
    out.discard(name)
    return out


def _graph():
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def layer_of(name):
    for prefix, layer in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def find_cycles(graph):
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_relative_and_function_level_imports():
    graph = _graph()
    assert "rowstat.gen.program" in graph["rowstat.hw.controller"]     # from ..gen.program
    assert "rowstat.sim.run" in graph["rowstat"]                       # inside run_layer
    assert "rowstat.fpga.board" in graph["rowstat.cli.board"]          # inside add_parser


def test_cycle_finder():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph = _graph()
    for a, b in KNOWN_EDGES:
        graph[a].discard(b)
    assert find_cycles(graph) == []


def test_no_upward_imports():
    graph = _graph()
    upward = sorted((a, b) for a, deps in graph.items() for b in deps
                    if layer_of(b) > layer_of(a) and (a, b) not in KNOWN_EDGES)
    assert upward == []


def test_known_edges_still_exist():
    """An edge removed from the code must leave KNOWN_EDGES too."""
    graph = _graph()
    assert [e for e in sorted(KNOWN_EDGES) if e[1] not in graph.get(e[0], ())] == []


@pytest.mark.parametrize("package", ["rowstat.cli"])
def test_nothing_imports_the_command_line(package):
    graph = _graph()
    assert sorted(a for a, deps in graph.items() for b in deps
                  if layer_of(b) == layer_of(package) and layer_of(a) != layer_of(package)) == []
