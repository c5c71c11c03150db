# Shared by scripts/setup, scripts/demo and scripts/test. Sourced, never run.
# Every step is idempotent: it checks before it changes anything, so the scripts can run again
# on a machine where they already ran.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOX_DIR="$ROOT/.sandbox"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
export ERP_PG_HOST="${ERP_PG_HOST:-127.0.0.1}"
export ERP_PG_PORT="${ERP_PG_PORT:-5432}"

log() { printf '\033[1;34m[erp_pipelines]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[erp_pipelines] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- OS packages -------------------------------------------------------------------------------
# Installs the Debian packages among the arguments that are not installed yet.
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing OS packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_os_packages() {
  local wanted=(unixodbc unixodbc-dev odbc-postgresql openssl)
  if [ -z "${ERP_PG_ADMIN_URL:-}" ]; then wanted+=(postgresql); fi
  ensure_debian_packages "${wanted[@]}"
  odbcinst -q -d | grep -q '^\[PostgreSQL Unicode\]' || die "ODBC driver 'PostgreSQL Unicode' is not registered"
}

# --- Browser for the UI tests (headless Chromium driven by Selenium) -----------------------------
ensure_browser() {
  ensure_debian_packages chromium chromium-driver
}

# --- PostgreSQL --------------------------------------------------------------------------------
# With ERP_PG_ADMIN_URL the user brings their own server (a superuser URL used only to provision);
# otherwise the local Debian cluster is started (and created if absent) with TLS switched on.

# ERP_PG_ADMIN_URL as libpq variables, so its password never appears in a process list.
admin_libpq_env() {
  python3 -c '
import os, shlex, urllib.parse as parse
url = parse.urlsplit(os.environ["ERP_PG_ADMIN_URL"])
query = dict(parse.parse_qsl(url.query))
values = {"PGHOST": url.hostname, "PGPORT": url.port, "PGUSER": url.username, "PGPASSWORD": url.password,
          "PGDATABASE": url.path.lstrip("/"), "PGSSLMODE": query.get("sslmode")}
for name, value in values.items():
    if value:
        print(f"export {name}={shlex.quote(parse.unquote(str(value)))}")
'
}

admin_psql() {
  if [ -n "${ERP_PG_ADMIN_URL:-}" ]; then
    ( eval "$(admin_libpq_env)"; psql -v ON_ERROR_STOP=1 -qAt "$@" )
  else
    (cd / && as_root runuser -u postgres -- psql -p "$ERP_PG_PORT" -v ON_ERROR_STOP=1 -qAt "$@")
  fi
}

ensure_postgres() {
  if [ -n "${ERP_PG_ADMIN_URL:-}" ]; then
    admin_psql -c 'select 1' >/dev/null || die "cannot reach PostgreSQL through ERP_PG_ADMIN_URL"
    return
  fi
  local version cluster=main
  version="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
  [ -n "$version" ] || die "no PostgreSQL server installed"
  if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$version/$cluster"; then
    log "creating PostgreSQL $version cluster"
    as_root pg_createcluster "$version" "$cluster" -p "$ERP_PG_PORT" >/dev/null
  fi
  local datadir
  datadir="$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $6}')"
  if [ ! -f "$datadir/erp_server.crt" ]; then
    log "creating a self-signed TLS certificate for the sandbox server"
    as_root openssl req -new -x509 -days 3650 -nodes -subj "/CN=localhost" \
      -out "$datadir/erp_server.crt" -keyout "$datadir/erp_server.key" >/dev/null 2>&1
    as_root chown postgres:postgres "$datadir/erp_server.crt" "$datadir/erp_server.key"
    as_root chmod 600 "$datadir/erp_server.key"
  fi
  if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
    log "starting PostgreSQL $version/$cluster"
    as_root pg_ctlcluster "$version" "$cluster" start
  fi
  for _ in $(seq 1 30); do pg_isready -q -h "$ERP_PG_HOST" -p "$ERP_PG_PORT" && break; sleep 1; done
  if [ "$(admin_psql -c 'show ssl')" != "on" ]; then
    log "switching TLS on"
    admin_psql -c "alter system set ssl_cert_file = 'erp_server.crt'" \
               -c "alter system set ssl_key_file = 'erp_server.key'" \
               -c "alter system set ssl = on" -c "select pg_reload_conf()" >/dev/null
    sleep 1
    [ "$(admin_psql -c 'show ssl')" = "on" ] || die "PostgreSQL did not switch TLS on"
  fi
  if [ "$(admin_psql -c 'show max_connections')" -lt 200 ]; then
    admin_psql -c "alter system set max_connections = 200" >/dev/null
    as_root pg_ctlcluster "$version" "$cluster" restart
    for _ in $(seq 1 30); do pg_isready -q -h "$ERP_PG_HOST" -p "$ERP_PG_PORT" && break; sleep 1; done
  fi
}

# --- Python ------------------------------------------------------------------------------------
ensure_venv() {
  local stamp="$VENV/.erp_installed"
  if [ ! -x "$PY" ]; then
    log "creating .venv"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.py" -nt "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing the project into .venv (first time takes a few minutes)"
    "$PY" -m pip install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$PY" -m pip install -q -e "$ROOT[dev]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    touch "$stamp"
  fi
}

# --- Sandbox: roles, databases, secrets, ODBC DSN, environment ---------------------------------
# Sandbox passwords are per machine (shared by every checkout, so a second clone does not change
# the roles' passwords under the first one); generated once, mode 600.
secrets_file_path() {
  printf '%s\n' "${ERP_SECRETS_FILE:-$HOME/.config/erp_pipelines/sandbox-secrets.env}"
}

# The sandbox Django ERP (erp_sandbox/django_erp) in the demo, test and bench application databases:
# its tables belong to erp_django, the sync's erp_app gets row access only (default privileges before
# migrating, explicit grants after). The admin superuser exists in the demo database only.
ensure_django_app() {
  local manage="$ROOT/erp_sandbox/django_erp/manage.py" entry db url_var suffix="${ERP_TEST_DB_SUFFIX:-}"
  for entry in erp_app:DJANGO_DATABASE_URL "erp_app_test$suffix:TEST_DJANGO_DATABASE_URL" \
               erp_app_bench:BENCH_DJANGO_DATABASE_URL; do
    db="${entry%%:*}"
    url_var="${entry##*:}"
    "$PY" -m erp_sandbox.provision django-privileges-sql | admin_psql -d "$db" -f - >/dev/null
    # The URL (it holds the password) goes through the environment, off the command line.
    DJANGO_DATABASE_URL="${!url_var}" "$PY" "$manage" migrate --no-input -v 0
    "$PY" -m erp_sandbox.provision django-privileges-sql | admin_psql -d "$db" -f - >/dev/null
  done
  "$PY" "$manage" ensure_sandbox_admin -v 0
}

ensure_sandbox() {
  mkdir -p "$SANDBOX_DIR"
  chmod 700 "$SANDBOX_DIR"
  local secrets_file
  secrets_file="$(secrets_file_path)"
  if [ ! -f "$secrets_file" ] && [ -f "$SANDBOX_DIR/secrets.env" ]; then
    mkdir -p "$(dirname "$secrets_file")"; cp "$SANDBOX_DIR/secrets.env" "$secrets_file"
  fi
  "$PY" -m erp_sandbox.provision secrets --out "$secrets_file"
  # shellcheck disable=SC1091
  set -a; . "$secrets_file"; set +a
  "$PY" -m erp_sandbox.provision roles-sql | admin_psql -f - >/dev/null
  local db suffix="${ERP_TEST_DB_SUFFIX:-}"
  for db in erp_app:erp_app erp_dagster:erp_dagster as400:as400_owner legacy4d:legacy4d \
            "erp_app_test$suffix:erp_app" "as400_test$suffix:as400_owner" "legacy4d_test$suffix:legacy4d" \
            "erp_dagster_test$suffix:erp_dagster" \
            erp_app_bench:erp_app as400_bench:as400_owner legacy4d_bench:legacy4d; do
    if [ -z "$(admin_psql -c "select 1 from pg_database where datname = '${db%%:*}'")" ]; then
      admin_psql -c "create database ${db%%:*} owner ${db##*:}" >/dev/null
    fi
  done
  "$PY" -m erp_sandbox.provision env --out "$ROOT/.env"
  set -a; . "$ROOT/.env"; set +a
  "$PY" -m erp_sandbox.provision as400-schema
  # URLs holding passwords go through the environment: command lines are visible to every local user.
  AS400_SANDBOX_OWNER_URL="$TEST_AS400_OWNER_URL" "$PY" -m erp_sandbox.provision as400-schema
  AS400_SANDBOX_OWNER_URL="$BENCH_AS400_OWNER_URL" "$PY" -m erp_sandbox.provision as400-schema
  "$PY" -m erp_pipelines.commands.cli migrate
  ensure_django_app
  mkdir -p "$DAGSTER_HOME" "$ERP_LOG_DIR"
  cp "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
  # The 4D pool may hold as many concurrent syncs as there are licenses, less one left for checks
  # and sensors; the AS400 pool keeps the default of one (never overload the IBM i).
  local pool_limit=$(( ${LEGACY4D_LICENSES:-3} > 1 ? ${LEGACY4D_LICENSES:-3} - 1 : 1 ))
  (cd "$ROOT" && "$VENV/bin/dagster" instance concurrency set legacy_4d "$pool_limit" >/dev/null 2>&1) \
    || log "could not set the legacy_4d pool limit (the instance database may not be ready yet)"
}

setup_everything() {
  ensure_os_packages
  ensure_postgres
  ensure_venv
  ensure_sandbox
}
