"""`erp-sync scaffold` end to end: a NEW file in the AS400 stand-in and a NEW dataclass in the 4D emulator are
scaffolded by the CLI (a real process, against the real stand-ins) into a temporary package and migrations
directory, migrated with Alembic and synced by the engine, with no hand edit of the generated code."""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command

from erp_pipelines.app_db import tables as app_tables
from erp_pipelines.catalog import get_spec
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import SyncReport, run_sync
from erp_pipelines.migrations import HERE as MIGRATIONS
from erp_pipelines.migrations import alembic_config
from erp_pipelines.scaffold import load_module, write
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.catalog.test_specs_and_models import (
    test_key_and_unique_columns_are_required as key_is_required,
)
from erp_pipelines_tests.catalog.test_specs_and_models import test_model_columns_follow_the_spec as model_follows_spec
from erp_pipelines_tests.commands.test_cli import erp_sync
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.as400.schema import create_schema
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

LIBRARY, FILE = "SCAFLIB", "SUPPLIERS"
ROWS = 25
FILLER_WIDTHS = (1, 2, 3, 5, 8, 12, 20, 30)


def _file_columns() -> list[tuple[str, str, str | None]]:
    """60 fields as an RPG shop's supplier master has them: (name, stand-in type, column comment)."""
    columns: list[tuple[str, str, str | None]] = [
        ("SUPNO", "char(10) not null", 'TEXT="Supplier number"'),
        ("SUPNAM", "char(40) not null default ''", 'TEXT="Supplier name" HEADING="Supplier  Name"'),
        ("CRTDAT", "decimal(7, 0) not null default 0", 'TEXT="Created on"'),
        ("ORDTIM", "decimal(6, 0) not null default 0", None),
        ("BALANCE", "decimal(11, 2) not null default 0", None),
        ("CRDLMT", "numeric(9, 2) not null default 0", 'ZONED TEXT="Credit limit"'),
        ("SUPNOTE", "bytea", None),
        ("SEQNUM", "decimal(7, 0) not null default 0", None),
        ("PAYMENT_TERMS_CODE", "char(4) not null default ''", "SYSTEM_NAME=PAYTRM"),
        ("LINES", "integer", None),
        ("CHGDAT", "decimal(7, 0) not null default 0", None),
        ("CHGTIM", "decimal(6, 0) not null default 0", None),
    ]
    for number in range(60 - len(columns)):
        if number % 3 == 0:
            columns.append((f"CH{number:02d}", f"char({FILLER_WIDTHS[number % 8]}) not null default ''", None))
        elif number % 3 == 1:
            columns.append((f"AM{number:02d}", "decimal(9, 3) not null default 0", None))
        else:
            columns.append((f"QT{number:02d}", "numeric(5, 0) not null default 0", "ZONED"))
    return columns


def _row(i: int, columns: list[tuple[str, str, str | None]]) -> dict[str, object]:
    values: dict[str, object] = {
        "SUPNO": f"S{i:04d}", "SUPNAM": f"Supplier {i}", "CRTDAT": 0 if i % 5 == 0 else 1240100 + i,
        "ORDTIM": 80000 + i, "BALANCE": decimal.Decimal(i) * decimal.Decimal("10.25"),
        "CRDLMT": decimal.Decimal("1000.50"), "SUPNOTE": f"Note {i}".encode("cp037"), "SEQNUM": i,
        "PAYMENT_TERMS_CODE": "N30", "LINES": i * 2, "CHGDAT": 1251201, "CHGTIM": 101500 + i,
    }
    for name, kind, _ in columns:
        if name not in values:
            values[name] = ("X" * int(kind.split("(")[1].split(")")[0]))[: 1 + i % 3] if name.startswith("CH") else i
    return values


