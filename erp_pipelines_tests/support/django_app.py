"""The sandbox Django ERP in the test application database, migrated by its own `manage.py migrate`.

The test session rebuilds the `public` schema from the project's migrations (`app_url`), which drops the
application's tables with it; this migrates them again as the application's role, which owns them, and
grants the sync's role row access only, as `scripts/setup` does for the demo database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg2

from erp_pipelines.app_db.engine import app_engine

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "erp_sandbox" / "django_erp"
ROW_ACCESS = """
do $$
declare name text;
begin
  for name in select tablename from pg_tables where schemaname = 'public' and tableowner = current_user
               and tablename not like 'auth\\_%' and tablename not like 'django\\_%' loop
    execute format('grant select, insert, update, delete on public.%I to erp_app', name);
  end loop;
  for name in select sequencename from pg_sequences where schemaname = 'public' and sequenceowner = current_user loop
    execute format('grant usage, select on sequence public.%I to erp_app', name);
  end loop;
end $$"""


class DjangoApp:
    """The migrated application: SQL as its owner (a migration's DDL), and the ORM for reading."""

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, statement: str) -> None:
        with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute(statement)
            cursor.execute(ROW_ACCESS)
        connection.close()

    def count(self, table: str) -> int:
        with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute(f'select count(*) from "{table}"')
            (rows,) = cursor.fetchone()
        connection.close()
        return int(rows)

    def tables(self) -> list[str]:
        with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
            cursor.execute("select tablename from pg_tables where schemaname = 'public' and tableowner = current_user "
                           "and tablename not like 'django_%%' and tablename not like 'auth_%%'")
            names = [name for (name,) in cursor.fetchall()]
        connection.close()
        return names

    def empty(self) -> None:
        """Every application table emptied (no DDL, so the grants stand)."""
        names = ", ".join(f'"{name}"' for name in self.tables())
        if names:
            with psycopg2.connect(self.url) as connection, connection.cursor() as cursor:
                cursor.execute(f"truncate {names} restart identity cascade")
            connection.close()


def migrate(url: str, app_url: str) -> DjangoApp:
    """Runs the application's migrations into the test database and sets up the roles' privileges."""
    with app_engine(app_url).begin() as connection:
        connection.exec_driver_sql("grant usage, create on schema public to erp_django")
    # Default privileges would also cover Django's own tables: grants are given per table afterwards instead.
    env = dict(os.environ, DJANGO_DATABASE_URL=url)
    subprocess.run([sys.executable, str(PROJECT / "manage.py"), "migrate", "--no-input", "-v", "0"],
                   check=True, env=env, cwd=PROJECT)
    app = DjangoApp(url)
    app.execute("select 1")
    return app


def setup_orm(url: str) -> None:
    """Configures Django in this process against the test database (once)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    os.environ["DJANGO_DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "erp_site.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    django.setup()

