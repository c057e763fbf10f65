"""The package's layers import only downward (README, "Layers"), without cycles, and
``import s2s_jax`` stays light."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "s2s_jax")

# Lowest first. A module may import the modules of lower layers and, within its own unit, others
# of that unit (acyclically).
LAYERS = [
    ("errors", "hugepages", "compilation_cache", "progress"),
    ("config", "fileio"),
    ("presets", "precision", "vocab", "summary", "significance"),
    ("data",),
    ("models",),
    ("training",),
    ("checkpoint",),
    ("decoding",),
    ("parallel",),
    ("evaluation", "translator"),
    ("plots",),
    ("loop_parts",),
    ("seeds",),
    ("loop",),
    ("cli",),
    ("programs",),
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
# Function-level imports allowed: a module built on an optional dependency that takes seconds to import,
# the commands that alone need the training loop or the plots (the others start seconds sooner), and
# the programs' launcher, which imports the command line and JAX only once it has re-executed itself.
LAZY = {("s2s_jax.data.sources", "s2s_jax.data.tfds_text"),
        ("s2s_jax.cli", "s2s_jax.loop"), ("s2s_jax.cli", "s2s_jax.loop.run"),
        ("s2s_jax.cli", "s2s_jax.plots"), ("s2s_jax.cli", "s2s_jax.plots.plot_run"),
        ("s2s_jax.programs", "s2s_jax.cli"),
        ("s2s_jax.programs", "s2s_jax.cli.train_main"), ("s2s_jax.programs", "s2s_jax.cli.eval_main"),
        ("s2s_jax.programs", "s2s_jax.cli.translate_main"), ("s2s_jax.programs", "s2s_jax.compilation_cache"),
        ("s2s_jax.programs", "s2s_jax.compilation_cache.use_compilation_cache")}


def modules() -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


def imports(path: str) -> tuple[set[str], set[str]]:
    """The s2s_jax modules ``path`` imports at module level, and inside functions (not under TYPE_CHECKING)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    top, nested = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            for name in names:
                if name.split(".")[0] == "s2s_jax":
                    (nested if in_function else top).add(name)
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(tree, False)
    return top, nested


def unit(module: str) -> str:
    return module.split(".")[1]


def test_every_unit_has_a_layer():
    assert {unit(m) for m in modules() if m != "s2s_jax"} <= set(LAYER)


def test_layers_import_only_downward_and_modules_form_no_cycle():
    mods = modules()
    graph = {}
    for module, path in mods.items():
        top, nested = imports(path)
        targets = {t for t in top if t in mods and t != "s2s_jax"}
        graph[module] = targets
        assert {(module, t) for t in nested if t in mods} <= LAZY, f"{module} imports inside a function"
        if module == "s2s_jax":
            continue
        for t in targets:
            assert unit(t) == unit(module) or LAYER[unit(t)] < LAYER[unit(module)], f"{module} imports {t} upward"
    done, active = set(), []

    def visit(m: str) -> None:
        assert m not in active, f"import cycle: {' -> '.join([*active[active.index(m):], m])}"
        if m in done:
            return
        active.append(m)
        for t in graph[m]:
            visit(t)
        active.pop()
        done.add(m)

    for m in graph:
        visit(m)


def run_python(code: str) -> str:
    """The standard output of ``code`` in a new interpreter (on the CPU)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout


def loaded_by(statement: str, modules: list[str]) -> list[str]:
    """Those of ``modules`` that a new interpreter has loaded after ``statement``."""
    code = f"import json, sys; {statement}; print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    return json.loads(run_python(code))


def test_the_decoding_commands_start_without_the_training_loop_and_its_writers():
    heavy = ["s2s_jax.loop", "s2s_jax.summary", "s2s_jax.plots", "tensorboardX", "matplotlib", "torch"]
    assert loaded_by("import s2s_jax.cli", heavy) == []


def test_importing_the_package_loads_no_heavy_library():
    heavy = ["orbax.checkpoint", "sacrebleu", "matplotlib", "tensorboardX", "grain", "tensorflow_datasets"]
    assert loaded_by("import s2s_jax", heavy) == []
    code = "import s2s_jax as s2s; print(s2s.restore.__module__, s2s.Translator.__module__, s2s.load_data.__module__)"
    assert run_python(code).split() == ["s2s_jax.checkpoint", "s2s_jax.translator", "s2s_jax.data.pipeline"]
