"""The sandbox Django ERP as `scripts/setup` provisions it in the test application database: migrated, its
tables owned by `erp_django`, the sync's role `erp_app` allowed rows but no DDL, and the database defaults
the sync relies on when it inserts a row without the application-only columns.

Read-only for the schema: the sync's tests share these tables, so this neither rebuilds the schema nor
leaves rows behind (a rolled-back transaction, or a row with a distinctive SKU deleted afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest

from erp_pipelines_tests.support.django_app import DjangoApp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def django_orm(django_session: DjangoApp) -> Iterator[None]:
    """Django configured in this process against the test database, the application migrated into it by its
    own role (`django_session`); the apps import as `products`, `sales`, `inventory`."""
    yield
    from django.db import connection

    connection.close()


@pytest.fixture
def sync_connection() -> Iterator[psycopg2.extensions.connection]:
    """A connection as the sync's role (`erp_app`), rolled back at the end whatever the test did."""
    url = os.environ["TEST_APP_DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://", 1)
    connection = psycopg2.connect(url)
    yield connection
    connection.rollback()
    connection.close()


def test_migrations_are_applied(django_orm: None) -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    assert executor.migration_plan(targets) == []
    assert {"products", "sales", "inventory"} <= {app for app, _ in targets}


def test_application_role_owns_the_tables(django_orm: None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select tablename, tableowner from pg_tables where schemaname = 'public' "
                       "and tablename in ('products_product', 'products_category', 'sales_order', "
                       "'inventory_billofmaterial')")
        owners = dict(cursor.fetchall())
    assert owners == dict.fromkeys(
        ("products_product", "products_category", "sales_order", "inventory_billofmaterial"), "erp_django")


def test_sync_role_writes_rows(django_orm: None, sync_connection: psycopg2.extensions.connection) -> None:
    marker = f"TEST-DJANGO-{uuid.uuid4().hex[:12]}"
    with sync_connection.cursor() as cursor:
        cursor.execute("insert into products_category (name) values (%s) returning id", (marker,))
        (category_id,) = cursor.fetchone()
        cursor.execute("insert into products_product (name, sku, category_id) values (%s, %s, %s) returning id",
                       (marker, marker, category_id))
        (product_id,) = cursor.fetchone()
        cursor.execute("update products_product set list_price = 9.5 where id = %s", (product_id,))
        cursor.execute("delete from products_product where id = %s", (product_id,))
        assert cursor.rowcount == 1
    sync_connection.rollback()


def test_sync_role_cannot_alter_the_tables(
    django_orm: None, sync_connection: psycopg2.extensions.connection
) -> None:
    with sync_connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cursor.execute("alter table products_product add column x int")
    sync_connection.rollback()


def test_row_inserted_by_sql_gets_the_database_defaults(
    django_orm: None, sync_connection: psycopg2.extensions.connection
) -> None:
    """The sync inserts only the columns it maps: `is_active`, `is_purchased` and `internal_notes` must come
    from `db_default` (a Python `default=` never reaches a row inserted by SQL). The row is committed, since
    the ORM reads it on a connection of its own, and deleted by its SKU afterwards."""
    from products.models import Product

    sku = f"TEST-DJANGO-{uuid.uuid4().hex[:12]}"
    with sync_connection.cursor() as cursor:
        cursor.execute("insert into products_product (name, sku) values (%s, %s)", ("defaults probe", sku))
    sync_connection.commit()
    try:
        product = Product.objects.get(sku=sku)
        assert (product.name, product.is_active, product.is_purchased, product.is_manufactured) == (
            "defaults probe", True, False, False)
        assert product.internal_notes == ""
        assert product.category is None
        assert product.deleted_at is None
    finally:
        with sync_connection.cursor() as cursor:
            cursor.execute("delete from products_product where sku = %s", (sku,))
        sync_connection.commit()
