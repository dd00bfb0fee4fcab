"""Print the shape of the code: each package's modules by import-graph level, the largest files, and every
function longer than 60 lines (issue 15's yardsticks). Reads the sources only; imports nothing of the project.

    python tools/code_shape.py [ROOT]

Level 0 is a module that imports no other project module when it loads; a module's level is one more than the
highest level among the project modules it imports at the top (imports inside functions run later and are
counted apart: a cycle through them is listed, not followed). An import that points up the layers
(app.ui -> app -> training -> models) or Qt outside app/ui is listed as a layering fault."""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = ("app", "models", "training")
LONG_FUNCTION = 60


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_nodes(tree: ast.AST, at_load: bool):
    """Import statements that run when the module loads (at_load) or only when a function runs."""
    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))  # for annotations only
            if isinstance(child, (ast.Import, ast.ImportFrom)) and inside != at_load:
                yield child
            yield from walk(child, inside)
    yield from walk(tree, False)


def project_imports(tree: ast.AST, known: set[str], at_load: bool = True) -> set[str]:
    found = set()
    for node in import_nodes(tree, at_load):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                 if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def levels(graph: dict[str, set[str]]) -> tuple[dict[str, int], list[str]]:
    level: dict[str, int] = {}
    cycles: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> int:
        if name in level:
            return level[name]
        if name in stack:
            cycles.append(" -> ".join(stack[stack.index(name):] + (name,)))
            return 0
        deps = [d for d in graph[name] if d != name and not name.startswith(d + ".")]  # a package's own __init__
        level[name] = 1 + max((visit(d, stack + (name,)) for d in deps), default=-1)
        return level[name]

    for name in sorted(graph):
        visit(name, ())
    return level, sorted(set(cycles))


RANK = {"models": 0, "training": 1, "app": 2, "app.ui": 3}
# the one import that points up by design: `forensight` with no subcommand opens the window (inside main())
ALLOWED_UP = {("app.cli.main", "app.ui")}


def layer(name: str) -> str:
    return "app.ui" if name == "app.ui" or name.startswith("app.ui.") else name.split(".")[0]


def layering_faults(trees: dict[str, ast.AST], graph: dict[str, set[str]]) -> list[str]:
    faults = [f"{name} imports {dep}" for name, deps in sorted(graph.items()) for dep in sorted(deps)
              if RANK[layer(dep)] > RANK[layer(name)] and (name, dep) not in ALLOWED_UP]
    for name, tree in sorted(trees.items()):
        qt = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if layer(name) != "app.ui" and any(m.split(".")[0] in {"PySide6", "superqt", "qtpy"} for m in qt):
            faults.append(f"{name} imports Qt")
    return faults


def long_functions(tree: ast.AST, where: str) -> list[tuple[int, str]]:
    return [(node.end_lineno - node.lineno + 1, f"{where}:{node.lineno} {node.name}")
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONG_FUNCTION]


def main(root: Path) -> int:
    files = {module_name(root, p): p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))}
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in files.items()}
    graph = {name: project_imports(tree, set(files)) - {name} for name, tree in trees.items()}
    lazy = {name: graph[name] | project_imports(tree, set(files), at_load=False) - {name}
            for name, tree in trees.items()}
    level, cycles = levels(graph)
    _, lazy_cycles = levels(lazy)
    lazy_cycles = [c for c in lazy_cycles if c not in cycles]
    print("Import-graph levels per package (level: modules)")
    by_package: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, lvl in level.items():
        parts = name.split(".")
        package = ".".join(parts[:2]) if parts[0] == "app" and len(parts) > 2 else parts[0]
        by_package[package][lvl].append(name)
    for package in sorted(by_package):
        spread = ", ".join(f"{lvl}: {len(mods)}" for lvl, mods in sorted(by_package[package].items()))
        print(f"  {package:<16} {spread}")
    print(f"  deepest level: {max(level.values())}; cycles at load: {len(cycles)}; cycles through imports inside "
          f"functions: {len(lazy_cycles)}")
    for cycle in cycles:
        print(f"    cycle at load: {cycle}")
    for cycle in lazy_cycles:
        print(f"    cycle inside functions: {cycle}")
    faults = layering_faults(trees, lazy)
    print(f"Layering faults: {len(faults)}")
    for fault in faults:
        print(f"  {fault}")
    sizes = sorted(((len(p.read_text(encoding='utf-8').splitlines()), str(p.relative_to(root)))
                    for p in files.values()), reverse=True)
    print(f"Largest files (lines): {', '.join(f'{name} {n}' for n, name in sizes[:12])}")
    print(f"Modules: {len(files)}, lines: {sum(n for n, _ in sizes)}")
    long = sorted((item for name, tree in trees.items()
                   for item in long_functions(tree, str(files[name].relative_to(root)))), reverse=True)
    print(f"Functions over {LONG_FUNCTION} lines: {len(long)}")
    for n, where in long:
        print(f"  {n:>4}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent))
