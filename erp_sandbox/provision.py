"""Provisions the local sandbox: secrets, roles, the generated `.env`, the ODBC DSN and the AS400 stand-in.

Called by scripts/_common.sh. Every command is idempotent. Passwords are generated once per machine,
kept in `~/.config/erp_pipelines/sandbox-secrets.env` (mode 600, never committed) and fed to psql on
standard input, so they never appear in process arguments.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DIR = ROOT / ".sandbox"

SECRET_NAMES = (
    "ERP_APP_PASSWORD",
    "ERP_DAGSTER_PASSWORD",
    "AS400_OWNER_PASSWORD",
    "AS400_PASSWORD",
    "LEGACY4D_STORE_PASSWORD",
    "LEGACY_API_PASSWORD",
    "ERP_DJANGO_PASSWORD",
    "DJANGO_SECRET_KEY",
    "DJANGO_ADMIN_PASSWORD",
)
# Django warns about a secret key shorter than 50 characters; 64 hex digits.
SECRET_BYTES = {"DJANGO_SECRET_KEY": 32}

# role -> (password variable, login options)
ROLES = {
    "erp_app": ("ERP_APP_PASSWORD", ""),
    "erp_dagster": ("ERP_DAGSTER_PASSWORD", ""),
    "as400_owner": ("AS400_OWNER_PASSWORD", ""),
    "as400_reader": ("AS400_PASSWORD", ""),
    "legacy4d": ("LEGACY4D_STORE_PASSWORD", ""),
    "erp_django": ("ERP_DJANGO_PASSWORD", ""),
}

# The sandbox Django ERP (erp_sandbox/django_erp) lives in the application databases, in tables its own
# role owns; the sync's role gets rows, never DDL (the application's migrations alone change the schema).
DJANGO_OWNER = "erp_django"

AS400_DSN_NAME = "ERP_AS400_SANDBOX"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'")
    return values


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def ensure_secrets(out: Path) -> None:
    """Generates the sandbox passwords once; a rerun keeps the existing ones."""
    existing = _read_env_file(out)
    values = {name: existing.get(name) or secrets.token_hex(SECRET_BYTES.get(name, 16)) for name in SECRET_NAMES}
    _write_private(out, "".join(f"{name}='{value}'\n" for name, value in values.items()))


def roles_sql() -> str:
    """SQL (for psql on stdin) that creates or updates the sandbox roles with the current passwords."""
    statements = []
    for role, (password_var, _) in ROLES.items():
        password = os.environ[password_var].replace("'", "''")
        statements.append(
            f"do $$ begin if not exists (select from pg_roles where rolname = '{role}') then "
            f"create role {role} login; end if; end $$;\n"
            f"alter role {role} with login password '{password}';"
        )
    # The AS400 reader is read-only at the server: every transaction it opens is read-only.
    statements.append("alter role as400_reader set default_transaction_read_only = on;")
    # The fault-injection tests cut the reader's sessions from the stand-in's owner side.
    statements.append("grant pg_signal_backend to as400_owner;")
    # The sync's sessions set this themselves (`app_engine`); the role default serves psql and the tests' own
    # connections, which then find the project's schema erp_sync before the application's public.
    statements.append("alter role erp_app set search_path = erp_sync, public;")
    return "\n".join(statements) + "\n"


def django_privileges_sql() -> str:
    """SQL (for psql as a superuser, in one application database) giving the Django ERP's role its schema
    and the sync's role row access to the application's data tables, and nothing of Django's own (`auth_*`
    holds password hashes, `django_*` sessions). Run after `migrate` (a later migration's tables are
    covered by the next setup); rerunning it changes nothing."""
    owner = DJANGO_OWNER
    return (
        f"grant usage, create on schema public to {owner};\n"
        f"alter default privileges for role {owner} in schema public "
        "revoke select, insert, update, delete on tables from erp_app;\n"
        f"alter default privileges for role {owner} in schema public revoke usage, select on sequences from erp_app;\n"
        "do $$ declare item record; begin\n"
        "  for item in select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace\n"
        f"    where n.nspname = 'public' and c.relowner = '{owner}'::regrole and c.relkind in ('r', 'p', 'S')\n"
        "  loop\n"
        "    if item.relname like 'auth\\_%' or item.relname like 'django\\_%' then\n"
        "      execute format('revoke all on public.%I from erp_app', item.relname);\n"
        "    elsif item.relkind = 'S' then\n"
        "      execute format('grant usage, select on sequence public.%I to erp_app', item.relname);\n"
        "    else\n"
        "      execute format('grant select, insert, update, delete on public.%I to erp_app', item.relname);\n"
        "    end if;\n"
        "  end loop;\n"
        "end $$;\n"
    )


def _pg_url(user: str, password_var: str, database: str, driver: str = "postgresql+psycopg2") -> str:
    host = os.environ.get("ERP_PG_HOST", "127.0.0.1")
    port = os.environ.get("ERP_PG_PORT", "5432")
    return f"{driver}://{user}:{quote(os.environ[password_var], safe='')}@{host}:{port}/{database}"


# Settings an operator may change in `.env`; writing it again keeps their values.
OPERATOR_SETTINGS = frozenset(
    {"AS400_ALLOWED_TABLES", "AS400_SYNC_ENABLED", "AS400_SYNC_INTERVAL", "ERP_TIMEZONE", "LEGACY4D_LICENSES"}
)


def test_database_suffix() -> str:
    """`ERP_TEST_DB_SUFFIX` gives a checkout test databases of its own (several checkouts testing at once)."""
    suffix = os.environ.get("ERP_TEST_DB_SUFFIX", "")
    if suffix and not suffix.replace("_", "").isalnum():
        raise SystemExit(f"ERP_TEST_DB_SUFFIX must be letters, digits and underscores, not {suffix!r}")
    return suffix


def write_env(out: Path) -> None:
    """Writes the `.env` that Dagster, the CLI, the emulator and the tests read (mode 600)."""
    suffix = test_database_suffix()
    host = os.environ.get("ERP_PG_HOST", "127.0.0.1")
    port = os.environ.get("ERP_PG_PORT", "5432")
    odbc_ini = SANDBOX_DIR / "odbc.ini"
    odbc_ini.write_text(
        f"[{AS400_DSN_NAME}]\n"
        "Description = AS400 stand-in (PostgreSQL through psqlODBC)\n"
        "Driver = PostgreSQL Unicode\n"
        f"Servername = {host}\n"
        f"Port = {port}\n"
        "Database = as400\n"
    )
    preserved = {
        key: value
        for key, value in _read_env_file(out).items()
        if key in OPERATOR_SETTINGS
    }
    env = {
        "ERP_PG_HOST": host,
        "ERP_PG_PORT": port,
        "APP_DATABASE_URL": _pg_url("erp_app", "ERP_APP_PASSWORD", "erp_app"),
        "DAGSTER_HOME": str(SANDBOX_DIR / "dagster_home"),
        "DAGSTER_PG_HOST": host,
        "DAGSTER_PG_PORT": port,
        "DAGSTER_PG_USER": "erp_dagster",
        "DAGSTER_PG_PASSWORD": os.environ["ERP_DAGSTER_PASSWORD"],
        "DAGSTER_PG_DB": "erp_dagster",
        "ODBCINI": str(odbc_ini),
        "AS400_DSN": AS400_DSN_NAME,
        "AS400_USERNAME": "as400_reader",
        "AS400_PASSWORD": os.environ["AS400_PASSWORD"],
        "AS400_DATABASE": "as400",
        "AS400_SERVER": host,
        "AS400_PORT": port,
        "AS400_SSL": "true",
        "AS400_ODBC_DRIVER": "PostgreSQL Unicode",
        "AS400_DRIVER_PROFILE": "postgresql",
        "AS400_ALLOWED_TABLES": "PRODUCTLIB.PRODUCTS,PRODUCTLIB.MEASUREMENTS,PRODUCTLIB.PRICING,INVENTORYLIB.INVENTORY",
        "AS400_SANDBOX_OWNER_URL": _pg_url("as400_owner", "AS400_OWNER_PASSWORD", "as400", "postgresql"),
        "LEGACY4D_STORE_URL": _pg_url("legacy4d", "LEGACY4D_STORE_PASSWORD", "legacy4d", "postgresql"),
        "LEGACY_API_HOST": "127.0.0.1",
        "LEGACY_API_PORT": "8080",
        "LEGACY_API_USERNAME": "erp_sync",
        "LEGACY_API_PASSWORD": os.environ["LEGACY_API_PASSWORD"],
        "LEGACY_API_TIMEOUT": "30",
        "LEGACY_SYNC_BATCH_SIZE": "1000",
        "LEGACY4D_LICENSES": "3",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "ERP_LOG_DIR": str(ROOT / "logs"),
        "ERP_TIMEZONE": "UTC",
        # The demo, the UI and the CLI write the sandbox Django ERP's own tables; the test suite sets `project`.
        "ERP_TARGET": "application",
        "TEST_APP_DATABASE_URL": _pg_url("erp_app", "ERP_APP_PASSWORD", f"erp_app_test{suffix}"),
        "TEST_AS400_DATABASE": f"as400_test{suffix}",
        "BENCH_APP_DATABASE_URL": _pg_url("erp_app", "ERP_APP_PASSWORD", "erp_app_bench"),
        "BENCH_AS400_DATABASE": "as400_bench",
        "BENCH_AS400_OWNER_URL": _pg_url("as400_owner", "AS400_OWNER_PASSWORD", "as400_bench", "postgresql"),
        "BENCH_LEGACY4D_STORE_URL": _pg_url("legacy4d", "LEGACY4D_STORE_PASSWORD", "legacy4d_bench", "postgresql"),
        "TEST_DAGSTER_PG_DB": f"erp_dagster_test{suffix}",
        "TEST_AS400_OWNER_URL": _pg_url("as400_owner", "AS400_OWNER_PASSWORD", f"as400_test{suffix}", "postgresql"),
        "TEST_LEGACY4D_STORE_URL": _pg_url(
            "legacy4d", "LEGACY4D_STORE_PASSWORD", f"legacy4d_test{suffix}", "postgresql"),
        "DJANGO_DATABASE_URL": _pg_url(DJANGO_OWNER, "ERP_DJANGO_PASSWORD", "erp_app", "postgres"),
        "TEST_DJANGO_DATABASE_URL": _pg_url(DJANGO_OWNER, "ERP_DJANGO_PASSWORD", f"erp_app_test{suffix}", "postgres"),
        "BENCH_DJANGO_DATABASE_URL": _pg_url(DJANGO_OWNER, "ERP_DJANGO_PASSWORD", "erp_app_bench", "postgres"),
        "DJANGO_SECRET_KEY": os.environ["DJANGO_SECRET_KEY"],
        "DJANGO_ADMIN_USER": "admin",
        "DJANGO_ADMIN_PASSWORD": os.environ["DJANGO_ADMIN_PASSWORD"],
        **preserved,
    }
    _write_private(out, "".join(f"{key}='{value}'\n" for key, value in env.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_sandbox.provision")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("secrets").add_argument("--out", type=Path, required=True)
    sub.add_parser("roles-sql")
    sub.add_parser("django-privileges-sql")
    sub.add_parser("env").add_argument("--out", type=Path, required=True)
    schema = sub.add_parser("as400-schema")
    schema.add_argument("--owner-url", default=os.environ.get("AS400_SANDBOX_OWNER_URL"))
    args = parser.parse_args(argv)
    if args.command == "secrets":
        ensure_secrets(args.out)
    elif args.command == "roles-sql":
        sys.stdout.write(roles_sql())
    elif args.command == "django-privileges-sql":
        sys.stdout.write(django_privileges_sql())
    elif args.command == "env":
        write_env(args.out)
    else:
        from erp_sandbox.as400.schema import create_schema

        create_schema(args.owner_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
