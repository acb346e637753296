"""The package's layers import only downward, and no module imports itself round a cycle.

The order, lowest first (docs/architecture.md): a module may import from its own layer and from
layers below it; the two pairs of siblings (data and model; analysis and bench) do not import
each other. Imports inside functions count too: a lazy import against the order is still a
dependency against it.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "neuroenc"

# (rank, layer, module prefixes); siblings share a rank
LAYERS = [
    (0, "atomic", ["neuroenc.atomic", "neuroenc.allocator"]),
    (1, "config", ["neuroenc.config"]),
    (2, "metrics", ["neuroenc.metrics"]),
    (3, "data", ["neuroenc.data"]),
    (3, "model", ["neuroenc.model"]),
    (4, "training", ["neuroenc.training"]),
    (5, "trained model", ["neuroenc.trained"]),
    (6, "analysis", ["neuroenc.analysis"]),
    (6, "bench", ["neuroenc.bench"]),
    (7, "command lines", ["neuroenc.__main__", "neuroenc.evaluate", "neuroenc.inspect", "neuroenc.predict",
                          "neuroenc.report", "neuroenc.insilico", "neuroenc"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> tuple[int, str]:
    best = None
    for rank, name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rank, name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1], best[2]


def imports_of(module: str) -> set[str]:
    """Every neuroenc module ``module`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "neuroenc"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "neuroenc":
            for a in node.names:  # `from neuroenc import atomic` imports the module neuroenc.atomic
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in MODULES else node.module)
    return {m for m in out if m != module}


def test_every_module_is_in_a_layer():
    for m in MODULES:
        layer_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    rank, name = layer_of(module)
    wrong = []
    for target in sorted(imports_of(module)):
        t_rank, t_name = layer_of(target)
        if t_rank > rank or (t_rank == rank and t_name != name):
            wrong.append(f"{target} ({t_name})")
    assert not wrong, f"{module} ({name}) imports from layers above it or beside it: {wrong}"


def test_no_module_imports_itself_round_a_cycle():
    graph = {m: imports_of(m) & set(MODULES) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_order_holds_for_a_module_that_breaks_it(tmp_path, monkeypatch):
    """The checks above see an upward import inside a function."""
    fake = tmp_path / "neuroenc" / "data" / "lazy.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from neuroenc.training.build import build_module\n")
    monkeypatch.setitem(MODULES, "neuroenc.data.lazy", fake)
    with pytest.raises(AssertionError, match=r"neuroenc.data.lazy \(data\) imports .*neuroenc.training.build"):
        test_imports_go_down_the_layers("neuroenc.data.lazy")
