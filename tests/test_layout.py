"""The package's layout: the plain modules (model, data, runs, what the dashboard computes) import
neither Streamlit nor Plotly, so a notebook gets them without the dashboard's dependencies; and capsviz's
parts import one way, each only from itself and the parts below it (docs/layout.md)."""
import ast
import re
import subprocess
import sys

from conftest import ROOT

PLAIN_MODULES = ["capsviz", "capsviz.store", "capsviz.store.keras", "capsviz.data.datasets", "capsviz.data.drawing",
                 "capsviz.model.registry", "capsviz.model.tasks", "capsviz.model.routing_view", "capsviz.analysis.results",
                 "capsviz.analysis.curves", "capsviz.analysis.digits", "capsviz.analysis.perturbations",
                 "capsviz.analysis.reconstructions", "capsviz.analysis.image_properties", "capsviz.analysis.dimension_meanings",
                 "capsviz.dashboard.page_table"]


def test_plain_modules_import_neither_streamlit_nor_plotly():
    # a fresh interpreter: this test process has imported the dashboard's modules already
    code = (f"import sys, {', '.join(PLAIN_MODULES)}; "
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'streamlit', 'plotly'}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_dashboard_package_is_where_streamlit_and_plotly_come_in():
    code = "import sys, capsviz.dashboard.state, capsviz.dashboard.figures; print('streamlit' in sys.modules, 'plotly' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "True"], result.stderr


# capsviz's parts from the bottom up (docs/layout.md): a module imports from its own part and those below it,
# never from one above. capsviz/__init__.py is the package's face (load_mnist, load_run, CapsNet...), outside them.
LAYERS = [
    ("foundations", ["capsviz/atomic.py", "capsviz/machine.py"]),
    ("data", ["capsviz/data/"]),
    ("model", ["capsviz/model/"]),
    ("training", ["capsviz/training/"]),
    ("store", ["capsviz/store/"]),
    ("analysis", ["capsviz/analysis/"]),
    ("dashboard", ["capsviz/dashboard/"]),
]
FACE = "capsviz/__init__.py"


def module_name(path) -> str:
    """capsviz/model/fast/__init__.py -> capsviz.model.fast; capsviz/data/mnist.py -> capsviz.data.mnist"""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(path) -> int | None:
    relative = path.relative_to(ROOT).as_posix()
    for index, (_, places) in enumerate(LAYERS):
        if any(relative == place or (place.endswith("/") and relative.startswith(place)) for place in places):
            return index
    return None


def capsviz_imports(path, modules: dict[str, object]) -> list[tuple[int, str]]:
    """(line, module) for every capsviz module that `path` imports, at the top or inside a function: `from . import x`
    names module x where x is one, its package otherwise."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "capsviz"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "capsviz":
                continue
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules]
            found += [(node.lineno, name) for name in submodules or [module]]
    return found


def capsviz_modules() -> dict[str, object]:
    return {module_name(path): path for path in sorted((ROOT / "capsviz").rglob("*.py"))}


def test_every_capsviz_module_is_in_one_part():
    unplaced = [str(path.relative_to(ROOT)) for path in capsviz_modules().values()
                if layer_of(path) is None and path.relative_to(ROOT).as_posix() != FACE]
    assert not unplaced, f"modules in no part of LAYERS (place each, and say so in docs/layout.md): {unplaced}"


def test_capsviz_parts_import_one_way():
    """No part imports a part above it (LAYERS), not even inside a function; the face imports only the model,
    the data and the store, whose names it hands on."""
    modules = capsviz_modules()
    wrong = []
    for path in modules.values():
        own = layer_of(path)
        for line, name in capsviz_imports(path, modules):
            target = modules.get(name)
            if target is None:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}, which is no module of capsviz")
                continue
            other = layer_of(target)
            if own is None:  # the face
                allowed = {index for index, (part, _) in enumerate(LAYERS) if part in ("data", "model", "store")}
                if other not in allowed:
                    wrong.append(f"{FACE}:{line} imports {name}")
            elif other is None or other > own:
                above = "the package's face" if other is None else LAYERS[other][0]
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({LAYERS[own][0]}) imports {name} ({above})")
    assert not wrong, "imports that run against capsviz's layers:\n" + "\n".join(wrong)


def test_no_capsviz_modules_import_each_other():
    """No circle of imports inside a part either (lazy imports included): each module stands above all it imports."""
    modules = capsviz_modules()
    graph = {name: {target for _, target in capsviz_imports(path, modules) if target in modules and target != "capsviz"}
             for name, path in modules.items() if name != "capsviz"}
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError("modules that import each other: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for target in sorted(graph.get(name, ())):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_every_test_file_the_code_and_docs_name_exists():
    """A renamed test leaves no reader looking for its old name (README, docs, docstrings, comments)."""
    named = {}
    for folder in ("capsviz", "trainer", "scripts", "pages", "docs", "tests", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".sh", ".toml", ".js") and "__pycache__" not in path.parts:
                for name in re.findall(r"\btest_\w+\.py\b", path.read_text(errors="replace")):
                    named.setdefault(name, str(path.relative_to(ROOT)))
    for path in (ROOT / "README.md", ROOT / "Makefile", ROOT / "pytest.ini", ROOT / "pyproject.toml", ROOT / "dashboard.py"):
        for name in re.findall(r"\btest_\w+\.py\b", path.read_text()):
            named.setdefault(name, path.name)
    missing = {name: where for name, where in named.items() if not (ROOT / "tests" / name).exists()}
    assert not missing, f"test files named but not in tests/ (name: where): {missing}"


def test_every_module_finds_the_checkout_where_it_stands(monkeypatch):
    """Modules that find files beside the code (MNIST under data/, the shipped runs, git, the pages) count folders
    up from their own file: a module moved to another depth must count anew."""
    from capsviz import machine, store
    from capsviz.dashboard import page_table
    from capsviz.data import mnist

    assert mnist.PROJECT_ROOT == machine.PROJECT_ROOT == store.PROJECT_ROOT == page_table.ROOT == ROOT
    monkeypatch.delenv(mnist.DATA_DIR_ENV, raising=False)
    assert mnist.default_data_dir() == ROOT / "data" / "mnist"