@pytest.fixture
def new_file(as400_owner_url: str, as400_source_sql: Callable[[str], None]) -> Iterator[list]:
    """SCAFLIB.SUPPLIERS: a DDS-style keyed physical file (a unique key, no SQL constraint) of 60 fields."""
    create_schema(as400_owner_url)
    columns = _file_columns()
    as400_source_sql(f'drop schema if exists "{LIBRARY}" cascade; create schema "{LIBRARY}"')
    fields = ", ".join(f'"{name}" {kind}' for name, kind, _ in columns)
    as400_source_sql(f'create table "{LIBRARY}"."{FILE}" ({fields})')
    for name, _, comment in columns:
        if comment:
            as400_source_sql(f"""comment on column "{LIBRARY}"."{FILE}"."{name}" is '{comment}'""")
    as400_source_sql(f'create unique index "{FILE}_K" on "{LIBRARY}"."{FILE}" ("SUPNO")')
    as400_source_sql(f"""comment on index "{LIBRARY}"."{FILE}_K" is 'DDS_KEYED'""")
    rows = [_row(i, columns) for i in range(1, ROWS + 1)]
    with psycopg2.connect(as400_owner_url) as connection, connection.cursor() as cursor:
        names = [name for name, _, _ in columns]
        quoted_names = ", ".join(f'"{name}"' for name in names)
        cursor.executemany(
            f'insert into "{LIBRARY}"."{FILE}" ({quoted_names}) '
            f'values ({", ".join(["%s"] * len(names))})',
            [tuple(psycopg2.Binary(row[n]) if isinstance(row[n], bytes) else row[n] for n in names) for row in rows])
    connection.close()
    as400_source_sql(f'grant usage on schema "{LIBRARY}" to as400_reader; '
                     f'grant select on all tables in schema "{LIBRARY}" to as400_reader')
    yield rows
    as400_source_sql(f'drop schema if exists "{LIBRARY}" cascade')


@pytest.fixture
def scaffold_dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "scaffolded", tmp_path / "versions"


@pytest.fixture
def migrate_scaffolded(app_url: str, scaffold_dirs: tuple[Path, Path]) -> Iterator[Callable[[TableSpec], None]]:
    """Applies the generated migration with Alembic (the project's revisions plus the generated one); afterwards
    the table is dropped by the generated downgrade and forgotten by the project's metadata again."""
    config = alembic_config(app_url)
    config.set_main_option("version_locations", f"{MIGRATIONS / 'versions'} {scaffold_dirs[1]}")
    migrated: list[TableSpec] = []

    def _migrate(spec: TableSpec) -> None:
        command.upgrade(config, "head")
        migrated.append(spec)

    yield _migrate
    for spec in migrated:
        command.downgrade(config, "-1")
        # the engine registered the table in the process-wide metadata (app_db.tables.table_of); later tests
        # empty every table there, and this one is gone
        app_tables.metadata.remove(app_tables.metadata.tables[spec.target_table])
        app_tables._TARGET_TABLES.pop(spec.target_table)


def _scaffold(env: dict[str, str], dirs: tuple[Path, Path], source: str, table: str, *options: str
              ) -> tuple[TableSpec, str]:
    result = erp_sync(env, "scaffold", "--source", source, table, "--into", str(dirs[0]),
                      "--migrations-dir", str(dirs[1]), *options)
    assert result.returncode == 0, result.stdout + result.stderr
    (module,) = dirs[0].glob("*.py")
    (migration,) = dirs[1].glob("*.py")
    assert f"wrote {module}" in result.stdout and f"wrote {migration}" in result.stdout
    assert (f"add {table} to AS400_ALLOWED_TABLES, erp-sync migrate" in result.stdout) == (source == "as400")
    lint = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"),
                           str(module)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + module.read_text()
    spec = load_module(module, f"generated_{module.stem}").SPEC
    model_follows_spec(spec)  # what the catalog's test asks of every committed spec
    key_is_required(spec)
    return spec, module.read_text()


def _counts_add_up(report: SyncReport) -> None:
    assert report.processed == report.created + report.updated + report.unchanged + report.rejected


