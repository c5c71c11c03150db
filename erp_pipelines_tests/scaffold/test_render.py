"""The scaffold's renderer without any service: a draft becomes a module that imports, lints clean and
declares exactly the draft, and a migration that creates the table `build_table` derives from the spec."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from erp_pipelines.core.draft import DraftColumn, DraftError, TableDraft, snake_case, unique_names
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.scaffold import load_module, next_revision, render_migration, review_comments, write
from erp_pipelines_tests.catalog.test_specs_and_models import (
    test_key_and_unique_columns_are_required as key_is_required,
)
from erp_pipelines_tests.catalog.test_specs_and_models import test_model_columns_follow_the_spec as model_follows_spec

ROOT = Path(__file__).resolve().parents[2]
FIELDS, CORE = "erp_pipelines.core.fields", "erp_pipelines.core.decoders"
LONG_LABEL = "a label long enough to push the generated model field well beyond the line length of the project"


def _draft(**changes: object) -> TableDraft:
    key = DraftColumn("code", ("CODE",), "TrimmedText()", "sa.Text()", "TEXT", "text(required=True, max_length=3)",
                      False, f"CODE: {LONG_LABEL}", ((CORE, "TrimmedText"), (FIELDS, "TEXT"), (FIELDS, "text")),
                      ("named from CODE's text, a guess " * 6,))
    amount = DraftColumn("amount", ("AMT",), "Decimal(9, 2)", "sa.Numeric(9, 2)", "decimal(9, 2)",
                         "pa_pandas.Field(nullable=True)", True, "AMT (packed DECIMAL(9,2))",
                         ((CORE, "Decimal"), (FIELDS, "decimal")))
    values: dict = {"source_system": "as400", "source_table": "TESTLIB.THINGS", "entity": "things",
                    "target_table": "things", "model_name": "ThingsModel", "description": f"Things, {LONG_LABEL}.",
                    "business_key": ("code",), "columns": (key, amount),
                    "change_tracking": 'ChangeTracking(columns=("CHGDAT", "CHGTIM"))',
                    "ignored_source_columns": ("PICTURE",), "review": ("PICTURE is BLOB: ignored",),
                    "notes": ("Business key: --key.",)}
    return TableDraft(**{**values, **changes})


def test_names_from_catalog_labels_and_names() -> None:
    assert snake_case("Supplier  name") == "supplier_name"
    assert snake_case("SupplierName") == "supplier_name"
    assert snake_case("$AMT#") == "amt"
    assert snake_case("1st delivery") == "f_1st_delivery"
    assert snake_case("class") == "f_class"
    assert unique_names(["name", "name", "synced_at"], {"synced_at"}) == ["name", "name_2", "synced_at_2"]


def test_a_draft_naming_a_column_twice_or_no_key_is_refused() -> None:
    with pytest.raises(DraftError, match=r"TESTLIB\.THINGS: two columns would both be named code"):
        _draft(columns=(_draft().columns[0],) * 2)
    with pytest.raises(DraftError, match="business key nope is no column"):
        _draft(business_key=("nope",))


def test_the_module_lints_clean_imports_and_declares_the_draft(tmp_path: Path) -> None:
    written = write(_draft(), tmp_path / "pkg", tmp_path / "versions", "erp-sync scaffold --source as400 X", [],
                    today=dt.date(2026, 12, 2))
    code = written.module.read_text()
    lint = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"),
                           str(written.module)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + code
    assert all(len(line) <= 120 for line in code.splitlines())
    assert "# REVIEW: PICTURE is BLOB: ignored" in code and "\n        #   from CODE's text" in code
    assert review_comments(written.module) == [  # what the reviewed-package test refuses to see committed
        f"{written.module}:{code.splitlines().index(line) + 1}: {line.strip()}"
        for line in code.splitlines() if line.strip().startswith("# REVIEW: ")]
    assert len(review_comments(written.module)) == 2
    spec = written.spec
    assert isinstance(spec, TableSpec)
    assert (spec.entity, spec.business_key, spec.ignored_source_columns) == ("things", ("code",), ("PICTURE",))
    assert spec.source_columns == ["CODE", "AMT", "CHGDAT", "CHGTIM"]
    assert spec.column("amount").nullable and not spec.column("code").nullable
    model_follows_spec(spec)
    key_is_required(spec)


def test_the_migration_follows_the_head_and_creates_the_spec_table(tmp_path: Path) -> None:
    revision, head = next_revision(tmp_path)
    assert int(revision) == int(head) + 1
    written = write(_draft(), tmp_path / "pkg", tmp_path, "erp-sync scaffold", [], today=dt.date(2026, 12, 2))
    assert written.migration.name == f"20261202_{revision}_things.py"
    migration = load_module(written.migration, "generated_migration")
    assert (migration.revision, migration.down_revision) == (revision, head)
    text = render_migration(written.spec, revision, head, dt.date(2026, 12, 2))
    assert "op.create_table('things'" in text and "sa.PrimaryKeyConstraint('code'" in text
    assert "op.drop_table('things')" in text
    assert next_revision(tmp_path)[1] == revision  # the next scaffold follows this one


def test_an_existing_table_or_entity_or_file_is_never_overwritten(tmp_path: Path) -> None:
    first = write(_draft(), tmp_path / "pkg", tmp_path / "versions", "erp-sync scaffold", [])
    with pytest.raises(DraftError, match=r"TESTLIB\.THINGS is synced already \(entity things\)"):
        write(_draft(), tmp_path / "other", tmp_path / "versions", "erp-sync scaffold", [first.spec])
    with pytest.raises(DraftError, match=r"entity or table 'things' exists already"):
        write(_draft(source_table="TESTLIB.OTHER"), tmp_path / "o", tmp_path / "v", "erp-sync scaffold", [first.spec])
    with pytest.raises(DraftError, match=r"things\.py exists already"):
        write(_draft(), tmp_path / "pkg", tmp_path / "versions2", "erp-sync scaffold", [])
