"""The package's layers stay acyclic, and only `erp_pipelines/sources/` knows which source systems exist.

Layers, bottom up: `core` (specs, decoders, source protocol) → `app_db` → `engine` (plain Python: no Dagster,
no source system, no catalog); `sources.system` → each `sources.<system>` package → `sources.registry`;
the catalog, the Dagster modules and the CLI on top. Read from the import statements of every module
(function-level imports included), so a shortcut through a lazy import is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from erp_pipelines.sources.registry import BUILT_IN

PACKAGE = Path(__file__).resolve().parents[1] / "erp_pipelines"
SYSTEM_PACKAGES = sorted({name.rsplit(".", 1)[0] for name in BUILT_IN})
SYSTEM_NAMES = sorted(name.rsplit(".", 1)[0].rsplit(".", 1)[1] for name in BUILT_IN)

# What each layer may import from the project (prefixes of module names); anything else is a violation.
ALLOWED = {
    "erp_pipelines.core": ("erp_pipelines.core",),
    "erp_pipelines.app_db": ("erp_pipelines.core", "erp_pipelines.app_db"),
    "erp_pipelines.engine": ("erp_pipelines.core", "erp_pipelines.app_db", "erp_pipelines.engine"),
    "erp_pipelines.sources.system": ("erp_pipelines.core",),
    "erp_pipelines.sources.registry": ("erp_pipelines.core", "erp_pipelines.sources.system", *BUILT_IN),
}
THIRD_PARTY_FORBIDDEN = {"erp_pipelines.core": ("dagster",), "erp_pipelines.engine": ("dagster",)}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations/versions" in path.as_posix():
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str:
    for package in SYSTEM_PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return next((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), "top")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


MODULES = _modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_from_the_layers_below_it(module: str) -> None:
    layer = _layer(module)
    project = {name for name in _imports(MODULES[module]) if name.startswith("erp_pipelines")}
    project = {name for name in project if name in MODULES or name.rsplit(".", 1)[0] in MODULES}
    if layer in SYSTEM_PACKAGES:
        allowed: tuple[str, ...] = ("erp_pipelines.core", "erp_pipelines.sources.system", layer)
    elif layer == "top":
        allowed = ("erp_pipelines",)
    else:
        allowed = ALLOWED[layer]
    wrong = sorted(name for name in project if not _within(name, allowed))
    assert wrong == [], f"{module} ({layer}) imports {wrong}"
    forbidden = THIRD_PARTY_FORBIDDEN.get(layer, ())
    third_party = sorted(name for name in _imports(MODULES[module]) if _within(name, forbidden))
    assert third_party == [], f"{module} ({layer}) imports {third_party}"


def test_the_module_graph_has_no_cycle() -> None:
    graph = {module: {name if name in MODULES else name.rsplit(".", 1)[0] for name in _imports(path)} & set(MODULES)
             for module, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module] - {module}):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join([*trail[trail.index(target):], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _code_strings_and_names(path: Path) -> list[str]:
    """Identifiers, attribute names and string constants of a module, without its docstrings and comments."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append(node.value)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith("erp_pipelines.sources")))
def test_outside_sources_no_code_names_a_concrete_system(module: str) -> None:
    named = sorted({text for text in _code_strings_and_names(MODULES[module])
                    if any(system in text.lower() for system in SYSTEM_NAMES)})
    assert named == [], f"{module} names {named}; declare it on the system's SourceSystem instead"
