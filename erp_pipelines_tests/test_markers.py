"""Every test module that needs a service is marked `integration`, and only those, so that
`pytest -m "not integration"` runs every pure test on a machine with no PostgreSQL, ODBC driver or emulator.

Read statically (the modules are parsed, not imported or run): a module needs a service when one of its
tests or fixtures depends, directly or through other fixtures, on a fixture that reaches one, or when it
calls a helper that does.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# The fixtures that reach a service: the sandbox PostgreSQL (application database, AS400 stand-in, 4D
# store), the ODBC stand-in through the wire tap, the Dagster UI stack and Chromium.
SERVICE_FIXTURES = {"app_url", "as400_owner_url", "as400", "legacy4d_store_url", "pg_proxy", "password_trap",
                    "dagster_ui", "browser"}
# Helpers and sandbox classes that reach a service when called.
SERVICE_CALLS = {"operator_env", "as400_test_resource", "empty_app_database", "start_emulator", "EmulatorServer",
                 "LegacyStore", "seed_as400", "seed_store", "PgProxy"}
FIXTURE_PLUGINS = ("conftest.py", "fixtures_legacy_4d.py")


def _is_fixture(function: ast.FunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)]


def _arguments(function: ast.FunctionDef) -> set[str]:
    names = {arg.arg for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]}
    for decorator in function.decorator_list:  # @pytest.mark.usefixtures("name")
        if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) \
                and decorator.func.attr == "usefixtures":
            names |= {arg.value for arg in decorator.args if isinstance(arg, ast.Constant)}
    return names


def _fixtures(tree: ast.Module) -> dict[str, set[str]]:
    return {function.name: _arguments(function) for function in _functions(tree) if _is_fixture(function)}


def _shared_fixtures() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in FIXTURE_PLUGINS:
        for path in TESTS.rglob(name):
            graph.update(_fixtures(ast.parse(path.read_text())))
    return graph


def _reaches_a_service(roots: set[str], graph: dict[str, set[str]]) -> bool:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in SERVICE_FIXTURES:
            return True
        if name not in seen:
            seen.add(name)
            pending.extend(graph.get(name, ()))
    return False


def _calls_a_service(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SERVICE_CALLS
               for node in ast.walk(tree))


def _is_integration_mark(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "integration"


def _module_marked(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return any(_is_integration_mark(value) for value in values)
    return False


def _tests_marked_one_by_one(tree: ast.Module) -> list[str]:
    return [function.name for function in _functions(tree)
            if any(_is_integration_mark(d.func if isinstance(d, ast.Call) else d) for d in function.decorator_list)]


def _modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(TESTS)): ast.parse(path.read_text()) for path in sorted(TESTS.rglob("test_*.py"))}


def test_the_service_fixtures_exist() -> None:
    """A renamed fixture would make the check below pass vacuously."""
    assert set(_shared_fixtures()) >= SERVICE_FIXTURES


def test_modules_needing_a_service_are_marked_integration_and_only_they() -> None:
    shared = _shared_fixtures()
    needs: dict[str, bool] = {}
    marked: dict[str, bool] = {}
    for name, tree in _modules().items():
        graph = shared | _fixtures(tree)
        roots = set().union(*(_arguments(function) for function in _functions(tree)))
        needs[name] = _reaches_a_service(roots, graph) or _calls_a_service(tree)
        marked[name] = _module_marked(tree)
    unmarked = sorted(name for name in needs if needs[name] and not marked[name])
    needless = sorted(name for name in needs if marked[name] and not needs[name])
    assert unmarked == [], f"these modules use a service: add `pytestmark = pytest.mark.integration`: {unmarked}"
    assert needless == [], f"these modules use no service: drop their integration mark: {needless}"
    assert any(needs.values()) and not all(needs.values())


def test_no_module_mixes_pure_and_integration_tests() -> None:
    """A test marked on its own hides the pure tests of its module from neither run; split the module."""
    mixed = {name: tests for name, tree in _modules().items() if (tests := _tests_marked_one_by_one(tree))}
    assert mixed == {}