def test_scaffold_a_new_as400_file_then_migrate_and_sync_it(
    new_file: list[dict], tmp_path: Path, app_url: str, app_db: sa.Engine, legacy4d_server: EmulatorServer,
    scaffold_dirs: tuple[Path, Path], migrate_scaffolded: Callable[[TableSpec], None], as400: As400Resource,
) -> None:
    env = operator_env(tmp_path, app_url, legacy4d_server.port)
    spec, code = _scaffold(env, scaffold_dirs, "as400", f"{LIBRARY}.{FILE}")

    assert spec.source_table == "SCAFLIB.SUPPLIERS" and spec.business_key == ("supplier_number",)
    assert spec.change_tracking is not None and spec.change_tracking.columns == ("CHGDAT", "CHGTIM")
    assert len(spec.source_columns) == 60 and not spec.ignored_source_columns
    assert "# REVIEW: guessed CYYMMDD date from DECIMAL(7,0) and name *DAT*" in code
    assert "# REVIEW: guessed HHMMSS time from DECIMAL(6,0) and name *TIM*" in code
    assert "# REVIEW: guessed change stamp pair CHGDAT + CHGTIM" in code
    assert "# REVIEW: no index is led by CHGDAT, CHGTIM: the change sensor needs one" in code
    assert "# REVIEW: SUPNOTE is CCSID 65535 (FOR BIT DATA): guessed EBCDIC text in CCSID 37" in code
    assert "# REVIEW: DECIMAL(7,0) is how CYYMMDD dates are kept, but the name does not say date" in code
    assert "# Business key: the DDS keyed physical file's unique key SCAFLIB.SUPPLIERS_K" in code
    assert code.count("# REVIEW:") >= 8  # the guesses above, the names from COLUMN_TEXT and the entity name

    migrate_scaffolded(spec)
    source = as400.replaced(allowed_tables=spec.source_table, change_tracking="stamps").source()
    report = run_sync(spec, source, app_db)
    assert (report.processed, report.created, report.rejected) == (ROWS, ROWS, 0), report
    _counts_add_up(report)
    with app_db.connect() as connection:
        loaded = {row.supplier_number: row for row in connection.execute(sa.text(f"select * from {spec.target_table}"))}
    assert set(loaded) == {row["SUPNO"] for row in new_file}
    for raw in new_file:
        row = loaded[raw["SUPNO"]]
        i = raw["LINES"] // 2
        assert row.supplier_name == f"Supplier {i}"
        assert row.created_on == (None if raw["CRTDAT"] == 0 else dt.date(2024, 1, i))
        assert row.ordtim == dt.time(8, 0, i)
        assert row.balance == raw["BALANCE"] and row.credit_limit == decimal.Decimal("1000.50")
        assert row.supnote == f"Note {i}"
        assert row.payment_terms_code == "N30" and row.seqnum == i and row.lines == i * 2
        assert row.source_changed_at == dt.datetime(2025, 12, 1, 10, 15, i)
        assert row.ch00 == raw["CH00"] and row.am01 == decimal.Decimal(i) and row.qt02 == i

    again = run_sync(spec, source, app_db, mode="full")
    assert (again.processed, again.unchanged) == (ROWS, ROWS)
    _counts_add_up(again)


def _supplier(i: int) -> dict[str, object]:
    return {"SupplierID": i, "SupplierName": f"Supplier {i}", "Email": None if i % 4 == 0 else f"s{i}@example.com",
            "CreditLimit": 1000 + i + 0.25, "IsActive": i % 2 == 0, "FirstOrderDate": dt.date(2024, 2, i),
            "CallBackTime": (9 * 3600 + i) * 1000, "Rating": i % 5, "TurnoverCents": i * 10_000_000_000,
            "PreferredProductID": i}


