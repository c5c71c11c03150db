"""`erp-sync scaffold`: a source table's draft (`core.draft.TableDraft`) written as code a reviewer reads.

Two files per table: a module holding the pandera model and the spec (`SPEC`) in the source system's
`scaffolded` package, which `SourceSystem.tables` discovers, and an Alembic migration creating its project-owned
table, rendered by Alembic's own autogenerate renderer from the table `app_db.tables.build_table` derives from the
spec, so the migration and the catalog cannot disagree. Every guess stands in the code as a `# REVIEW:` comment.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops

from erp_pipelines.app_db.tables import build_table, metadata
from erp_pipelines.core.draft import DraftColumn, DraftError, Import, TableDraft, quoted
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.migrations import HERE as MIGRATIONS

LINE = 120
"""The project's line length (pyproject.toml, ruff): the generated code passes `ruff check`."""
REVIEW = "# REVIEW: "
APPLICATION_REVIEW = (
    "maps onto the application's table {table}, every column onto the column of the same name: declare renamed=, "
    "references= and deletion= (default KeepDeleted: rows deleted at the source stay), then run erp-sync "
    "test-connection, whose drift check compares the table with the mapping"
)
_BASE_IMPORTS: tuple[Import, ...] = (
    ("erp_pipelines.core.spec", "Column"), ("erp_pipelines.core.spec", "TableSpec"),
)
_REVISION = re.compile(r"^revision = ['\"](?P<id>[^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision = ['\"](?P<id>[^'\"]+)['\"]", re.MULTILINE)


@dataclass(frozen=True)
class Scaffolded:
    module: Path
    migration: Path
    spec: TableSpec


def _comment(indent: str, text: str, prefix: str = REVIEW) -> list[str]:
    width = LINE - len(indent) - len(prefix)
    lines = textwrap.wrap(text, width) or [""]
    return [f"{indent}{prefix}{lines[0]}", *(f"{indent}#   {line}" for line in lines[1:])]


def _call(indent: str, head: str, arguments: list[str], tail: str = "") -> list[str]:
    """`head(arg, …)tail` on one line when it fits, else one argument a line."""
    single = f"{indent}{head}({', '.join(arguments)}){tail}"
    if len(single) <= LINE:
        return [single]
    return [f"{indent}{head}(", *(f"{indent}    {argument}," for argument in arguments), f"{indent}){tail}"]


def _tuple(names: tuple[str, ...]) -> str:
    return f"({', '.join(map(quoted, names))}{',' if len(names) == 1 else ''})"


def _keyword(indent: str, name: str, value: str) -> list[str]:
    """`name=value,`; a tuple too long for a line gets one item a line."""
    single = f"{indent}{name}={value},"
    if len(single) <= LINE or not value.startswith("("):
        return [single]
    items = value[1:-1].rstrip(",").split(", ")
    return [f"{indent}{name}=(", *(f"{indent}    {item}," for item in items), f"{indent}),"]


def _keyword_string(indent: str, name: str, text: str) -> list[str]:
    """`name="text",`, or the text split over implicitly concatenated literals when it is too long."""
    single = f"{indent}{name}={quoted(text)},"
    if len(single) <= LINE:
        return [single]
    width = LINE - len(indent) - 8
    chunks = textwrap.wrap(text, width, drop_whitespace=False) or [text]
    return [f"{indent}{name}=(", *(f"{indent}    {quoted(chunk)}" for chunk in chunks), f"{indent}),"]


