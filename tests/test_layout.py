"""The package's layout: no import circles (function-level imports included), no module taking
another module's private name, and plotting kept a leaf."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "toymodel"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(mod: str, node: ast.ImportFrom) -> str:
    """Absolute module of a ``from X import ...`` inside ``mod``."""
    if node.level == 0:
        return node.module or ""
    is_pkg = MODULES[mod].name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mod: str):
    """(imported toymodel module, name taken from it or None, line) for every import in ``mod``,
    including those inside functions."""
    tree = ast.parse(MODULES[mod].read_text())
    out = []
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("toymodel"):
                    out.append((a.name, None, node.lineno))
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, node)
            if not target.startswith("toymodel"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in MODULES:  # "from . import regimes" imports a module
                    out.append((sub, None, node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    out.append((target, a.name, node.lineno))
    for node in ast.walk(tree):  # module._private attribute access
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                out.append((aliases[node.value.id], node.attr, node.lineno))
    return out


def _graph():
    g = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in _imports(m):
            if target in MODULES and target != m:
                g[m].add(target)
    return g


def test_the_module_graph_has_no_circle():
    g = _graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_takes_another_modules_private_name():
    bad = []
    for m in MODULES:
        for target, name, line in _imports(m):
            if name and name.startswith("_") and not name.startswith("__") and target != m:
                # a package may use the private names of its own submodules' parent? no: none allowed
                bad.append(f"{m}:{line} takes {target}.{name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("leaf, forbidden", [
    ("toymodel.plots", {"toymodel.simulate", "toymodel.sweep", "toymodel.dynamics", "toymodel._kernels",
                        "toymodel.phase_diagram", "toymodel.figures", "toymodel.bridge"}),
    ("toymodel.theory", {"toymodel.simulate", "toymodel.plots", "toymodel.derivation_checks",
                         "toymodel._records", "toymodel._kernels"}),
    # the PyTorch library stands on the classification alone: no jobs, plots, kernels or sweeps
    ("toymodel.nets", {"toymodel.bridge", "toymodel.figures", "toymodel.plots", "toymodel.phase_diagram",
                       "toymodel.sweep", "toymodel._kernels", "toymodel.simulate", "toymodel.dynamics"}),
])
def test_leaves_do_not_reach_up(leaf, forbidden):
    reached, todo = set(), [leaf]
    g = _graph()
    while todo:
        m = todo.pop()
        for t in g[m]:
            if t not in reached:
                reached.add(t)
                todo.append(t)
    assert not (reached & forbidden), sorted(reached & forbidden)



def test_importing_the_simulator_does_not_import_sympy():
    # theory is imported inside the functions that need it (regimes), so a simulation starts without SymPy
    import subprocess
    import sys

    code = "import sys, toymodel, toymodel.simulate, toymodel.sweep; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_only_the_network_library_imports_torch_at_module_level():
    # torch is an optional extra: outside toymodel.nets it may be imported only inside functions
    users = []
    for m, p in MODULES.items():
        tree = ast.parse(p.read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "torch" for n in names):
                users.append(m)
    assert users and all(m.startswith("toymodel.nets") for m in users), users


def _imports_matplotlib(path: Path) -> bool:
    """Whether a module imports matplotlib anywhere (module level or inside a function)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "matplotlib" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "matplotlib":
            return True
    return False


def test_only_plots_imports_matplotlib():
    # the plots package is the only one: its modules may, no module outside it may
    users = sorted(m for m, p in MODULES.items() if _imports_matplotlib(p))
    outside = [m for m in users if not (m == "toymodel.plots" or m.startswith("toymodel.plots."))]
    assert users and not outside, outside


def test_the_checker_sees_a_circle_and_a_private_import(tmp_path, monkeypatch):
    # the test must be able to fail: a synthetic circle and private import are found
    g = {"a": {"b"}, "b": {"a"}}
    state, found = {}, []

    def visit(m, stack):
        state[m] = 1
        for t in g[m]:
            if state.get(t) == 1:
                found.append(t)
            elif t not in state:
                visit(t, stack + [m])
        state[m] = 2

    visit("a", [])
    assert found == ["a"]
    tree_mod = "toymodel.figures"
    names = [n for _, n, _ in _imports(tree_mod) if n]
    assert all(not n.startswith("_") for n in names)


def _imports_by_scope(tree):
    """{scope node: [import nodes whose nearest enclosing function, class or module is that scope]}."""
    out = {}

    def visit(node, scope):
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                visit(ch, ch)
                continue
            if isinstance(ch, (ast.Import, ast.ImportFrom)):
                out.setdefault(scope, []).append(ch)
            visit(ch, scope)

    visit(tree, tree)
    return out


def test_no_scope_imports_the_same_name_twice():
    # a name imported twice in one function (once in a try, once after it) hid a dead line in _distributed
    dup = []
    for m, p in MODULES.items():
        for scope, imps in _imports_by_scope(ast.parse(p.read_text())).items():
            seen = set()
            for node in imps:
                for a in node.names:
                    key = (getattr(node, "module", None), a.name, a.asname)
                    if key in seen:
                        dup.append(f"{m}:{node.lineno} {getattr(scope, 'name', '<module>')} imports {a.name} again")
                    seen.add(key)
    assert not dup, dup
    # the check can fail
    probe = ast.parse("def f():\n    try:\n        import x\n    except ImportError:\n        pass\n    import x\n")
    assert [len(v) for v in _imports_by_scope(probe).values()] == [2]


def _module_level_imports(path: Path) -> set:
    """Top-level package names imported anywhere in a module (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_explorer_imports_bokeh_or_panel():
    # the explorer's extra (toymodel[explore]) is imported by toymodel.explore's UI modules alone, and not
    # by its compute layer, which the rest of the package and the tests use without the extra
    users = sorted(m for m, p in MODULES.items() if _module_level_imports(p) & {"bokeh", "panel", "holoviews"})
    assert users and all(m.startswith("toymodel.explore.") for m in users), users
    assert "toymodel.explore" not in users and "toymodel.explore.compute" not in users, users


def test_nothing_below_the_explorer_imports_it():
    # the explorer is a job: nothing in the package reaches up to it
    g = _graph()
    users = sorted(m for m, targets in g.items() if not m.startswith("toymodel.explore")
                   and any(t.startswith("toymodel.explore") for t in targets))
    assert not users, users


def test_importing_the_package_does_not_load_the_explorer_extra():
    import subprocess
    import sys

    code = ("import sys, toymodel, toymodel.simulate, toymodel.theory, toymodel.regimes, toymodel.model, "
            "toymodel.sweep, toymodel.dynamics, toymodel.phase_diagram, toymodel.explore, toymodel.explore.compute; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bokeh', 'panel', 'holoviews', 'selenium')); "
            "print(','.join(bad))")
    env = {**__import__("os").environ, "PYTHONPATH": str(PKG.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing the package loaded {out.stdout.strip()}"
