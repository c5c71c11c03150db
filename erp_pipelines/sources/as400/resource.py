"""The AS400 source as its Dagster resource: its settings (`As400Settings`) plus the source they open."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from erp_pipelines.core.draft import TableDraft
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.scaffold import draft_file
from erp_pipelines.sources.system import SourceResource


class As400Resource(As400Settings, SourceResource):
    """Read-only ODBC access to the IBM i (or the sandbox stand-in), limited to whitelisted tables."""

    def source(self) -> As400Source:
        return As400Source(self)

    def probe(self, specs: list[TableSpec]) -> str:
        """Where and as whom, which tables are readable, and what a DBA checks before the first sync."""
        adapter = self.source()
        report = adapter.connection_report(specs)
        readable = [spec.entity for spec in specs if adapter.count_rows(spec) >= 0]
        return "\n  ".join([f"{self.describe()}; readable: {', '.join(readable)}", *report])

    def draft_table(self, name: str, key: Sequence[str] = ()) -> TableDraft:
        """`LIB.FILE` described from the QSYS2 catalog views (sources/as400/scaffold.py)."""
        return draft_file(self.source(), name, key)

    def unconfigured_reason(self) -> str | None:
        """Not set up: no ODBC data source or host to connect to, or an empty whitelist (nothing may be read)."""
        if not (self.dsn or self.server):
            return "neither AS400_DSN nor AS400_SERVER is set"
        if not self.allowed_tables.strip():
            return "AS400_ALLOWED_TABLES is empty (no table may be read)"
        return None


def as400_resource(env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True) -> As400Resource:
    """The resource as Dagster definitions use it: AS400_PASSWORD stays a `dg.EnvVar` unless told otherwise."""
    return As400Resource.from_env(env, secrets_from_env_var=secrets_from_env_var)