def _import_lines(imports: set[Import]) -> list[str]:
    """`from module import names` in the order ruff's isort wants (constants, classes, then the rest)."""
    by_module: dict[str, set[str]] = {}
    for module, name in imports:
        by_module.setdefault(module, set()).add(name)
    lines: list[str] = []
    for module in sorted(by_module):
        names = sorted(by_module[module], key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
        single = f"from {module} import {', '.join(names)}"
        lines.extend([single] if len(single) <= LINE else
                     [f"from {module} import (", *(f"    {name}," for name in names), ")"])
    return lines


def _model_lines(draft: TableDraft) -> list[str]:
    lines = [f"class {draft.model_name}(pa_pandas.DataFrameModel):", f'    """{draft.description}"""', ""]
    for column in draft.columns:
        field = column.field
        description = f"description={quoted(column.description)}"
        arguments = field[field.index("(") + 1 : -1]
        call = f"{field[: field.index('(')]}({arguments + ', ' if arguments else ''}{description})"
        line = f"    {column.target}: {column.dtype} = {call}"
        if len(line) > LINE:
            head = f"    {column.target}: {column.dtype} = {field[: field.index('(')]}("
            parts = [part.strip() for part in arguments.split(", ") if part.strip()] if arguments else []
            lines.extend([head, *(f"        {part}," for part in parts),
                          *_keyword_string("        ", "description", column.description), "    )"])
        else:
            lines.append(line)
    return [*lines, "", "    class Config:", "        strict = True"]


def _column_lines(column: DraftColumn) -> list[str]:
    lines = [line for note in column.review for line in _comment("        ", note)]
    source = quoted(column.source[0]) if len(column.source) == 1 else f"({', '.join(map(quoted, column.source))})"
    arguments = [quoted(column.target), source, column.decoder, column.sql_type]
    if not column.nullable:
        arguments.append("nullable=False")
    return [*lines, *_call("        ", "Column.of", arguments, ",")]


def render_module(draft: TableDraft, command: str) -> str:
    """The Python module of one scaffolded table: its model, then `SPEC`."""
    imports = {*_BASE_IMPORTS, *draft.imports, *(item for column in draft.columns for item in column.imports)}
    if draft.application:
        imports.add(("erp_pipelines.core.spec", "ApplicationTable"))
    if draft.change_tracking and draft.change_tracking.startswith("ChangeTracking("):
        imports.add(("erp_pipelines.core.spec", "ChangeTracking"))
    header = [
        f'"""{draft.source_table} ({draft.source_system}), scaffolded from the source\'s catalog.',
        "",
        *textwrap.wrap(f"Written by `{command}`. Every REVIEW comment below marks a guess: check it against the "
                       "data, correct the code if needed and delete the comment before committing (README \"Adding a "
                       'table\"; a test fails while one is left)."""', LINE, break_on_hyphens=False),
        "",
        "from __future__ import annotations",
        "",
        "import pandera.pandas as pa_pandas",
        "import sqlalchemy as sa",
        "",
        *_import_lines(imports),
        "",
        "",
        *_model_lines(draft),
        "",
        "",
    ]
    spec = [
        *(line for note in draft.notes for line in _comment("", note, "# ")),
        *(line for note in draft.review for line in _comment("", note)),
        "SPEC = TableSpec(",
        f"    entity={quoted(draft.entity)},",
        f"    source_system={quoted(draft.source_system)},",
        f"    source_table={quoted(draft.source_table)},",
        f"    target_table={quoted(draft.target_table)},",
        *_keyword("    ", "business_key", _tuple(draft.business_key)),
        "    columns=(",
        *(line for column in draft.columns for line in _column_lines(column)),
        "    ),",
        f"    model={draft.model_name},",
        '    cadence="daily",',
        *_keyword_string("    ", "description", draft.description),
    ]
    if draft.change_tracking:
        spec.append(f"    change_tracking={draft.change_tracking},")
    if draft.ignored_source_columns:
        spec.extend(_keyword("    ", "ignored_source_columns", _tuple(draft.ignored_source_columns)))
    if draft.application:
        spec.extend(_comment("    ", APPLICATION_REVIEW.format(table=draft.application)))
        spec.append(f"    application=ApplicationTable({quoted(draft.application)}),")
    spec.append(")")
    return "\n".join([*header, *spec]) + "\n"


def review_comments(path: Path) -> list[str]:
    """The `# REVIEW:` comments still in a generated module, as `path:line: comment`."""
    return [f"{path}:{number}: {line.strip()}" for number, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip().startswith(REVIEW.strip())]


def load_module(path: Path, name: str) -> ModuleType:
    """Imports a generated module from its file (to check it and to render its migration)."""
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise DraftError(f"cannot import the generated module {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # pandera resolves the model's annotations in its module's namespace
    module_spec.loader.exec_module(module)
    return module


def _revisions(directories: list[Path]) -> tuple[set[str], set[str]]:
    revisions: set[str] = set()
    parents: set[str] = set()
    for directory in directories:
        for path in directory.glob("*.py"):
            text = path.read_text()
            if match := _REVISION.search(text):
                revisions.add(match.group("id"))
            if match := _DOWN_REVISION.search(text):
                parents.add(match.group("id"))
    return revisions, parents


def next_revision(migrations_dir: Path) -> tuple[str, str]:
    """(new revision id, the head it follows), over the project's migrations and `migrations_dir`."""
    revisions, parents = _revisions(list(dict.fromkeys([MIGRATIONS / "versions", migrations_dir])))
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise DraftError(f"the migrations have {len(heads)} heads ({', '.join(heads)}): merge them first")
    numbers = [int(revision) for revision in revisions if revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}", heads[0]


def _body(rendered: str) -> str:
    """Alembic's rendered operations as a function body, without its "### commands auto generated" markers."""
    lines = [line.strip("\n") for line in rendered.splitlines() if line.strip() and "###" not in line]
    return "\n".join(line if line.startswith("    ") else f"    {line}" for line in lines)


def render_migration(spec: TableSpec, revision: str, down_revision: str, today: dt.date) -> str:
    """An Alembic migration creating the spec's project-owned table, as autogenerate would write it."""
    table = build_table(spec, sa.MetaData(naming_convention=metadata.naming_convention))
    upgrade = _body(render_python_code(ops.UpgradeOps(ops=[ops.CreateTableOp.from_table(table)])))
    downgrade = _body(render_python_code(ops.DowngradeOps(ops=[ops.DropTableOp.from_table(table)])))
    return (
        f'"""{spec.target_table}: {spec.source_table} ({spec.source_system}), scaffolded\n\n'
        f"Revision ID: {revision}\nRevises: {down_revision}\nCreate Date: {today.isoformat()}\n"
        '"""\n\nfrom __future__ import annotations\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = '{revision}'\ndown_revision = '{down_revision}'\nbranch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n{upgrade}\n\n\ndef downgrade() -> None:\n{downgrade}\n"
    )


def module_name(draft: TableDraft) -> str:
    """`PURCHLIB.SUPPLIERS` → `purchlib_suppliers`, `Suppliers` → `suppliers`."""
    return re.sub(r"[^0-9a-z]+", "_", draft.source_table.lower()).strip("_")


def write(draft: TableDraft, into: Path, migrations_dir: Path, command: str, catalog: Sequence[TableSpec], *,
          today: dt.date | None = None, application_drift: Callable[[TableSpec], list[str]] | None = None
          ) -> Scaffolded:
    """Writes the table's module into `into` and its migration into `migrations_dir`; refuses to overwrite
    either, to scaffold a table the `catalog` syncs already, or one whose entity or target name is taken.
    With an application table named, `application_drift` says how that table differs from the mapping (the
    engine's drift check), each difference becoming a review note."""
    today = today or dt.date.today()
    for spec in catalog:
        if (spec.source_system, spec.source_table.upper()) == (draft.source_system, draft.source_table.upper()):
            raise DraftError(f"{draft.source_table} is synced already (entity {spec.entity})")
        if draft.entity.casefold() in spec.names or draft.target_table == spec.target_table:
            raise DraftError(f"entity or table {draft.entity!r} exists already (entity {spec.entity})")
    module_path = into / f"{module_name(draft)}.py"
    revision, down_revision = next_revision(migrations_dir)
    migration_path = migrations_dir / f"{today:%Y%m%d}_{revision}_{draft.target_table}.py"
    for path in (module_path, migration_path):
        if path.exists():
            raise DraftError(f"{path} exists already: remove it to scaffold {draft.source_table} again")
    into.mkdir(parents=True, exist_ok=True)
    migrations_dir.mkdir(parents=True, exist_ok=True)
    module_path.write_text(render_module(draft, command))
    spec = load_module(module_path, f"scaffolded_{module_name(draft)}").SPEC
    differences = application_drift(spec) if draft.application and application_drift else []
    if differences:
        draft = replace(draft, review=(*draft.review, *(f"the application table: {item}" for item in differences)))
        module_path.write_text(render_module(draft, command))
        spec = load_module(module_path, f"scaffolded_{module_name(draft)}").SPEC
    migration_path.write_text(render_migration(spec, revision, down_revision, today))
    return Scaffolded(module_path, migration_path, spec)