def test_scaffold_a_new_4d_dataclass_then_migrate_and_sync_it(
    legacy4d_store: LegacyStore, legacy4d_server: EmulatorServer, tmp_path: Path, app_url: str, app_db: sa.Engine,
    scaffold_dirs: tuple[Path, Path], migrate_scaffolded: Callable[[TableSpec], None],
) -> None:
    legacy4d_store.insert("Suppliers", [_supplier(i) for i in range(1, ROWS + 1)])
    env = operator_env(tmp_path, app_url, legacy4d_server.port)
    spec, code = _scaffold(env, scaffold_dirs, "legacy_4d", "Suppliers", "--application", "purchasing_supplier")

    assert (spec.entity, spec.source_table, spec.business_key) == ("erp_suppliers", "Suppliers", ("legacy_id",))
    assert spec.change_tracking is not None and spec.change_tracking.columns == ("__GlobalStamp",)
    assert "# REVIEW: 4D number is a Real (a double): guessed Decimal(18, 4)" in code
    assert "# REVIEW: a 4D Time (duration) read as a time of day" in code
    assert "# REVIEW: relation preferredProduct → Products (via PreferredProductID)" in code
    assert "# Business key: the dataclass key SupplierID ($catalog/Suppliers)." in code
    assert spec.application is not None and spec.application.table == "purchasing_supplier"
    assert "# REVIEW: maps onto the application's table purchasing_supplier, every column onto the column" in code
    assert ("# REVIEW: the application table: table public.purchasing_supplier does not exist (the application's"
            in code)  # the engine's drift check, run at scaffold time

    migrate_scaffolded(spec)
    source = Legacy4DResource(host="127.0.0.1", port=legacy4d_server.port, username=USERNAME,
                              password=PASSWORD).source()
    report = run_sync(spec, source, app_db)
    assert (report.processed, report.created, report.rejected) == (ROWS, ROWS, 0), report
    _counts_add_up(report)
    with app_db.connect() as connection:
        loaded = {row.legacy_id: row for row in connection.execute(sa.text(f"select * from {spec.target_table}"))}
    assert set(loaded) == set(range(1, ROWS + 1))
    for i, row in loaded.items():
        assert row.supplier_name == f"Supplier {i}" and row.email == (None if i % 4 == 0 else f"s{i}@example.com")
        assert row.credit_limit == decimal.Decimal(f"{1000 + i}.25") and row.is_active == (i % 2 == 0)
        assert row.first_order_date == dt.date(2024, 2, i) and row.call_back_time == dt.time(9, 0, i)
        assert (row.rating, row.turnover_cents, row.preferred_product_id) == (i % 5, i * 10_000_000_000, i)

    legacy4d_store.update("Suppliers", 3, {"SupplierName": "Renamed"})
    again = run_sync(spec, source, app_db)
    assert again.mode == "incremental" and again.updated == 1
    _counts_add_up(again)
    with app_db.connect() as connection:
        assert connection.execute(sa.text(f"select supplier_name from {spec.target_table} where legacy_id = 3")
                                  ).scalar_one() == "Renamed"


