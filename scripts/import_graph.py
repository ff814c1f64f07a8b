"""The package drawn as a house: which room (sub-package) imports which, and every arrow that runs up
or sideways between the floors of ../shared/STYLE.md.

  python scripts/import_graph.py [--root vizdeconv]

Reads every module's imports with `ast`, those inside functions too (imports made lazily still count), and
lists any circle between modules, even two files of one room. tests/test_layers.py runs `violations` and
`cycles` and fails on any.
"""

import argparse
import ast
import os
import sys

# Floor of each room, bottom first. A room may import rooms on lower floors only; rooms on one floor do
# not import each other. `configs` holds recipes and is never imported by the library.
FLOORS = {
    "errors": 0, "options": 0, "nn": 0,  # errors; the options-dataclass field helper; the network and its registry
    "methods": 1,  # one class per method, on a Graph
    "hardware": 2, "data": 2,  # the CPU, precision and devices; file formats, sources, the one preprocessing
    "config": 3,  # the config schema (reads the vocabularies of hardware and methods)
    "runs": 4,  # run folders, checkpoints, the lock, opening a run or a model
    "viz": 5,  # pictures, TensorBoard summaries, the plugin and its summary protocol, the callback
    "training": 6, "explore": 6,
    "analyze": 7, "bench": 7,
    "commands": 8,
    "cli": 9,
    "entry": 10,  # __init__ (the public API), __main__ modules, the keras/export/shapes shims
}  # fmt: skip
ENTRY_MODULES = {"__init__", "__main__", "keras", "export", "shapes"}


def room_of(module: str) -> str | None:
    """The room of a dotted module name inside the package (None: outside it)."""
    parts = module.split(".")
    if parts[0] == "configs":
        return "configs"
    if parts[0] != "vizdeconv" or (len(parts) == 2 and parts[1].startswith("__") and parts[1] != "__main__"):
        return None  # outside, or the package's own __version__ (a constant of __init__, which imports nothing)
    if len(parts) == 1 or parts[-1] == "__main__" or (len(parts) == 2 and parts[1] in ENTRY_MODULES):
        return "entry"
    return parts[1]


def imports(root: str) -> list[tuple[str, str, str]]:
    """(importing module, imported module, file:line) for every vizdeconv/configs import under `root`."""
    found = []
    base = os.path.dirname(os.path.abspath(root))
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, base)[:-3].replace(os.sep, ".").removesuffix(".__init__")
            tree = ast.parse(open(path).read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    # `from vizdeconv.data import sources` imports vizdeconv.data.sources
                    targets = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for target in targets:
                    if target.split(".")[0] in ("vizdeconv", "configs"):
                        found.append((module, target, f"{os.path.relpath(path, base)}:{node.lineno}"))
    return found


def violations(root: str) -> list[str]:
    """Every import that runs up a floor, sideways between rooms of one floor, or into configs."""
    bad = []
    for module, target, where in imports(root):
        source, destination = room_of(module), room_of(target)
        if destination is None or source == destination:
            continue
        if destination == "configs":
            bad.append(f"{where}: {module} imports {target}: the library never imports configs/")
        elif FLOORS[destination] >= FLOORS[source]:
            direction = "sideways" if FLOORS[destination] == FLOORS[source] else "up"
            bad.append(f"{where}: {module} ({source}, floor {FLOORS[source]}) imports {target} "
                       f"({destination}, floor {FLOORS[destination]}): {direction}")  # fmt: skip
    return bad


def module_edges(root: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports (`from a.b import name` counts as importing a.b when
    `name` is not a module), the package's `__version__` left out as in `room_of`."""
    found = imports(root)
    base = os.path.dirname(os.path.abspath(root))
    modules = {
        os.path.relpath(os.path.join(folder, name), base)[:-3].replace(os.sep, ".").removesuffix(".__init__")
        for folder, _, files in os.walk(root)
        for name in files
        if name.endswith(".py")
    }
    edges = {module: set() for module in modules}
    for module, target, _ in found:
        if room_of(target) in (None, "configs"):
            continue
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target in modules and target != module:
            edges[module].add(target)
    return edges


def cycles(root: str) -> list[list[str]]:
    """Every set of modules that import each other in a circle (strongly connected, more than one),
    lazy imports included: Tarjan's algorithm over `module_edges`."""
    edges, index, low, stack, on_stack, found = module_edges(root), {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(edges[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def room_edges(root: str) -> dict[tuple[str, str], int]:
    """(room, room it imports) -> number of import statements."""
    edges = {}
    for module, target, _ in imports(root):
        pair = (room_of(module), room_of(target))
        if pair[1] is not None and pair[0] != pair[1]:
            edges[pair] = edges.get(pair, 0) + 1
    return edges


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", "vizdeconv"))
    args = parser.parse_args(argv)
    for (source, target), count in sorted(room_edges(args.root).items(), key=lambda e: (FLOORS.get(e[0][0], 9), e)):
        print(f"{source:9s} -> {target:9s} {count:3d}")
    bad = violations(args.root)
    print(f"{len(bad)} import(s) against the floors" + (":" if bad else ""))
    for line in bad:
        print("  " + line)
    circles = cycles(args.root)
    print(f"{len(circles)} circle(s) between modules" + (":" if circles else ""))
    for circle in circles:
        print("  " + " <-> ".join(circle))
    return 1 if bad or circles else 0


if __name__ == "__main__":
    sys.exit(main())