def test_scaffold_refuses_what_it_cannot_describe_naming_the_table(
    as400_owner_url: str, as400_source_sql: Callable[[str], None], legacy4d_server: EmulatorServer, tmp_path: Path,
    app_url: str, scaffold_dirs: tuple[Path, Path],
) -> None:
    create_schema(as400_owner_url)
    as400_source_sql(f'drop schema if exists "{LIBRARY}" cascade; create schema "{LIBRARY}"; '
                     f'create table "{LIBRARY}"."KEYLESS" ("CODE" char(3) not null, "QTY" decimal(5, 0)); '
                     f'grant usage on schema "{LIBRARY}" to as400_reader; '
                     f'grant select on all tables in schema "{LIBRARY}" to as400_reader')
    env = operator_env(tmp_path, app_url, legacy4d_server.port)
    into = ["--into", str(scaffold_dirs[0]), "--migrations-dir", str(scaffold_dirs[1])]
    try:
        for arguments, message in (
            (["as400", "NOLIB.NOFILE"], "NOLIB.NOFILE is not in the IBM i catalog (QSYS2.SYSCOLUMNS2)"),
            (["as400", "nolib"], "invalid table name 'nolib': expected LIBRARY.TABLE"),
            (["as400", "PRODUCTLIB.PRODUCTS"], "PRODUCTLIB.PRODUCTS is synced already (entity product)"),
            (["as400", f"{LIBRARY}.KEYLESS"], "name the business key with --key COLUMN"),
            (["as400", f"{LIBRARY}.KEYLESS", "--key", "NOPE"], "--key NOPE: no such column in SCAFLIB.KEYLESS"),
            (["legacy_4d", "Nowhere"], "dataclass Nowhere is not exposed by the 4D REST server"),
            (["legacy_4d", "Customers"], "Customers is synced already (entity erp_customer)"),
        ):
            result = erp_sync(env, "scaffold", "--source", *arguments, *into)
            assert result.returncode == 2, result.stdout + result.stderr
            assert message in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
        assert not scaffold_dirs[0].exists() and not scaffold_dirs[1].exists()  # nothing half-written

        keyed = erp_sync(env, "scaffold", "--source", "as400", f"{LIBRARY}.KEYLESS", "--key", "CODE", *into)
        assert keyed.returncode == 0, keyed.stdout + keyed.stderr
        (module,) = scaffold_dirs[0].glob("*.py")
        code = module.read_text()
        assert "# Business key: --key." in code and 'business_key=("code",)' in code
        assert "# REVIEW: neither journaled nor a change-stamp pair found: every sync reads the whole file" in code
        again = erp_sync(env, "scaffold", "--source", "as400", f"{LIBRARY}.KEYLESS", "--key", "CODE", *into)
        assert again.returncode == 2 and f"{module} exists already" in again.stderr
    finally:
        as400_source_sql(f'drop schema if exists "{LIBRARY}" cascade')


def test_the_draft_of_a_journaled_file_names_its_journal_key_and_stamp_index(
    as400_owner_url: str, as400: As400Resource,
) -> None:
    create_schema(as400_owner_url)  # PRODUCTS: a primary key, journaled to PRODUCTLIB/QSQJRN, stamps indexed
    draft = as400.draft_table("PRODUCTLIB.PRODUCTS")
    assert draft.notes == (
        "Business key: primary key constraint PRODUCTLIB.PRODUCTS_PK (QSYS2.SYSKEYCST).",
        "Journaled to PRODUCTLIB/QSQJRN (*BOTH): with AS400_CHANGE_TRACKING=auto the sync reads changes and "
        "deletions from the journal.",
    )
    assert draft.business_key == ("itemno",) and draft.change_tracking == 'ChangeTracking(columns=("CHGDAT", "CHGTIM"))'
    stamp = next(column for column in draft.columns if column.target == "source_changed_at")
    assert not any("no index is led by" in note for note in stamp.review)  # PRODUCTS_CHG leads with them
    assert [column.decoder for column in draft.columns if column.target == "crtdat"] == ["CyymmddDate()"]


@pytest.mark.parametrize("entity", ["product_pricing", "product_measurement", "product_stock"])
def test_scaffolding_a_synced_file_again_proposes_the_decoders_its_hand_written_spec_has(
    entity: str, as400_owner_url: str, as400: As400Resource, scaffold_dirs: tuple[Path, Path],
) -> None:
    create_schema(as400_owner_url)
    written = get_spec(entity)
    draft = as400.draft_table(written.source_table)
    scaffolded = write(draft, scaffold_dirs[0], scaffold_dirs[1], "erp-sync scaffold", []).spec
    # Choices about meaning the catalog cannot tell may differ: a blank CHAR read as NULL (blank_as_null: the
    # catalog says NOT NULL DEFAULT ''), and a CHAR(1) flag's values (Flag(["Y"], ["N"])), which stays text.
    proposed = [(column.source, repr(column.decoder)) for column in scaffolded.columns]
    differing = [(mine, theirs) for mine, theirs in zip(proposed, [(column.source, repr(column.decoder))
                                                                  for column in written.columns], strict=True)
                 if mine != theirs]
    assert all(mine[1] == "TrimmedText" and theirs[1] == "Flag" for mine, theirs in differing), differing
    assert scaffolded.change_tracking == written.change_tracking
    assert scaffolded.source_key_columns == written.source_key_columns
